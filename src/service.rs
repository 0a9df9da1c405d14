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

/// Warns when systemd's watchdog would fire between two healthy ticks.
pub fn check_watchdog_interval(interval: std::time::Duration) {
    if let Some(watchdog) = sd_notify::watchdog_enabled() {
        if watchdog < interval * 3 {
            tracing::warn!(
                watchdog = %humantime::format_duration(watchdog),
                interval = %humantime::format_duration(interval),
                "WatchdogSec is under three sampler intervals; a slow tick will get the daemon killed."
            );
        }
    }
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
