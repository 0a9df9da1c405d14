//! The `[collectors]` section: which collectors run, as node_exporter's
//! `--collector.<name>` / `--no-collector.<name>` / `--collector.disable-defaults`.
//!
//! The flags (src/cli.rs) write into this same section, so a flag and the file
//! mean the same thing and a flag wins. A disabled collector is not run at
//! all: its families and its `collector` label values disappear from
//! `/metrics`, and the rules that need its facts see none and stay idle (they
//! fail closed, see docs/rules.md). Two collectors already had an on/off key;
//! the switch sets it too, so there is one answer to "does it run":
//! enabling `fs_state` sets `fs_state.enabled`, disabling `kernel_log` sets
//! `kernel_log.enabled = false` (the reader thread is then never started).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};
use crate::collector::COLLECTORS;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorsConfig {
    /// Start from no collector instead of all of them; `enabled` then names
    /// the ones to run.
    pub disable_defaults: bool,
    /// Collector name to on/off, over the default.
    pub enabled: BTreeMap<String, bool>,
}

/// Every collector name, for flags and error messages.
pub fn collector_names() -> impl Iterator<Item = &'static str> {
    COLLECTORS.iter().map(|collector| collector.name())
}

impl CollectorsConfig {
    /// Whether the named collector runs.
    pub fn is_enabled(&self, name: &str) -> bool {
        self.enabled
            .get(name)
            .copied()
            .unwrap_or(!self.disable_defaults)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for name in self.enabled.keys() {
            if !collector_names().any(|known| known == name) {
                return Err(ConfigError::Invalid {
                    key: "collectors.enabled",
                    reason: format!(
                        "unknown collector {name:?} (known: {})",
                        collector_names().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        Ok(())
    }
}

impl Config {
    /// Carries the collector switches into the two sections that had their
    /// own on/off key; called after the file and the flags are merged.
    pub fn apply_collector_switches(&mut self) {
        match self.collectors.enabled.get("fs_state") {
            Some(true) => self.fs_state.enabled = true,
            Some(false) => self.fs_state.enabled = false,
            None => {}
        }
        if !self.collectors.is_enabled("kernel_log") {
            self.kernel_log.enabled = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn switches_resolve_over_the_defaults() {
        let config = Config::parse(
            "[collectors]\ndisable_defaults = true\nenabled = { mounts = true, dlm = false }\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert!(config.collectors.is_enabled("mounts"));
        assert!(!config.collectors.is_enabled("dlm"));
        assert!(!config.collectors.is_enabled("o2cb"));
        assert!(Config::default().collectors.is_enabled("o2cb"));
        let err =
            Config::parse("[collectors.enabled]\nmount = true\n", Path::new("t.toml")).unwrap_err();
        assert!(
            err.to_string().contains("unknown collector \"mount\""),
            "{err}"
        );
        let err = Config::parse(
            "[collectors]\ndisabled_defaults = true\n",
            Path::new("t.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("disabled_defaults"), "{err}");
    }

    #[test]
    fn switches_set_the_older_keys() {
        let mut config = Config::default();
        config.collectors.enabled.insert("fs_state".into(), true);
        config.collectors.enabled.insert("kernel_log".into(), false);
        config.apply_collector_switches();
        assert!(config.fs_state.enabled);
        assert!(!config.kernel_log.enabled);
    }
}
