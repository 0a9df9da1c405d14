//! `duplicate_mount_layers`: a mount point carries copies of the same
//! filesystem stacked on itself, identical in flags and propagation too
//! (`stack::duplicate_layer`; docs/interfaces.md §7.2, §7.4). Action: unstack the
//! top run of duplicates. Mount points matching `[mounts] unstack_ignore`
//! are left out: some tools build stacks on purpose.

use super::{base_settings, Finding, Rule, RuleSettings};
use crate::actions::Plan;
use crate::config::Config;
use crate::snapshot::Snapshot;

pub struct DuplicateMountLayers;

impl Rule for DuplicateMountLayers {
    fn name(&self) -> &'static str {
        "duplicate_mount_layers"
    }

    fn sources(&self) -> &'static [&'static str] {
        &["mounts"]
    }

    fn defaults(&self) -> RuleSettings {
        RuleSettings {
            r#for: std::time::Duration::from_secs(60),
            cooldown: std::time::Duration::from_secs(60),
            ..base_settings()
        }
    }

    fn evaluate(&self, snapshot: &Snapshot, config: &Config) -> Vec<Finding> {
        let Some(facts) = snapshot.mounts() else {
            return Vec::new();
        };
        facts
            .mounts
            .iter()
            .filter(|m| m.duplicate_layers > 0 && !m.mountpoint_deleted)
            .filter(|m| !config.mounts.unstack_ignored(&m.mountpoint))
            .map(|m| Finding {
                target: m.mountpoint.clone(),
                evidence: format!(
                    "{} layers, {} duplicates{}",
                    m.stacked,
                    m.duplicate_layers,
                    if m.shared { ", shared propagation" } else { "" }
                ),
                plan: Some(Plan::Unstack {
                    mountpoint: m.mountpoint.clone(),
                }),
            })
            .collect()
    }
}
