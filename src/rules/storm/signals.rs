//! Storm evidence proper: the SAN or the whole cluster is failing. Engaged
//! when any of:
//! - every heartbeat region's elapsed time is at least
//!   `storm_heartbeat_ratio` of the self-fence timeout (all hung or timing out);
//! - every iSCSI session is out of LOGGED_IN;
//! - the kernel logged an `hb write hung` negotiation (the o2hb all-nodes-hung
//!   protocol, docs/interfaces.md §4.1) within `storm_window`.

use std::time::{Duration, SystemTime};

use crate::kernel_log::classify::Event;
use crate::rules::config::RemediationConfig;
use crate::snapshot::Snapshot;

/// `Some(reason)` when the brake is engaged on this snapshot.
pub fn evaluate(snapshot: &Snapshot, config: &RemediationConfig) -> Option<String> {
    if let Some(heartbeat) = snapshot.heartbeat() {
        let regions = &heartbeat.regions;
        let hung = regions
            .iter()
            .filter(|r| {
                r.ratio
                    .is_some_and(|ratio| ratio >= config.storm_heartbeat_ratio)
            })
            .count();
        if !regions.is_empty() && hung == regions.len() {
            return Some(format!(
                "all {hung} heartbeat regions at or past {:.0}% of the fence timeout",
                config.storm_heartbeat_ratio * 100.0
            ));
        }
    }
    if let Some(iscsi) = snapshot.iscsi() {
        let sessions = &iscsi.sessions;
        if !sessions.is_empty() && sessions.iter().all(|s| !s.is_logged_in()) {
            return Some(format!("all {} iSCSI sessions are down", sessions.len()));
        }
    }
    if let Some(log) = snapshot.kernel_log() {
        let now = snapshot
            .taken_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        let window = config.storm_window.as_secs_f64();
        if let Some(event) = log.recent.iter().rev().find(|e| {
            e.event == Event::HbWriteHung && e.timestamp_seconds.is_some_and(|t| now - t <= window)
        }) {
            return Some(format!("kernel: {}", event.message));
        }
    }
    None
}
