//! What one audit line says: the record and its closed vocabularies.
//!
//! `AuditOutcome` is the one list of outcomes the daemon writes to the audit
//! log and counts in `ocfs2_watchdog_actions_total{outcome}`; nothing else
//! spells an outcome, so a reader (the engine rebuilding its state at start,
//! a test, an operator's `jq`) meets only these values.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Where in a decision a line was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// About to act (outcome `started`), fsync'd before the action runs.
    Before,
    /// The action ended (or was found interrupted at the next start).
    After,
    /// A decision not to act, a resolution or a give-up.
    Decision,
    /// An operator's pause, resume or reset.
    Control,
    /// One step of an action's own undo journal (the o2cb restart restoring
    /// what it changed after a failure), written by the action as it runs.
    Undo,
}

/// Every outcome the audit log and the actions counter know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Started,
    Success,
    Failed,
    DryRun,
    PreconditionChanged,
    /// A `before` line without its `after`: the daemon died mid-action.
    Interrupted,
    SkippedCooldown,
    SkippedBackoff,
    SkippedBudget,
    SkippedPaused,
    SkippedStorm,
    SkippedStartupGrace,
    /// Another rule's action on the same volume is running (or stuck).
    SkippedVolumeBusy,
    /// A disruptive action already ran on this tick.
    SkippedTickLimit,
    /// Cluster maintenance is on, or an OCFS2 tool runs on the volume.
    SkippedMaintenance,
    /// The cluster lease was not granted (busy, peers unreachable, no
    /// cluster token).
    SkippedLease,
    GaveUp,
    AlertOnly,
    Resolved,
    Paused,
    Resumed,
    Reset,
    /// Cluster maintenance turned on (here or by a peer).
    MaintenanceOn,
    /// Cluster maintenance turned off, or expired.
    MaintenanceOff,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::DryRun => "dry_run",
            Self::PreconditionChanged => "precondition_changed",
            Self::Interrupted => "interrupted",
            Self::SkippedCooldown => "skipped_cooldown",
            Self::SkippedBackoff => "skipped_backoff",
            Self::SkippedBudget => "skipped_budget",
            Self::SkippedPaused => "skipped_paused",
            Self::SkippedStorm => "skipped_storm",
            Self::SkippedStartupGrace => "skipped_startup_grace",
            Self::SkippedVolumeBusy => "skipped_volume_busy",
            Self::SkippedTickLimit => "skipped_tick_limit",
            Self::SkippedMaintenance => "skipped_maintenance",
            Self::SkippedLease => "skipped_lease",
            Self::GaveUp => "gave_up",
            Self::AlertOnly => "alert_only",
            Self::Resolved => "resolved",
            Self::Paused => "paused",
            Self::Resumed => "resumed",
            Self::Reset => "reset",
            Self::MaintenanceOn => "maintenance_on",
            Self::MaintenanceOff => "maintenance_off",
        }
    }
}

impl std::fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for AuditOutcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for AuditOutcome {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// One audit line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub rule: String,
    pub target: String,
    /// Action name, or empty for an alert-only finding or a control line.
    pub action: String,
    /// `dry_run` or `enforce`.
    pub mode: String,
    pub phase: Phase,
    pub outcome: AuditOutcome,
    pub evidence: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Control lines: who asked (the peer address of the HTTP request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
}

impl AuditRecord {
    pub fn now() -> String {
        Self::at(SystemTime::now())
    }

    pub fn at(time: SystemTime) -> String {
        humantime::format_rfc3339_millis(time).to_string()
    }

    /// The line's time, when it parses.
    pub fn parsed_time(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.time).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_serialize_as_their_names() {
        for outcome in [
            AuditOutcome::Started,
            AuditOutcome::PreconditionChanged,
            AuditOutcome::SkippedStartupGrace,
            AuditOutcome::Interrupted,
        ] {
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{}\"", outcome.as_str()));
            assert_eq!(
                serde_json::from_str::<AuditOutcome>(&json).unwrap(),
                outcome
            );
        }
        assert!(AuditOutcome::GaveUp == "gave_up");
    }
}
