//! The startup summary: the few lines an operator reads in `journalctl -u`
//! to know what this daemon is and what it can see.
//!
//! `main` logs `log_start` before the first tick (version, configuration
//! file, state directory, remediation mode and pause), `log_maintenance`
//! (cluster maintenance from the persisted record) and
//! `log_collector_sources` once the first snapshot is taken (each collector's
//! source found, absent and why, or failing and the usual cause), so nobody
//! has to read `/metrics` to learn that debugfs is not mounted.

use std::path::Path;

use crate::config::Config;
use crate::rules::control::PauseState;
use crate::snapshot::Snapshot;

/// Logs who is starting, with which configuration, in which mode.
pub fn log_start(config_path: Option<&Path>, config: &Config, pause: &PauseState) {
    let config_file = config_path.map_or_else(
        || "none (built-in defaults)".to_string(),
        |p| p.display().to_string(),
    );
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %config_file,
        state_dir = %config.state_dir.0.display(),
        mode = config.remediation.mode.as_str(),
        paused = pause.paused,
        "Starting."
    );
}

/// Logs the cluster maintenance this node starts under (its persisted
/// record; the peers may still add one), next to `log_start`'s mode: a
/// daemon that will not act says so at start.
pub fn log_maintenance(record: Option<&crate::cluster::maintenance::MaintenanceRecord>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    match record {
        Some(r) if r.active && r.expires_at > now => tracing::warn!(
            reason = %crate::logtext::Escaped(&r.reason),
            node = %crate::logtext::Escaped(&r.node),
            expires_in_seconds = (r.expires_at - now).round(),
            "Starting in cluster maintenance: no action runs until it ends."
        ),
        _ => tracing::info!("Not in cluster maintenance."),
    }
}

/// One collector's source at the first snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorSource {
    pub collector: String,
    /// `found`, `absent` or `failed`.
    pub state: &'static str,
    /// Why it is absent or failing, with the usual cause when known.
    pub why: String,
}

/// Every collector's source, in the snapshot's order.
pub fn collector_sources(snapshot: &Snapshot) -> Vec<CollectorSource> {
    snapshot
        .collectors
        .iter()
        .map(|(name, (report, _))| {
            let (state, why) = if !report.success {
                let error = report.error.clone().unwrap_or_default();
                let hint = report
                    .error_kind
                    .and_then(|kind| crate::collector::failure_log::hint(kind, None));
                let why = match hint {
                    Some(hint) => format!("{error} ({hint})"),
                    None => error,
                };
                ("failed", why)
            } else if let Some(absent) = &report.absent {
                ("absent", absent.clone())
            } else {
                ("found", String::new())
            };
            CollectorSource {
                collector: (*name).to_string(),
                state,
                why,
            }
        })
        .collect()
}

/// Logs one line per collector: found at info, absent at info with the
/// reason, failing at warn.
pub fn log_collector_sources(snapshot: &Snapshot) {
    for source in collector_sources(snapshot) {
        match source.state {
            "failed" => tracing::warn!(
                collector = %source.collector,
                source = source.state,
                why = %source.why,
                "Collector source."
            ),
            "absent" => tracing::info!(
                collector = %source.collector,
                source = source.state,
                why = %source.why,
                "Collector source."
            ),
            _ => tracing::info!(
                collector = %source.collector,
                source = source.state,
                "Collector source."
            ),
        }
    }
}
