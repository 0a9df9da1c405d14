//! The `[remediation]` section: global mode and guard rails, and the knobs of
//! every rule (`[remediation.rules.<name>]`), each with a documented default
//! (docs/rules.md). Kept here, not in `config.rs`, so the rule engine owns it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;

/// Whether actions change the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Every decision is made and audited, nothing is changed (default).
    #[default]
    DryRun,
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DryRun => "dry_run",
            Mode::Enforce => "enforce",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RemediationConfig {
    /// `dry-run` (default) decides and audits but changes nothing; `enforce`
    /// acts. Run dry for a while and read the audit log before enforcing.
    /// `--enforce` sets it from the command line.
    pub mode: Mode,
    /// Actions allowed per rolling hour over all rules; past it every further
    /// decision is `skipped_budget`. Bounds the damage of a rule that is wrong.
    /// Each rule also has its own share (`[remediation.rules.<name>]
    /// actions_per_hour`, default half of this, rounded up), so one rule
    /// stuck in a loop cannot starve the others.
    pub actions_per_hour: u32,
    /// No action that changes the host within this long after boot or after
    /// the daemon starts, whichever ends later, so the watchdog does not race
    /// systemd's own `_netdev` mounts or the o2cb start. `0s` turns it off.
    #[serde(with = "humantime_serde")]
    pub startup_grace: Duration,
    /// Storm brake: a heartbeat region counts as hung when its elapsed time
    /// reaches this fraction of the self-fence timeout. When every region is
    /// hung (or every iSCSI session failed) it is the SAN, not this node.
    pub storm_heartbeat_ratio: f64,
    /// Storm brake: an `hb write hung` negotiation in the kernel log within
    /// this window means the whole cluster's heartbeat writes hang.
    #[serde(with = "humantime_serde")]
    pub storm_window: Duration,
    /// Storm brake: how long it keeps holding destructive actions after the
    /// last storm, partition or unhealthy-nodes evidence. Unset: 2 × the
    /// heartbeat timeout (2 min when the timeout is unknown).
    #[serde(default, with = "humantime_serde")]
    pub storm_hold_down: Option<Duration>,
    /// Storm brake: when it releases, every target's `for` starts again plus
    /// up to this much, a fixed share per node (by node number), so the
    /// nodes do not all act on the tick the SAN comes back.
    #[serde(with = "humantime_serde")]
    pub storm_release_jitter: Duration,
    /// Storm brake: more unhealthy nodes than this (this node with a firing
    /// destructive finding, peers dead on the heartbeat or in DLM recovery)
    /// and no node acts. Unset: half the configured nodes, at least 1.
    pub max_unhealthy_nodes: Option<u32>,
    /// Deadline of one action (external commands are killed past it).
    #[serde(with = "humantime_serde")]
    pub action_timeout: Duration,
    /// Audit lines kept in memory for `/status`.
    pub recent_audit_lines: usize,
    /// Prefix for every host command (a wrapper such as `systemd-run
    /// --scope`). Not for containers: with `--path.rootfs` other than `/`
    /// the whole action already runs in PID 1's mount namespace
    /// (`actions::hostns`), and the prefix is applied there.
    pub command_prefix: Vec<String>,
    /// A remount (`missing_mount`) takes the cluster lease too, so the
    /// nodes remount one at a time (`[cluster] max_concurrent_nodes`).
    pub serialize_remounts: bool,
    /// The device scan that finds a volume's device for a remount (by
    /// UUID=, LABEL= or path) reads loop devices too. Off by default: anyone
    /// who can set up a loop device can give a file a superblock with the
    /// right LABEL or UUID, and the watchdog would mount it.
    pub identity_include_loop: bool,
    /// `/healthz` answers 503 when the engine's thread has not come round
    /// its loop for this many `sampler.interval`s (outside an action, which
    /// has its own deadline): a wedged engine gets the daemon restarted.
    pub engine_stall_intervals: u32,
    /// Per-rule overrides, keyed by rule name (docs/rules.md).
    pub rules: BTreeMap<String, RuleConfig>,
}

impl Default for RemediationConfig {
    fn default() -> Self {
        Self {
            mode: Mode::DryRun,
            actions_per_hour: 10,
            startup_grace: Duration::from_secs(120),
            storm_heartbeat_ratio: 0.5,
            storm_window: Duration::from_secs(120),
            storm_hold_down: None,
            storm_release_jitter: Duration::from_secs(30),
            max_unhealthy_nodes: None,
            action_timeout: Duration::from_secs(60),
            recent_audit_lines: 50,
            command_prefix: Vec::new(),
            serialize_remounts: false,
            identity_include_loop: false,
            engine_stall_intervals: 30,
            rules: BTreeMap::new(),
        }
    }
}

/// Knobs of one rule; every field falls back to the rule's own default.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Turn the rule off entirely (no finding, no alert from the engine).
    pub enabled: Option<bool>,
    /// Report and alert, never act.
    pub alert_only: Option<bool>,
    /// How long the condition must hold before the rule fires.
    #[serde(default, with = "humantime_serde")]
    pub r#for: Option<Duration>,
    /// Quiet time after a successful action before acting again on the target.
    #[serde(default, with = "humantime_serde")]
    pub cooldown: Option<Duration>,
    /// First wait after a failed action; doubles per failure up to `backoff_max`.
    #[serde(default, with = "humantime_serde")]
    pub backoff: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub backoff_max: Option<Duration>,
    /// Actions on one target within `failure_window` before giving up.
    pub max_attempts: Option<u32>,
    /// How long an attempt counts against `max_attempts` (Pacemaker's
    /// `failure-timeout`): attempts decay after it, and a given-up target
    /// is forgotten once its condition stayed clear this long.
    #[serde(default, with = "humantime_serde")]
    pub failure_window: Option<Duration>,
    /// Consecutive `precondition_changed` outcomes before giving up: the
    /// host keeps disagreeing with the snapshot, acting again will not help.
    pub max_precondition_changed: Option<u32>,
    /// This rule's share of the hourly budget (default: half of
    /// `[remediation] actions_per_hour`, rounded up).
    pub actions_per_hour: Option<u32>,
    /// Restart o2cb only: stop these systemd units first instead of refusing
    /// when processes hold files open on the volumes.
    #[serde(default)]
    pub stop_services: Vec<String>,
}

/// The effective knobs of one rule (its defaults with overrides applied).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleSettings {
    pub enabled: bool,
    pub alert_only: bool,
    pub r#for: Duration,
    pub cooldown: Duration,
    pub backoff: Duration,
    pub backoff_max: Duration,
    pub max_attempts: u32,
    pub failure_window: Duration,
    pub max_precondition_changed: u32,
    /// `None`: half the global budget, rounded up (`budget_share`).
    pub actions_per_hour: Option<u32>,
    pub stop_services: Vec<String>,
}

impl RuleSettings {
    /// Actions this rule may take per rolling hour.
    pub fn budget_share(&self, actions_per_hour: u32) -> u32 {
        self.actions_per_hour
            .unwrap_or_else(|| actions_per_hour.div_ceil(2))
            .min(actions_per_hour)
    }

    pub fn with(&self, config: Option<&RuleConfig>) -> Self {
        let Some(c) = config else {
            return self.clone();
        };
        Self {
            enabled: c.enabled.unwrap_or(self.enabled),
            alert_only: c.alert_only.unwrap_or(self.alert_only),
            r#for: c.r#for.unwrap_or(self.r#for),
            cooldown: c.cooldown.unwrap_or(self.cooldown),
            backoff: c.backoff.unwrap_or(self.backoff),
            backoff_max: c.backoff_max.unwrap_or(self.backoff_max),
            max_attempts: c.max_attempts.unwrap_or(self.max_attempts),
            failure_window: c.failure_window.unwrap_or(self.failure_window),
            max_precondition_changed: c
                .max_precondition_changed
                .unwrap_or(self.max_precondition_changed),
            actions_per_hour: c.actions_per_hour.or(self.actions_per_hour),
            stop_services: if c.stop_services.is_empty() {
                self.stop_services.clone()
            } else {
                c.stop_services.clone()
            },
        }
    }
}

impl RemediationConfig {
    pub fn enforcing(&self) -> bool {
        self.mode == Mode::Enforce
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if !(self.storm_heartbeat_ratio > 0.0 && self.storm_heartbeat_ratio <= 1.0) {
            return invalid(
                "remediation.storm_heartbeat_ratio",
                "must be in (0, 1]".into(),
            );
        }
        if self.engine_stall_intervals < 2 {
            return invalid(
                "remediation.engine_stall_intervals",
                "must be at least 2".into(),
            );
        }
        if self.action_timeout.is_zero() {
            return invalid(
                "remediation.action_timeout",
                "must be greater than 0".into(),
            );
        }
        for (name, rule) in &self.rules {
            if !crate::rules::RULES.iter().any(|r| r.name() == name) {
                return invalid(
                    "remediation.rules",
                    format!(
                        "unknown rule {name:?}; the rules are: {} (see docs/rules.md)",
                        crate::rules::RULES
                            .iter()
                            .map(|r| r.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            if rule.max_precondition_changed == Some(0) {
                return invalid(
                    "remediation.rules.max_precondition_changed",
                    format!("must be at least 1 for {name}"),
                );
            }
            if rule.failure_window.is_some_and(|w| w.is_zero()) {
                return invalid(
                    "remediation.rules.failure_window",
                    format!("must be greater than 0 for {name} (e.g. \"1h\")"),
                );
            }
            if rule.max_attempts == Some(0) {
                return invalid(
                    "remediation.rules.max_attempts",
                    format!("must be at least 1 for {name}"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_field_by_field() {
        let base = crate::rules::base_settings();
        let config: RuleConfig = toml::from_str("for = \"1s\"\nmax_attempts = 5\n").unwrap();
        let effective = base.with(Some(&config));
        assert_eq!(effective.r#for, Duration::from_secs(1));
        assert_eq!(effective.max_attempts, 5);
        assert_eq!(effective.cooldown, base.cooldown);
        assert_eq!(base.with(None), base);
    }

    #[test]
    fn mode_parses_kebab_case_and_unknown_rules_are_refused() {
        let config: RemediationConfig = toml::from_str("mode = \"enforce\"\n").unwrap();
        assert!(config.enforcing());
        let config: RemediationConfig =
            toml::from_str("[rules.no_such_rule]\nenabled = false\n").unwrap();
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("no_such_rule"));
        assert!(toml::from_str::<RemediationConfig>("mode = \"yolo\"\n").is_err());
    }
}
