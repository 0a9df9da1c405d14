//! The systemd notify protocol (`Type=notify`, `WatchdogSec=`): READY=1 once
//! the first snapshot is published and the listener is up, WATCHDOG=1 after
//! every completed sampler tick (a wedged sampler stops sending it and
//! systemd restarts the daemon), STATUS= with a one-line summary, and
//! STOPPING=1 on shutdown. Every call is a no-op without `NOTIFY_SOCKET`, so
//! the daemon runs the same under a shell, a container or another manager.

use sd_notify::NotifyState;

use crate::snapshot::Snapshot;

/// The first snapshot is published and the HTTP listener accepts.
pub fn ready(snapshot: &Snapshot) {
    let status = summary(snapshot);
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// A sampler tick completed: the loop is alive.
pub fn tick_completed(snapshot: &Snapshot) {
    let status = summary(snapshot);
    send(&[NotifyState::Watchdog, NotifyState::Status(&status)]);
}

/// `WatchdogSec=` of the shipped unit (deploy/systemd/ocfs2-watchdog.service),
/// the one to compare with when not run under systemd.
pub const SHIPPED_WATCHDOG: std::time::Duration = std::time::Duration::from_secs(30);

/// How `[sampler] interval` fits systemd's watchdog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchdogFit {
    Fits,
    /// Worth a warning; the daemon still starts.
    Warning(String),
    /// Under systemd with a watchdog shorter than one interval: the daemon
    /// would be killed before its first tick, so it must not start.
    Error(String),
}

/// Compares `interval` with the watchdog systemd set (`WATCHDOG_USEC`, when
/// run under systemd) or, otherwise, with the shipped unit's `WatchdogSec`.
pub fn watchdog_fit(interval: std::time::Duration, watchdog_usec: Option<&str>) -> WatchdogFit {
    let show = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let under_systemd = watchdog_usec
        .and_then(|usec| usec.trim().parse::<u64>().ok())
        .filter(|usec| *usec > 0)
        .map(std::time::Duration::from_micros);
    match under_systemd {
        Some(watchdog) if interval >= watchdog => WatchdogFit::Error(format!(
            "sampler.interval {} is not shorter than the unit's WatchdogSec {}: systemd would kill the daemon between two ticks; lower the interval or raise WatchdogSec",
            show(interval),
            show(watchdog)
        )),
        Some(watchdog) if watchdog < interval * 3 => WatchdogFit::Warning(format!(
            "WatchdogSec {} is under three sampler intervals ({}); a slow tick will get the daemon killed",
            show(watchdog),
            show(interval)
        )),
        Some(_) => WatchdogFit::Fits,
        None if interval >= SHIPPED_WATCHDOG => WatchdogFit::Warning(format!(
            "sampler.interval {} is not shorter than WatchdogSec {} of the shipped systemd unit; under that unit systemd would kill the daemon",
            show(interval),
            show(SHIPPED_WATCHDOG)
        )),
        None => WatchdogFit::Fits,
    }
}

/// `watchdog_fit` for this process's environment.
pub fn check_watchdog_interval(interval: std::time::Duration) -> WatchdogFit {
    watchdog_fit(interval, std::env::var("WATCHDOG_USEC").ok().as_deref())
}

/// Shutdown started; systemd then does not count the exit as a crash.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("Stopping.")]);
}

/// What `systemctl status` shows under the unit.
pub fn summary(snapshot: &Snapshot) -> String {
    let failed: Vec<&str> = snapshot
        .collectors
        .iter()
        .filter(|(_, (report, _))| !report.success)
        .map(|(name, _)| *name)
        .collect();
    let mode = if snapshot.enforcing {
        "enforcing"
    } else {
        "dry-run"
    };
    let collectors = if failed.is_empty() {
        format!("{} collectors ok", snapshot.collectors.len())
    } else {
        format!(
            "{}/{} collectors failing ({})",
            failed.len(),
            snapshot.collectors.len(),
            failed.join(", ")
        )
    };
    format!(
        "Snapshot {}: {collectors}, {} probes stuck, {mode}.",
        snapshot.sequence, snapshot.probes_stuck
    )
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        // Not fatal: at worst systemd restarts a daemon that is fine.
        tracing::warn!(error = %error, "Cannot notify the service manager.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_failing_collectors() {
        let mut snapshot = Snapshot::empty();
        snapshot.sequence = 7;
        assert_eq!(
            summary(&snapshot),
            "Snapshot 7: 0 collectors ok, 0 probes stuck, dry-run."
        );
    }
}

#[cfg(test)]
mod watchdog_fit_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn interval_against_watchdog_sec() {
        let two = Duration::from_secs(2);
        assert_eq!(watchdog_fit(two, Some("30000000")), WatchdogFit::Fits);
        assert!(
            matches!(watchdog_fit(Duration::from_secs(40), Some("30000000")), WatchdogFit::Error(m) if m.contains("WatchdogSec 30s"))
        );
        assert!(matches!(
            watchdog_fit(Duration::from_secs(15), Some("30000000")),
            WatchdogFit::Warning(_)
        ));
        assert!(
            matches!(watchdog_fit(Duration::from_secs(40), None), WatchdogFit::Warning(m) if m.contains("shipped"))
        );
        assert_eq!(watchdog_fit(two, None), WatchdogFit::Fits);
    }
}
