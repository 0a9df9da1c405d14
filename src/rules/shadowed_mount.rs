//! `shadowed_mount`: a different filesystem is mounted over a watched one.
//! Alert only: which layer is wanted is not the watchdog's to guess.

use super::{base_settings, Finding, Rule, RuleSettings};
use crate::config::Config;
use crate::snapshot::Snapshot;

pub struct ShadowedMount;

impl Rule for ShadowedMount {
    fn name(&self) -> &'static str {
        "shadowed_mount"
    }

    fn sources(&self) -> &'static [&'static str] {
        &["mounts"]
    }

    fn defaults(&self) -> RuleSettings {
        RuleSettings {
            alert_only: true,
            ..base_settings()
        }
    }

    fn evaluate(&self, snapshot: &Snapshot, _config: &Config) -> Vec<Finding> {
        let Some(facts) = snapshot.mounts() else {
            return Vec::new();
        };
        facts
            .mounts
            .iter()
            .filter(|m| m.shadowed)
            .map(|m| Finding {
                target: m.mountpoint.clone(),
                evidence: format!(
                    "{} layers; a different filesystem shadows the watched one",
                    m.stacked
                ),
                plan: None,
            })
            .collect()
    }
}
