//! Did the previous boot end in an OCFS2 self-fence?
//!
//! A fenced node restarts at once (`emergency_restart()`, no sync), so the
//! "very sorry" line survives only where it reached persistent storage:
//!
//! * pstore (`/sys/fs/pstore/dmesg-*`, `console-*` under the root): the
//!   kernel's own dump of the log at panic/restart (ramoops, efi-pstore).
//!   A record is the previous boot's when it is newer than the boot before
//!   it; records already counted (name and mtime) are remembered, so a
//!   record nobody cleared is not counted again at every boot.
//! * the journal: `journalctl -k -b -1 -o short-monotonic --no-pager`
//!   (`-D <root>/var/log/journal` when the root is not `/`), run with a
//!   timeout and killed past it.
//! * syslog files (`/var/log/kern.log`, `/var/log/messages` by default): the
//!   lines before this boot's start (`btime`), after the last "Linux version"
//!   line (the start of the previous boot).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::classify::{classify, Event};
use super::record::{detect, lossy_lines, parse_line, Format};

/// Where a fence was found, for the log and `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finding {
    pub fenced: bool,
    pub evidence: Vec<String>,
    /// pstore records that showed a fence (`name@mtime`), to remember.
    pub pstore_records: Vec<String>,
}

/// Any fence line in `text` (a pstore record or one boot's journal).
pub fn text_has_fence(text: &str) -> bool {
    let format = detect(text);
    text.lines().any(|line| line_is_fence(format, line))
}

fn line_is_fence(format: Format, line: &str) -> bool {
    parse_line(format, line, 0)
        .and_then(|record| classify(&record.text))
        .is_some_and(|pattern| pattern.event == Event::Fence)
}

/// pstore records showing a fence, skipping those in `already_counted`.
pub fn scan_pstore(dir: &Path, already_counted: &[String]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("dmesg-") || name.starts_with("console-")) {
            continue;
        }
        let mtime = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let key = format!("{name}@{mtime}");
        if already_counted.contains(&key) {
            continue;
        }
        match std::fs::read(entry.path()) {
            Ok(bytes) if text_has_fence(&String::from_utf8_lossy(&bytes)) => found.push(key),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(file = %entry.path().display(), error = %e, "Cannot read a pstore record.");
            }
        }
    }
    found.sort();
    found
}

/// Whether a syslog-style file shows a fence in the boot before the one that
/// started at `boot_time` (Unix seconds). Lines without a wall clock cannot
/// be placed in a boot and are ignored.
pub fn log_shows_previous_boot_fence(reader: impl BufRead, boot_time: f64, now_unix: i64) -> bool {
    let mut lines = lossy_lines(reader);
    let head: Vec<String> = lines.by_ref().take(32).collect();
    let format = detect(&head.join("\n"));
    let mut fenced = false;
    for line in head.into_iter().chain(lines) {
        let Some(record) = parse_line(format, &line, now_unix) else {
            continue;
        };
        let Some(wall) = record.wall_seconds else {
            continue;
        };
        // Syslog stamps are whole seconds and written after the kernel's
        // time; one second of slack keeps this boot's first lines out.
        if wall >= boot_time - 1.0 {
            break;
        }
        if record.text.starts_with("Linux version ") {
            fenced = false;
        } else if classify(&record.text).is_some_and(|p| p.event == Event::Fence) {
            fenced = true;
        }
    }
    fenced
}

/// Runs `journalctl` for the previous boot's kernel messages and says
/// whether they hold a fence. `None` when journalctl is missing, failed or
/// timed out (then killed).
pub fn journal_shows_fence(
    program: &str,
    journal_dir: Option<&Path>,
    timeout: Duration,
) -> Option<bool> {
    let mut command = Command::new(program);
    command.args([
        "-k",
        "-b",
        "-1",
        "-o",
        "short-monotonic",
        "--no-pager",
        "-q",
    ]);
    if let Some(dir) = journal_dir {
        command.arg("-D").arg(dir);
    }
    let mut child = match command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            tracing::debug!(program, error = %e, "Cannot run journalctl; skipping the journal.");
            return None;
        }
    };
    let stdout = child.stdout.take()?;
    // The reader stops at the first fence line, or at end of output.
    let reader = std::thread::Builder::new()
        .name("journalctl-read".into())
        .spawn(move || {
            let mut fenced = false;
            let mut lines = lossy_lines(BufReader::new(stdout.take(1 << 30)));
            for line in lines.by_ref() {
                if line_is_fence(Format::Monotonic, &line) {
                    fenced = true;
                    break;
                }
            }
            fenced
        })
        .ok()?;
    let deadline = crate::input::deadline(timeout);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => {
                tracing::warn!(program, timeout = %humantime::format_duration(timeout), "journalctl did not finish in time; killed.");
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let fenced = reader.join().unwrap_or(false);
    match status {
        // A fence line seen before the kill still counts.
        _ if fenced => Some(true),
        Some(status) if status.success() => Some(false),
        _ => None,
    }
}

/// What to examine; built from the configuration and the host paths.
#[derive(Debug, Clone)]
pub struct Sources {
    pub pstore_dir: PathBuf,
    pub log_files: Vec<PathBuf>,
    /// `(program, -D directory)`; `None` to skip the journal.
    pub journal: Option<(String, Option<PathBuf>)>,
    pub journal_timeout: Duration,
    pub boot_time: Option<f64>,
    pub now_unix: i64,
}

pub fn examine(sources: &Sources, pstore_counted: &[String]) -> Finding {
    let mut finding = Finding::default();
    let pstore = scan_pstore(&sources.pstore_dir, pstore_counted);
    if !pstore.is_empty() {
        finding
            .evidence
            .push(format!("pstore {}", pstore.join(", ")));
        finding.pstore_records = pstore;
    }
    if let Some((program, dir)) = &sources.journal {
        if journal_shows_fence(program, dir.as_deref(), sources.journal_timeout) == Some(true) {
            finding.evidence.push("journal".to_string());
        }
    }
    if let Some(boot_time) = sources.boot_time {
        for file in &sources.log_files {
            match std::fs::File::open(file) {
                Ok(f) => {
                    if log_shows_previous_boot_fence(BufReader::new(f), boot_time, sources.now_unix)
                    {
                        finding.evidence.push(file.display().to_string());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "Cannot read a log file.")
                }
            }
        }
    }
    finding.fenced = !finding.evidence.is_empty();
    finding
}

#[cfg(test)]
mod tests {
    use super::*;

    const SORRY: &str = "*** ocfs2 is very sorry to be fencing this system by restarting ***";

    #[test]
    fn pstore_records_count_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dmesg-ramoops-0"),
            format!("Panic#1 Part1\n<0>[  300.1] {SORRY}\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("console-ramoops-0"), "[    1.0] booting\n").unwrap();
        std::fs::write(dir.path().join("pmsg-ramoops-0"), SORRY).unwrap();
        let found = scan_pstore(dir.path(), &[]);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("dmesg-ramoops-0@"), "{found:?}");
        assert!(scan_pstore(dir.path(), &found).is_empty());
        assert!(scan_pstore(&dir.path().join("absent"), &[]).is_empty());
    }

    #[test]
    fn log_file_fence_must_be_in_the_previous_boot() {
        // Boot time 2026-11-21T12:00:00Z; the fence at 11:50 is after the
        // 11:00 boot's "Linux version", so the previous boot was fenced.
        let boot = 1_795_262_400.0;
        let log = format!(
            "2026-11-21T10:00:00+00:00 n1 kernel: Linux version 6.1.0\n\
             2026-11-21T10:30:00+00:00 n1 kernel: {SORRY}\n\
             2026-11-21T11:00:00+00:00 n1 kernel: Linux version 6.1.0\n\
             2026-11-21T11:50:00+00:00 n1 kernel: {SORRY}\n\
             2026-11-21T12:00:05+00:00 n1 kernel: Linux version 6.1.0\n"
        );
        assert!(log_shows_previous_boot_fence(
            log.as_bytes(),
            boot,
            boot as i64
        ));
        // The older fence belongs to the boot before: not the previous one.
        let older: String = log
            .lines()
            .take(3)
            .chain(log.lines().skip(4))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(!log_shows_previous_boot_fence(
            older.as_bytes(),
            boot,
            boot as i64
        ));
        // A fence in the current boot (impossible but for replayed files) is not the previous boot's.
        let current = format!("2026-11-21T12:00:10+00:00 n1 kernel: {SORRY}\n");
        assert!(!log_shows_previous_boot_fence(
            current.as_bytes(),
            boot,
            boot as i64
        ));
        assert!(!log_shows_previous_boot_fence(
            "garbage\n\n".as_bytes(),
            boot,
            boot as i64
        ));
    }

    #[test]
    fn journal_runs_with_a_timeout() {
        // A stand-in journalctl: a script printing a fence line, one that
        // hangs, and a missing program.
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            path.display().to_string()
        };
        let fenced = script(
            "fenced",
            &format!("echo '[  300.100000] n1 kernel: {SORRY}'"),
        );
        let quiet = script(
            "quiet",
            "echo '[    1.000000] n1 kernel: Linux version 6.1'",
        );
        let hangs = script("hangs", "exec sleep 30");
        let timeout = Duration::from_secs(5);
        assert_eq!(journal_shows_fence(&fenced, None, timeout), Some(true));
        assert_eq!(journal_shows_fence(&quiet, None, timeout), Some(false));
        let started = Instant::now();
        assert_eq!(
            journal_shows_fence(&hangs, None, Duration::from_millis(200)),
            None
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            journal_shows_fence("/nonexistent/journalctl", None, timeout),
            None
        );
    }
}
