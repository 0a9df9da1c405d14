//! `missing_mount`: an expected mount (fstab or `[[mounts.expected]]`) is
//! not mounted. Action: mount it again with its configured options.

use super::{base_settings, Finding, Rule, RuleSettings};
use crate::actions::{MountSpec, Plan};
use crate::config::Config;
use crate::snapshot::Snapshot;

pub struct MissingMount;

impl Rule for MissingMount {
    fn name(&self) -> &'static str {
        "missing_mount"
    }

    fn sources(&self) -> &'static [&'static str] {
        &["mounts"]
    }

    fn defaults(&self) -> RuleSettings {
        RuleSettings {
            r#for: std::time::Duration::from_secs(60),
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
            .filter(|m| m.is_missing())
            .filter_map(|m| {
                let expected = m.expected.as_ref()?;
                Some(Finding {
                    target: m.mountpoint.clone(),
                    evidence: format!(
                        "expected {} mount of {} ({:?}) is absent",
                        expected.fstype, expected.source, expected.origin
                    ),
                    plan: Some(Plan::Remount(MountSpec {
                        mountpoint: m.mountpoint.clone(),
                        source: expected.source.clone(),
                        fstype: expected.fstype.clone(),
                        options: expected.options.clone(),
                    })),
                })
            })
            .collect()
    }
}
