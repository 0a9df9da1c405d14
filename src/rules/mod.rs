//! The rule engine: sustained conditions in the Snapshot become remediation.
//!
//! A rule is a unit struct in its own file, listed once in `RULES`. It looks
//! only at the current Snapshot and returns one `Finding` per target
//! (level-triggered: the same snapshot always gives the same findings). The
//! `Engine` (`engine.rs`) owns everything generic: pending → firing after
//! `for`, then whether to act now (`decision.rs`: cooldown, exponential
//! backoff, attempts within a failure window then give-up, the hourly budget
//! and each rule's share, the startup grace, and the last-moment checks of
//! `guard.rs`: pause (`control.rs`), maintenance, the storm brake
//! (`storm.rs`), volume locks). What it did outlives a restart (`state.rs`,
//! `recovery.rs`). It runs on its own thread (`runner.rs`), consuming the
//! published snapshots, never on the scrape path, and publishes an immutable
//! `Report` (`report.rs`) that `/metrics` and `/status` show.
//!
//! Adding a rule: one file, one entry in `RULES`, one section in docs/rules.md.

pub mod config;
pub mod control;
mod decision;
pub mod effective;
pub mod engine;
pub mod guard;
pub mod heal;
mod lease_gate;
mod recovery;
pub mod report;
pub mod runner;
pub mod state;
pub mod storm;

mod duplicate_layers;
mod iscsi_session;
mod leaked_heartbeat;
mod missing_mount;
mod o2cb_down;
pub mod o2cb_plan;
pub mod o2cb_region;
mod shadowed_mount;

use std::time::Duration;

pub use config::RuleSettings;
pub use engine::Engine;
pub use report::Report;

use crate::actions::Plan;
use crate::config::Config;
use crate::snapshot::Snapshot;

/// One target of a rule whose condition holds in the current snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Mount point, session, region UUID or cluster: bounded.
    pub target: String,
    /// What the snapshot showed, for the audit log and `/status`.
    pub evidence: String,
    /// `None`: alert only (nothing safe to do, e.g. a shadowing filesystem).
    pub plan: Option<Plan>,
}

pub trait Rule: Sync {
    /// The `rule` label and the `[remediation.rules.<name>]` key.
    fn name(&self) -> &'static str;
    /// Collectors whose facts the rule reads. When one of them failed or is
    /// stale on a tick, the rule's targets keep their state: no decision is
    /// taken and nothing resolves on missing evidence.
    fn sources(&self) -> &'static [&'static str];
    /// The rule's knobs when the configuration says nothing.
    fn defaults(&self) -> RuleSettings;
    fn evaluate(&self, snapshot: &Snapshot, config: &Config) -> Vec<Finding>;
}

/// Every rule the engine runs.
pub static RULES: &[&dyn Rule] = &[
    &duplicate_layers::DuplicateMountLayers,
    &shadowed_mount::ShadowedMount,
    &missing_mount::MissingMount,
    &o2cb_down::O2cbDown,
    &iscsi_session::IscsiSessionFailed,
    &leaked_heartbeat::LeakedHeartbeat,
];

/// Settings shared by most rules; each rule starts from these.
pub fn base_settings() -> RuleSettings {
    RuleSettings {
        enabled: true,
        alert_only: false,
        r#for: Duration::from_secs(30),
        cooldown: Duration::from_secs(300),
        backoff: Duration::from_secs(30),
        backoff_max: Duration::from_secs(3600),
        max_attempts: 3,
        failure_window: Duration::from_secs(3600),
        max_precondition_changed: 5,
        actions_per_hour: None,
        stop_services: Vec::new(),
    }
}

/// True when the collector ran successfully on this tick (not stale).
pub fn source_fresh(snapshot: &Snapshot, collector: &str) -> bool {
    snapshot
        .collectors
        .get(collector)
        .is_some_and(|(report, _)| report.success && !report.stale)
}
