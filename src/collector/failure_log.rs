//! Logs a collector's failures on their edges, not on every tick.
//!
//! The sampler runs every collector each tick; a collector that cannot read
//! its source (as non-root: `/dev/kmsg`, debugfs) would otherwise log the same
//! warning every couple of seconds, tens of thousands of lines a day in the
//! journal. `FailureLog` remembers which collectors are failing and why, so
//! the sampler logs once when a collector starts failing (or fails for a new
//! reason), once when it recovers, and never in between. The metrics
//! (`ocfs2_watchdog_collector_success`, `..._error`) still say it every tick.
//! `hint` adds the usual cause of a failure to the first line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use super::{CollectError, ErrorKind};

/// What a tick's outcome changed for one collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// It was healthy (or failing for another reason) and now fails.
    StartedFailing,
    /// Same failure as the tick before: nothing to log.
    StillFailing,
    /// It was failing and now succeeds.
    Recovered,
    /// Healthy before and now.
    StillHealthy,
}

struct Failing {
    kind: ErrorKind,
    since: Instant,
    ticks: u64,
}

#[derive(Default)]
pub struct FailureLog {
    failing: BTreeMap<&'static str, Failing>,
}

impl FailureLog {
    /// Records a failed run and logs it when it is a new failure.
    pub fn failed(
        &mut self,
        collector: &'static str,
        kind: ErrorKind,
        message: &str,
        path: Option<&Path>,
    ) -> Edge {
        let edge = self.record_failure(collector, kind);
        if edge == Edge::StartedFailing {
            let hint = hint(kind, path).unwrap_or("");
            tracing::warn!(
                collector,
                reason = kind.as_str(),
                error = %message,
                hint,
                "Collector failed; logged again only when it recovers or fails for another reason."
            );
        }
        edge
    }

    /// Records a successful run and logs the recovery of a failing collector.
    pub fn succeeded(&mut self, collector: &'static str) -> Edge {
        match self.failing.remove(collector) {
            Some(failing) => {
                tracing::info!(
                    collector,
                    reason = failing.kind.as_str(),
                    failed_runs = failing.ticks,
                    failed_for = %humantime::format_duration(std::time::Duration::from_secs(failing.since.elapsed().as_secs())),
                    "Collector recovered."
                );
                Edge::Recovered
            }
            None => Edge::StillHealthy,
        }
    }

    fn record_failure(&mut self, collector: &'static str, kind: ErrorKind) -> Edge {
        match self.failing.get_mut(collector) {
            Some(failing) if failing.kind == kind => {
                failing.ticks += 1;
                Edge::StillFailing
            }
            _ => {
                self.failing.insert(
                    collector,
                    Failing {
                        kind,
                        since: Instant::now(),
                        ticks: 1,
                    },
                );
                Edge::StartedFailing
            }
        }
    }
}

/// The usual cause of a failure, for the operator reading the first line.
pub fn hint(kind: ErrorKind, path: Option<&Path>) -> Option<&'static str> {
    let path = path
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kmsg = path.ends_with("/dev/kmsg");
    let debugfs = path.contains("/sys/kernel/debug");
    match kind {
        ErrorKind::PermissionDenied if kmsg => Some("reading /dev/kmsg needs CAP_SYSLOG (run as root or grant AmbientCapabilities=CAP_SYSLOG)"),
        ErrorKind::PermissionDenied if debugfs => Some("debugfs (/sys/kernel/debug) is readable by root only: run the daemon as root"),
        ErrorKind::NotFound if debugfs => Some("debugfs is not mounted: mount -t debugfs debugfs /sys/kernel/debug"),
        ErrorKind::PermissionDenied => Some("the daemon's user may not read this file: run as root"),
        ErrorKind::Timeout => Some("a read blocked past collector_timeout: check the storage behind it (iSCSI, multipath)"),
        ErrorKind::NoCapacity => Some("probe threads are stuck on hung I/O: see ocfs2_watchdog_probe_stuck"),
        _ => None,
    }
}

impl CollectError {
    /// This error's hint, see [`hint`].
    pub fn hint(&self) -> Option<&'static str> {
        hint(self.kind, Some(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_edges_only() {
        let mut log = FailureLog::default();
        assert_eq!(log.succeeded("dlm"), Edge::StillHealthy);
        assert_eq!(
            log.failed("dlm", ErrorKind::Parse, "bad", None),
            Edge::StartedFailing
        );
        for _ in 0..100 {
            assert_eq!(
                log.failed("dlm", ErrorKind::Parse, "bad", None),
                Edge::StillFailing
            );
        }
        assert_eq!(
            log.failed("dlm", ErrorKind::Io, "eio", None),
            Edge::StartedFailing
        );
        assert_eq!(
            log.failed("net", ErrorKind::Io, "eio", None),
            Edge::StartedFailing
        );
        assert_eq!(log.succeeded("dlm"), Edge::Recovered);
        assert_eq!(log.succeeded("dlm"), Edge::StillHealthy);
        assert_eq!(
            log.failed("net", ErrorKind::Io, "eio", None),
            Edge::StillFailing
        );
    }

    #[test]
    fn hints_name_the_usual_causes() {
        let kmsg = hint(ErrorKind::PermissionDenied, Some(Path::new("/dev/kmsg")));
        assert!(kmsg.is_some_and(|h| h.contains("CAP_SYSLOG")), "{kmsg:?}");
        let debugfs = hint(
            ErrorKind::PermissionDenied,
            Some(Path::new(
                "/host/sys/kernel/debug/o2hb/X/elapsed_time_in_ms",
            )),
        );
        assert!(debugfs.is_some_and(|h| h.contains("root")), "{debugfs:?}");
        assert_eq!(
            hint(ErrorKind::Parse, Some(Path::new("/proc/mounts"))),
            None
        );
    }
}
