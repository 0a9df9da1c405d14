//! The audit log: one JSON line per decision, append-only, fsync'd.
//!
//! `<state_dir>/audit.jsonl`. An action writes a `before` line (outcome
//! `started`) and an `after` line, each flushed to disk before the engine
//! goes on, so a crash mid-action still leaves the record of what was being
//! done. Each line is one `write(2)` on an `O_APPEND` file: concurrent or
//! killed writers never interleave inside a line. A write that fails (full
//! disk, read-only state dir) is counted and logged, never fatal; the engine
//! does not act when its `before` line could not be written.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "audit.jsonl";

/// One audit line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub rule: String,
    pub target: String,
    /// Action name, or empty for an alert-only finding.
    pub action: String,
    /// `dry_run` or `enforce`.
    pub mode: String,
    /// `before` (about to act), `after` (acted), or `decision` (no action).
    pub phase: String,
    pub outcome: String,
    pub evidence: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AuditRecord {
    pub fn now() -> String {
        humantime::format_rfc3339_millis(SystemTime::now()).to_string()
    }
}

pub struct AuditLog {
    path: PathBuf,
    file: Option<File>,
    recent: VecDeque<String>,
    capacity: usize,
    write_errors: u64,
}

impl AuditLog {
    pub fn new(state_dir: &Path, capacity: usize) -> Self {
        Self {
            path: state_dir.join(FILE_NAME),
            file: None,
            recent: VecDeque::with_capacity(capacity),
            capacity,
            write_errors: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write_errors(&self) -> u64 {
        self.write_errors
    }

    /// The last lines written (or attempted), oldest first.
    pub fn recent(&self) -> Vec<String> {
        self.recent.iter().cloned().collect()
    }

    /// Writes and fsyncs one line; false (counted, logged) when it could not.
    pub fn append(&mut self, record: &AuditRecord) -> bool {
        let mut line = match serde_json::to_string(record) {
            Ok(line) => line,
            Err(e) => return self.failed(&e.to_string()),
        };
        if self.recent.len() == self.capacity {
            self.recent.pop_front();
        }
        if self.capacity > 0 {
            self.recent.push_back(line.clone());
        }
        line.push('\n');
        match self.write_line(line.as_bytes()) {
            Ok(()) => true,
            Err(e) => {
                // Reopen next time: the file may have been rotated or fixed.
                self.file = None;
                self.failed(&e.to_string())
            }
        }
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let Some(file) = self.file.as_mut() else {
            return Err(std::io::Error::other("audit file not open"));
        };
        file.write_all(line)?;
        file.sync_data()
    }

    fn failed(&mut self, error: &str) -> bool {
        self.write_errors += 1;
        tracing::error!(file = %self.path.display(), error = %error, "Cannot write the audit log.");
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: &str) -> AuditRecord {
        AuditRecord {
            time: AuditRecord::now(),
            rule: "duplicate_mount_layers".into(),
            target: "/srv/data".into(),
            action: "unstack".into(),
            mode: "enforce".into(),
            phase: "after".into(),
            outcome: outcome.into(),
            evidence: "4096 layers".into(),
            detail: None,
            error: None,
        }
    }

    #[test]
    fn lines_are_appended_and_parse_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::new(&dir.path().join("state"), 2);
        for outcome in ["started", "success", "dry_run"] {
            assert!(log.append(&record(outcome)));
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        let parsed: Vec<AuditRecord> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[2].outcome, "dry_run");
        assert_eq!(log.recent().len(), 2);
        assert_eq!(log.write_errors(), 0);
    }

    #[test]
    fn a_full_disk_is_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        if !crate::test_ci::require(Path::new("/dev/full").exists(), "/dev/full") {
            return;
        }
        std::os::unix::fs::symlink("/dev/full", dir.path().join(FILE_NAME)).unwrap();
        let mut log = AuditLog::new(dir.path(), 4);
        assert!(!log.append(&record("started")));
        assert!(!log.append(&record("started")));
        assert_eq!(log.write_errors(), 2);
        // An unwritable directory (a file in its place) is the same.
        let blocked = dir.path().join("blocked");
        std::fs::write(&blocked, "").unwrap();
        let mut log = AuditLog::new(&blocked.join("sub"), 4);
        assert!(!log.append(&record("started")));
        assert_eq!(log.write_errors(), 1);
    }
}
