//! What the engine publishes after each tick: an immutable view for
//! `/metrics` (the self-metrics of the contract) and `/status`.

use serde::Serialize;

use crate::metrics::{bool_value, Family};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetView {
    pub rule: &'static str,
    pub target: String,
    pub action: Option<&'static str>,
    /// `pending`, `firing`, `gave_up`.
    pub state: &'static str,
    pub alert_only: bool,
    pub attempts: u32,
    pub evidence: String,
    pub last_outcome: Option<&'static str>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub enforcing: bool,
    /// Where actions and their re-checks run (`Executor::placement`): the
    /// daemon's namespace, PID 1's through the helper, or the container's
    /// when the host is unreachable (dry-run only).
    pub action_namespace: String,
    pub paused: bool,
    pub paused_seconds: f64,
    /// Why the storm brake is engaged, when it is.
    pub storm_brake: Option<String>,
    pub budget_per_hour: u32,
    pub budget_remaining: u32,
    pub targets: Vec<TargetView>,
    /// (rule, action, outcome) → decisions counted since start.
    pub actions: Vec<(&'static str, &'static str, &'static str, u64)>,
    pub audit_write_errors: u64,
    pub audit_file: String,
    pub recent_audit: Vec<String>,
}

impl Report {
    pub fn families(&self) -> Vec<Family> {
        let mut firing = Family::gauge(
            "ocfs2_watchdog_rule_firing",
            "1 when the rule's condition has held for its `for` duration (0 while pending).",
        );
        for target in &self.targets {
            let value = bool_value(target.state != "pending");
            firing.push(&[("rule", target.rule), ("target", &target.target)], value);
        }
        let mut actions = Family::counter(
            "ocfs2_watchdog_actions",
            "Remediation decisions taken, by rule, action and outcome.",
        );
        for (rule, action, outcome, count) in &self.actions {
            actions.push(
                &[("rule", rule), ("action", action), ("outcome", outcome)],
                *count as f64,
            );
        }
        vec![
            firing,
            actions,
            Family::gauge(
                "ocfs2_watchdog_paused",
                "1 while remediation is paused (maintenance).",
            )
            .with(&[], bool_value(self.paused)),
            Family::gauge(
                "ocfs2_watchdog_paused_seconds",
                "How long remediation has been paused so far (0 when not paused).",
            )
            .with(&[], self.paused_seconds),
            Family::gauge(
                "ocfs2_watchdog_storm_brake",
                "1 while the storm brake holds every action (SAN- or cluster-wide failure).",
            )
            .with(&[], bool_value(self.storm_brake.is_some())),
            Family::gauge(
                "ocfs2_watchdog_action_budget_remaining",
                "Actions left in the rolling hourly budget.",
            )
            .with(&[], f64::from(self.budget_remaining)),
            Family::counter(
                "ocfs2_watchdog_audit_write_errors",
                "Audit log lines that could not be written and fsync'd.",
            )
            .with(&[], self.audit_write_errors as f64),
        ]
    }
}
