//! The audit log: one JSON line per decision, append-only, fsync'd.
//!
//! `<state_dir>/audit.jsonl`. An action writes a `before` line (outcome
//! `started`) and an `after` line, each flushed to disk before the engine
//! goes on, so a crash mid-action still leaves the record of what was being
//! done (the engine turns a `before` without its `after` into `interrupted`
//! at the next start). Each line is one `write(2)` on an `O_APPEND` file, and
//! a write or fsync that fails (ENOSPC, EIO) is cut back off with
//! `ftruncate` to the length before it: the file only ever holds whole lines.
//! A newly created file has its directory fsync'd. The file is reopened on
//! SIGHUP (`reopen_handle`) and whenever its path names another inode (moved
//! away by logrotate). A write that fails is counted and logged, never fatal;
//! the engine does not act when its `before` line could not be written.

mod record;

pub use record::{AuditOutcome, AuditRecord, Phase};

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub const FILE_NAME: &str = "audit.jsonl";

pub struct AuditLog {
    path: PathBuf,
    file: Option<File>,
    reopen: Arc<AtomicBool>,
    recent: VecDeque<String>,
    capacity: usize,
    write_errors: u64,
}

impl AuditLog {
    pub fn new(state_dir: &Path, capacity: usize) -> Self {
        Self {
            path: state_dir.join(FILE_NAME),
            file: None,
            reopen: Arc::new(AtomicBool::new(false)),
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

    /// Set it (SIGHUP) and the next line goes to a freshly opened file.
    pub fn reopen_handle(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.reopen)
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
                // The record itself goes to the daemon's log, so journald
                // keeps what the file could not.
                tracing::error!(file = %self.path.display(), error = %e, record = %line.trim_end(), "Cannot write the audit log.");
                self.write_errors += 1;
                false
            }
        }
    }

    /// The open file, reopened when asked to or when the path moved on.
    fn current_file(&mut self) -> std::io::Result<&mut File> {
        if self.reopen.swap(false, Ordering::Relaxed) {
            self.file = None;
        }
        if let Some(file) = &self.file {
            let open = file.metadata()?;
            let rotated = match std::fs::metadata(&self.path) {
                Ok(named) => (named.dev(), named.ino()) != (open.dev(), open.ino()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                Err(e) => return Err(e),
            };
            if rotated {
                tracing::info!(file = %self.path.display(), "The audit log was moved away; opening a new one.");
                self.file = None;
            }
        }
        if self.file.is_none() {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            crate::durable::create_private_dir(dir)?;
            let existed = std::fs::symlink_metadata(&self.path).is_ok();
            // Never through a link: root appending to a file a local user
            // chose is how a file gets corrupted.
            let file = crate::durable::open_append(&self.path)?;
            if !existed {
                crate::durable::sync_dir(dir)?;
            }
            self.file = Some(file);
        }
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("audit file not open"))
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let file = self.current_file()?;
        let length = file.metadata()?.len();
        // One write(2): O_APPEND puts the whole line at the end or, on a
        // short write or an error, the tail is cut off again below.
        let written = match file.write(line) {
            Ok(n) if n == line.len() => file.sync_data(),
            Ok(n) => Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                format!("short write: {n} of {} bytes", line.len()),
            )),
            Err(e) => Err(e),
        };
        if let Err(error) = written {
            if file
                .metadata()
                .is_ok_and(|m| m.is_file() && m.len() > length)
            {
                if let Err(e) = file.set_len(length).and_then(|()| file.sync_data()) {
                    tracing::error!(error = %e, "Cannot cut a partial audit line back off.");
                }
            }
            return Err(error);
        }
        Ok(())
    }

    fn failed(&mut self, error: &str) -> bool {
        self.write_errors += 1;
        tracing::error!(file = %self.path.display(), error = %error, "Cannot write the audit log.");
        false
    }
}

/// Every line of the audit log at `path` that parses, in order, and how
/// many did not (lines torn by an older version, or edited by hand).
pub fn read_records(path: &Path) -> std::io::Result<(Vec<AuditRecord>, usize)> {
    let file = match crate::durable::open_read(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut records = Vec::new();
    let mut unparsable = 0;
    for line in std::io::BufReader::new(file).split(b'\n') {
        match serde_json::from_slice::<AuditRecord>(&line?) {
            Ok(record) => records.push(record),
            Err(_) => unparsable += 1,
        }
    }
    Ok((records, unparsable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: AuditOutcome) -> AuditRecord {
        AuditRecord {
            time: AuditRecord::now(),
            rule: "duplicate_mount_layers".into(),
            target: "/srv/data".into(),
            action: "unstack".into(),
            mode: "enforce".into(),
            phase: Phase::After,
            outcome,
            evidence: "4096 layers".into(),
            detail: None,
            error: None,
            caller: None,
        }
    }

    #[test]
    fn lines_are_appended_and_parse_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::new(&dir.path().join("state"), 2);
        for outcome in [
            AuditOutcome::Started,
            AuditOutcome::Success,
            AuditOutcome::DryRun,
        ] {
            assert!(log.append(&record(outcome)));
        }
        let (parsed, unparsable) = read_records(log.path()).unwrap();
        assert_eq!(unparsable, 0);
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[2].outcome, AuditOutcome::DryRun);
        assert_eq!(log.recent().len(), 2);
        assert_eq!(log.write_errors(), 0);
    }

    #[test]
    fn a_full_disk_is_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Path::new("/dev/full").exists(), "/dev/full is missing");
        std::os::unix::fs::symlink("/dev/full", dir.path().join(FILE_NAME)).unwrap();
        let mut log = AuditLog::new(dir.path(), 4);
        assert!(!log.append(&record(AuditOutcome::Started)));
        assert!(!log.append(&record(AuditOutcome::Started)));
        assert_eq!(log.write_errors(), 2);
        // An unwritable directory (a file in its place) is the same.
        let blocked = dir.path().join("blocked");
        std::fs::write(&blocked, "").unwrap();
        let mut log = AuditLog::new(&blocked.join("sub"), 4);
        assert!(!log.append(&record(AuditOutcome::Started)));
        assert_eq!(log.write_errors(), 1);
    }

    #[test]
    fn a_rotated_file_is_replaced_and_sighup_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::new(dir.path(), 0);
        assert!(log.append(&record(AuditOutcome::Started)));
        let rotated = dir.path().join("audit.jsonl.1");
        std::fs::rename(log.path(), &rotated).unwrap();
        assert!(log.append(&record(AuditOutcome::Success)));
        let (old, _) = read_records(&rotated).unwrap();
        let (new, _) = read_records(log.path()).unwrap();
        assert_eq!(
            (old.len(), new.len()),
            (1, 1),
            "the new line went to a new file"
        );
        // copytruncate-style rotation keeps the inode: SIGHUP reopens anyway.
        let handle = log.reopen_handle();
        handle.store(true, Ordering::Relaxed);
        assert!(log.append(&record(AuditOutcome::Failed)));
        assert!(!handle.load(Ordering::Relaxed));
        assert_eq!(read_records(log.path()).unwrap().0.len(), 2);
    }
}

/// Where an action writes records about its own steps (the o2cb restart's
/// undo journal: phase `undo`, one line per step) while the engine waits for
/// it on another thread. Same file, same one-`write`-per-line append, so the
/// lines interleave whole with the engine's `before`/`after`.
#[derive(Debug, Clone)]
pub struct StepLog {
    state_dir: std::path::PathBuf,
    mode: String,
}

impl StepLog {
    pub fn new(state_dir: &Path, mode: &str) -> Self {
        Self {
            state_dir: state_dir.to_path_buf(),
            mode: mode.to_string(),
        }
    }

    /// Appends one step record (mode filled in); false when it could not be
    /// written (logged, like every audit write error).
    pub fn write(&self, mut record: AuditRecord) -> bool {
        record.mode.clone_from(&self.mode);
        AuditLog::new(&self.state_dir, 0).append(&record)
    }
}
