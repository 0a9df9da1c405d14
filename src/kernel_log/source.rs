//! The kernel log source: follows `/dev/kmsg` on its own OS thread, or
//! replays a log file once, feeding classified events into `KernelLogState`.
//!
//! `/dev/kmsg` (Documentation/ABI/testing/dev-kmsg): every read(2) returns
//! one record; a fresh open starts at the oldest record still in the ring
//! buffer, so events since boot are counted on first start. A read fails with
//! EPIPE when the records it would have returned were overwritten; the
//! sequence numbers then jump, the gap is counted in
//! `ocfs2_kernel_log_records_lost_total` and reading continues. The last
//! sequence number counted is persisted with the boot id (`persist.rs`) at
//! most once a second, and when the log goes quiet, so a restart within the
//! same boot skips what it already counted.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::classify::{classify, Deduper, Event};
use super::persist::{self, PersistedState};
use super::previous_boot::{self, Sources};
use super::record::{detect, lossy_lines, parse_kmsg, parse_line, Record};
use super::state::{KernelLogState, SourceError};
use crate::collector::ErrorKind;
use crate::config::Config;
use crate::host::HostPaths;

/// Turns records into counted events: classification, then the dedup of
/// lines that belong to one occurrence.
#[derive(Debug, Default)]
pub struct Ingest {
    deduper: Deduper,
    /// Unix time of boot (`btime`), to turn kernel time into wall time.
    boot_time: Option<f64>,
}

impl Ingest {
    pub fn new(boot_time: Option<f64>) -> Self {
        Self {
            deduper: Deduper::default(),
            boot_time,
        }
    }

    /// The event this record counts as, if any (already added to `state`).
    pub fn apply(&mut self, state: &KernelLogState, record: &Record) -> Option<Event> {
        let pattern = classify(&record.text)?;
        let dedup_time = record
            .monotonic_usec
            .or_else(|| record.wall_seconds.and_then(wall_usec));
        if !self.deduper.is_new(pattern, dedup_time) {
            return None;
        }
        let timestamp = record.wall_seconds.or_else(|| {
            let boot = self.boot_time?;
            Some(boot + record.monotonic_usec? as f64 / 1e6)
        });
        state.record_event(pattern.event, timestamp, &record.text);
        Some(pattern.event)
    }
}

/// A wall time from log text in microseconds, for the deduper: refused
/// (logged, no dedup time) when it is not a finite, non-negative number of
/// seconds that fits, instead of a saturated or zero `as` conversion.
fn wall_usec(seconds: f64) -> Option<u64> {
    let checked = crate::input::seconds("kernel log wall time", seconds)
        .ok()
        .and_then(|d| u64::try_from(d.as_micros()).ok());
    if checked.is_none() {
        tracing::debug!(
            seconds,
            "Kernel log wall time out of range; not used to deduplicate."
        );
    }
    checked
}

/// Seconds since the epoch of `now` as the parsers take them (0 before it).
fn unix_seconds(now: std::time::SystemTime) -> i64 {
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `btime` from `<procfs>/stat`: the Unix time the kernel booted.
pub fn parse_btime(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(|secs| secs as f64)
}

/// Everything the source needs, resolved from the configuration and host.
#[derive(Debug, Clone)]
pub struct Plan {
    pub source: PathBuf,
    /// `None`: nothing is persisted (file replays, unknown boot id).
    pub state_dir: Option<PathBuf>,
    pub boot_id: Option<String>,
    pub boot_time: Option<f64>,
    pub previous: Sources,
}

impl Plan {
    pub fn new(paths: &HostPaths, config: &Config) -> Self {
        let boot_time = std::fs::read_to_string(paths.proc("stat"))
            .ok()
            .and_then(|s| parse_btime(&s));
        let boot_id = std::fs::read_to_string(paths.proc("sys/kernel/random/boot_id"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let settings = &config.kernel_log;
        let journal = settings.previous_boot_journal.then(|| {
            let host_root = paths.rootfs() == Path::new("/");
            let dir = paths.root("/var/log/journal");
            ("journalctl".to_string(), (!host_root).then_some(dir))
        });
        // On a foreign root without a journal directory there is nothing to ask.
        let journal = journal.filter(|(_, dir)| dir.as_ref().map_or(true, |d| d.is_dir()));
        let now_unix = unix_seconds(std::time::SystemTime::now());
        Self {
            source: settings.source.clone(),
            state_dir: Some(config.state_dir.0.clone()),
            boot_id,
            boot_time,
            previous: Sources {
                pstore_dir: paths.sys("fs/pstore"),
                log_files: settings
                    .previous_boot_logs
                    .iter()
                    .map(|p| paths.root(p))
                    .collect(),
                journal,
                journal_timeout: settings.journal_timeout,
                boot_time,
                now_unix,
            },
        }
    }
}

/// Starts the source once; later calls do nothing. File sources are
/// replayed before this returns, so the next snapshot reports them whole.
pub fn ensure_started(state: &Arc<KernelLogState>, paths: &HostPaths, config: &Config) {
    state.started.get_or_init(|| {
        if !config.kernel_log.enabled {
            state.lock().absent = Some("kernel_log.enabled is false".into());
            return;
        }
        start(state, Plan::new(paths, config));
    });
}

pub fn start(state: &Arc<KernelLogState>, plan: Plan) {
    let is_device = std::fs::metadata(&plan.source).map(|m| m.file_type().is_char_device());
    match is_device {
        Ok(true) => {
            // The previous-boot check may wait on journalctl: done on the
            // reader thread so the daemon starts at once.
            let follower_state = Arc::clone(state);
            let spawned = std::thread::Builder::new()
                .name("kernel-log".into())
                .spawn(move || {
                    let resume = resume_or_examine(&follower_state, &plan);
                    follow_kmsg(&follower_state, &plan, resume);
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "Cannot start the kernel log thread.");
                state.lock().source_error = Some(SourceError {
                    kind: ErrorKind::Io,
                    message: format!("cannot start the reader thread: {e}"),
                });
            }
        }
        Ok(false) => {
            let finding = previous_boot::examine(&plan.previous, &[]);
            {
                let mut acc = state.lock();
                acc.counters.fence_previous_boot = Some(finding.fenced);
                acc.counters.fences_total = Some(u64::from(finding.fenced));
            }
            replay_file(state, &plan.source, plan.boot_time);
        }
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && plan.source == Path::new("/dev/kmsg") =>
        {
            state.lock().absent = Some("/dev/kmsg does not exist".into());
        }
        Err(e) => set_error(state, &plan.source, &e),
    }
}

fn set_error(state: &KernelLogState, path: &Path, error: &std::io::Error) {
    let kind = match error.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        _ => ErrorKind::Io,
    };
    tracing::warn!(file = %path.display(), error = %error, "Cannot read the kernel log.");
    state.lock().source_error = Some(SourceError {
        kind,
        message: format!("{}: {error}", path.display()),
    });
}

/// Replays a log file from its start (any format of `record.rs`).
pub fn replay_file(state: &KernelLogState, path: &Path, boot_time: Option<f64>) {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) => return set_error(state, path, &e),
    };
    let mut lines = lossy_lines(std::io::BufReader::new(file));
    let head: Vec<String> = lines.by_ref().take(32).collect();
    let format = detect(&head.concat());
    let now_unix = unix_seconds(std::time::SystemTime::now());
    let mut ingest = Ingest::new(boot_time);
    let mut read = 0u64;
    for line in head.into_iter().chain(lines) {
        if let Some(record) = parse_line(format, &line, now_unix) {
            read += 1;
            ingest.apply(state, &record);
        }
    }
    let mut acc = state.lock();
    acc.counters.records_read += read;
    acc.counters.caught_up = true;
}

/// Same boot as the persisted state: resume after its last sequence number.
/// New boot: examine the previous one, count its fence once, persist.
pub fn resume_or_examine(state: &KernelLogState, plan: &Plan) -> Option<(PathBuf, PersistedState)> {
    let (Some(dir), Some(boot_id)) = (&plan.state_dir, &plan.boot_id) else {
        tracing::warn!("No boot id or state directory; the kernel log position is not persisted.");
        let finding = previous_boot::examine(&plan.previous, &[]);
        let mut acc = state.lock();
        acc.counters.fence_previous_boot = Some(finding.fenced);
        acc.counters.fences_total = Some(u64::from(finding.fenced));
        return None;
    };
    let loaded = persist::load(dir).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "Cannot load the kernel log state; starting afresh.");
        None
    });
    let persisted = match loaded {
        Some(old) if old.boot_id == *boot_id => old,
        old => {
            let old = old.unwrap_or_default();
            let finding = previous_boot::examine(&plan.previous, &old.pstore_counted);
            if finding.fenced {
                tracing::warn!(
                    evidence = finding.evidence.join("; "),
                    "The previous boot ended in an OCFS2 self-fence."
                );
            }
            let mut pstore_counted = old.pstore_counted;
            pstore_counted.extend(finding.pstore_records);
            let fresh = PersistedState {
                boot_id: boot_id.clone(),
                last_seq: None,
                fences_total: old.fences_total.saturating_add(u64::from(finding.fenced)),
                fence_previous_boot: finding.fenced,
                pstore_counted,
            };
            save(state, dir, &fresh);
            fresh
        }
    };
    let mut acc = state.lock();
    acc.counters.fence_previous_boot = Some(persisted.fence_previous_boot);
    acc.counters.fences_total = Some(persisted.fences_total);
    drop(acc);
    Some((dir.clone(), persisted))
}

/// A failed write is logged and counted, never fatal: the cost is a double
/// count after a restart.
fn save(state: &KernelLogState, dir: &Path, persisted: &PersistedState) {
    if let Err(e) = persist::save(dir, persisted) {
        tracing::warn!(error = %e, "Cannot persist the kernel log state.");
        state.lock().counters.state_write_errors += 1;
    }
}

/// Waits up to `timeout` for `/dev/kmsg` to have a record.
fn wait_readable(file: &std::fs::File, timeout: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    poll(&mut fds, timeout).is_ok_and(|ready| ready > 0)
}

fn follow_kmsg(
    state: &KernelLogState,
    plan: &Plan,
    mut persisted: Option<(PathBuf, PersistedState)>,
) {
    let mut file = match std::fs::File::open(&plan.source) {
        Ok(file) => file,
        Err(e) => return set_error(state, &plan.source, &e),
    };
    tracing::info!(file = %plan.source.display(), "Following the kernel log.");
    let mut ingest = Ingest::new(plan.boot_time);
    let mut last_seq = persisted.as_ref().and_then(|(_, p)| p.last_seq);
    let mut dirty = false;
    let mut last_save = Instant::now();
    // Records are at most 8 KiB (CONSOLE_EXT_LOG_MAX) with their prefix.
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if !wait_readable(&file, Duration::from_secs(1)) {
            state.lock().counters.caught_up = true;
            if dirty {
                persist_seq(state, &mut persisted, last_seq);
                dirty = false;
                last_save = Instant::now();
            }
            continue;
        }
        let length = match file.read(&mut buffer) {
            Ok(0) => continue,
            Ok(length) => length,
            // Overwritten before we read them: the seq gap counts the loss.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) =>
            {
                continue
            }
            Err(e) => {
                set_error(state, &plan.source, &e);
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let text = String::from_utf8_lossy(&buffer[..length]);
        let Some(record) = text.lines().next().and_then(parse_kmsg) else {
            continue;
        };
        let seq = record.seq.unwrap_or(0);
        if last_seq.is_some_and(|last| seq <= last) {
            continue;
        }
        let expected = last_seq.map_or(0, |last| last.saturating_add(1));
        let event = ingest.apply(state, &record);
        {
            let mut acc = state.lock();
            // Reading works again: a transient read error is over.
            acc.source_error = None;
            acc.counters.records_read += 1;
            acc.counters.records_lost += seq.saturating_sub(expected);
        }
        last_seq = Some(seq);
        dirty = true;
        let since = last_save.elapsed();
        if since >= Duration::from_secs(1)
            || (event.is_some() && since >= Duration::from_millis(100))
        {
            persist_seq(state, &mut persisted, last_seq);
            dirty = false;
            last_save = Instant::now();
        }
    }
}

fn persist_seq(
    state: &KernelLogState,
    persisted: &mut Option<(PathBuf, PersistedState)>,
    last_seq: Option<u64>,
) {
    if let Some((dir, current)) = persisted {
        current.last_seq = last_seq;
        save(state, dir, current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_time_from_log_text_converts_checked() {
        assert_eq!(wall_usec(1.5), Some(1_500_000));
        for bad in [f64::NAN, f64::INFINITY, -1.0, 1e300] {
            assert_eq!(wall_usec(bad), None, "{bad}");
        }
    }

    #[test]
    fn btime_parses() {
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1795262400\nprocesses 9\n"),
            Some(1_795_262_400.0)
        );
        assert_eq!(parse_btime("btime x\n"), None);
        assert_eq!(parse_btime(""), None);
    }

    #[test]
    fn ingest_turns_kernel_time_into_wall_time_and_dedups() {
        let state = KernelLogState::new(8);
        let mut ingest = Ingest::new(Some(1000.0));
        let sorry = "*** ocfs2 is very sorry to be fencing this system by restarting ***";
        let line = |usec, text: &str| Record {
            seq: None,
            monotonic_usec: Some(usec),
            wall_seconds: None,
            text: text.into(),
        };
        assert_eq!(
            ingest.apply(
                &state,
                &line(2_500_000, "stopping heartbeat on all active regions.")
            ),
            Some(Event::Fence)
        );
        assert_eq!(ingest.apply(&state, &line(2_600_000, sorry)), None);
        assert_eq!(ingest.apply(&state, &line(3_000_000, "unrelated")), None);
        let (counters, recent, _, _) = state.view();
        assert_eq!(counters.events[Event::Fence.index()], 1);
        assert_eq!(
            counters.last_timestamp_seconds[Event::Fence.index()],
            Some(1002.5)
        );
        assert_eq!(recent.len(), 1);
    }
}
