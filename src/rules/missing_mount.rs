//! `missing_mount`: an expected mount (fstab or `[[mounts.expected]]`) is
//! not mounted. Action: mount it again with its configured options, on the
//! device that carries the expected OCFS2 volume (`actions::identity`). An
//! OCFS2 source given as a kernel name is alert only unless
//! `[mounts] allow_kernel_names` is on and the UUID last seen there is known.

use super::{base_settings, Finding, Rule, RuleSettings};
use crate::actions::{MountSpec, Plan};
use crate::collector::mounts::{is_unstable_device_name, normalize_uuid};
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

    fn evaluate(&self, snapshot: &Snapshot, config: &Config) -> Vec<Finding> {
        let Some(facts) = snapshot.mounts() else {
            return Vec::new();
        };
        let allow_kernel_names = config.mounts.allow_kernel_names;
        facts
            .mounts
            .iter()
            .filter(|m| m.is_missing())
            .filter_map(|m| {
                let expected = m.expected.as_ref()?;
                let ocfs2 = expected.fstype == "ocfs2";
                let kernel_name = ocfs2 && is_unstable_device_name(&expected.source);
                let uuid = expected
                    .source
                    .strip_prefix("UUID=")
                    .map(|u| normalize_uuid(u.trim_matches('"')))
                    .or_else(|| (!m.last_uuid.is_empty()).then(|| m.last_uuid.clone()))
                    .filter(|_| ocfs2);
                let mut evidence = format!(
                    "expected {} mount of {} ({:?}) is absent",
                    expected.fstype, expected.source, expected.origin
                );
                // A kernel name can be another volume by now: alert only,
                // unless allowed and a UUID is known to check the device with.
                let refused = match (kernel_name, allow_kernel_names, &uuid) {
                    (true, false, _) => {
                        Some("the source is a kernel name ([mounts] allow_kernel_names is off)")
                    }
                    (true, true, None) => {
                        Some("the source is a kernel name and no UUID was ever seen mounted there")
                    }
                    _ => None,
                };
                if let Some(why) = refused {
                    evidence.push_str("; not remounted: ");
                    evidence.push_str(why);
                }
                Some(Finding {
                    target: m.mountpoint.clone(),
                    evidence,
                    plan: refused.is_none().then(|| {
                        Plan::Remount(MountSpec {
                            mountpoint: m.mountpoint.clone(),
                            source: expected.source.clone(),
                            fstype: expected.fstype.clone(),
                            options: expected.options.clone(),
                            uuid,
                            allow_kernel_name: allow_kernel_names,
                        })
                    }),
                })
            })
            .collect()
    }
}
