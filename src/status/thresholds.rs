//! The `[check]` configuration section: the thresholds and severities that
//! turn the status overview into a Nagios/Icinga verdict (`check.rs`), used
//! by `ocfs2-watchdog check`, the exit code of `ocfs2-watchdog status` and
//! the verdict line of the `/` page. Validated with the rest of the config
//! (`--check-config`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;
use crate::kernel_log::classify::Event;

/// What a finding of one kind makes the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Shown by `status`, ignored by the verdict.
    Ok,
    Warning,
    Critical,
    Unknown,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CheckConfig {
    /// Heartbeat lag (time since the last disk heartbeat write ÷ self-fence
    /// timeout) at which the check warns. 0.5 is o2hbmonitor's warning point.
    pub heartbeat_ratio_warning: f64,
    /// ... and at which it is critical: at 1.0 the node fences itself.
    pub heartbeat_ratio_critical: f64,
    /// Kernel events (`kernel_events`) newer than this count as findings.
    #[serde(with = "humantime_serde")]
    pub kernel_events_window: Duration,
    /// Which kernel events count (the `event` label values of
    /// `ocfs2_kernel_events_total`).
    pub kernel_events: Vec<String>,
    /// Remediation paused for longer than this is a finding (a pause
    /// forgotten after maintenance); the storm brake always is.
    #[serde(with = "humantime_serde")]
    pub paused_warning_after: Duration,
    pub severity: CheckSeverities,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            heartbeat_ratio_warning: 0.5,
            heartbeat_ratio_critical: 0.8,
            kernel_events_window: Duration::from_secs(3600),
            kernel_events: [
                Event::Fence,
                Event::DlmNodeEvicted,
                Event::HbWriteTimeout,
                Event::HbIoError,
                Event::FsError,
                Event::FsReadonly,
                Event::IscsiRecoveryTimeout,
            ]
            .iter()
            .map(|e| e.as_str().to_string())
            .collect(),
            paused_warning_after: Duration::from_secs(3600),
            severity: CheckSeverities::default(),
        }
    }
}

/// The severity of each kind of finding; `ok` silences one.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CheckSeverities {
    /// A mount's stat/statfs probe is blocked past `mounts.probe_timeout`.
    pub mount_stuck: Severity,
    /// An fstab or configured mount is not mounted.
    pub mount_missing: Severity,
    /// OCFS2 turned the volume read-only after an error.
    pub mount_error_readonly: Severity,
    /// Stacked duplicate layers, a shadowed path, a vanished device or a
    /// deleted mount point.
    pub mount_degraded: Severity,
    /// The o2cb cluster is configured but not registered in configfs.
    pub stack_offline: Severity,
    /// A configured node is not live in heartbeat.
    pub node_down: Severity,
    /// A node live and connected but missing from a DLM domain, or writing
    /// its disk slot while not live in heartbeat.
    pub zombie: Severity,
    /// Running and configured o2cb settings differ.
    pub config_drift: Severity,
    /// A timeout invariant does not hold (heartbeat ≤ storage stall).
    pub timeout_invariant: Severity,
    /// Some, not all, storage paths of a volume are down.
    pub storage_path_down: Severity,
    /// No usable storage path under a mounted volume.
    pub storage_dead: Severity,
    /// `kernel_events` seen within `kernel_events_window`.
    pub kernel_events: Severity,
    /// A rule is firing (its condition held for its `for`).
    pub rule_firing: Severity,
    /// A rule used up its attempts and gave up.
    pub rule_gave_up: Severity,
    /// Remediation held: paused past `paused_warning_after`, or the storm brake.
    pub remediation_held: Severity,
    /// A collector could not read its source.
    pub collector_failed: Severity,
}

impl Default for CheckSeverities {
    fn default() -> Self {
        use Severity::*;
        Self {
            mount_stuck: Critical,
            mount_missing: Critical,
            mount_error_readonly: Critical,
            mount_degraded: Warning,
            stack_offline: Critical,
            node_down: Critical,
            zombie: Critical,
            config_drift: Warning,
            timeout_invariant: Warning,
            storage_path_down: Warning,
            storage_dead: Critical,
            kernel_events: Warning,
            rule_firing: Warning,
            rule_gave_up: Critical,
            remediation_held: Warning,
            collector_failed: Warning,
        }
    }
}

impl CheckConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        let (warning, critical) = (self.heartbeat_ratio_warning, self.heartbeat_ratio_critical);
        if !(warning > 0.0 && warning.is_finite()) {
            return invalid(
                "check.heartbeat_ratio_warning",
                "must be greater than 0".into(),
            );
        }
        if !(critical > warning && critical <= 1.0) {
            return invalid(
                "check.heartbeat_ratio_critical",
                format!(
                    "must be above heartbeat_ratio_warning ({warning}) and at most 1.0 (the self-fence)"
                ),
            );
        }
        if self.kernel_events_window.is_zero() {
            return invalid(
                "check.kernel_events_window",
                "must be greater than 0".into(),
            );
        }
        for name in &self.kernel_events {
            if !Event::ALL.iter().any(|e| e.as_str() == name) {
                let known: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
                return invalid(
                    "check.kernel_events",
                    format!("{name:?} is not an event; known: {}", known.join(", ")),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn check_section_parses_and_is_checked() {
        let config = parse(
            "[check]\nheartbeat_ratio_warning = 0.3\nkernel_events_window = \"10m\"\n\
             [check.severity]\nnode_down = \"warning\"\n",
        )
        .unwrap();
        assert_eq!(config.check.heartbeat_ratio_warning, 0.3);
        assert_eq!(
            config.check.severity.node_down,
            super::Severity::Warning,
            "{config:?}"
        );
        assert_eq!(parse(&config.to_toml()).unwrap(), config);
        for (text, key) in [
            (
                "[check]\nheartbeat_ratio_warning = 0.9\n",
                "heartbeat_ratio_critical",
            ),
            (
                "[check]\nheartbeat_ratio_critical = 1.5\n",
                "heartbeat_ratio_critical",
            ),
            (
                "[check]\nheartbeat_ratio_warning = 0\n",
                "heartbeat_ratio_warning",
            ),
            (
                "[check]\nkernel_events = [\"fencing\"]\n",
                "check.kernel_events",
            ),
            (
                "[check]\nkernel_events_window = \"0s\"\n",
                "kernel_events_window",
            ),
            ("[check.severity]\nnode_down = \"bad\"\n", "node_down"),
            ("[check.severity]\nnode_dead = \"warning\"\n", "node_dead"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
