//! `leaked_heartbeat`: in local heartbeat mode, a heartbeat region is still
//! running although no mounted OCFS2 volume has its UUID (the lab's
//! "mounted on a second directory" leak, docs/interfaces.md §1.4). Decided per
//! UUID, like the action (`actions::heartbeat`): other volumes mounted on
//! the node do not matter, a mount of this UUID or of the region's device
//! does. Alert only by default; the action is `ocfs2_hb_ctl -K -u <UUID>
//! ocfs2`, which re-checks the UUID on the host from the superblocks.

use std::collections::BTreeSet;

use super::{base_settings, Finding, Rule, RuleSettings};
use crate::actions::Plan;
use crate::collector::configfs::HeartbeatMode;
use crate::config::Config;
use crate::snapshot::Snapshot;

pub struct LeakedHeartbeat;

impl Rule for LeakedHeartbeat {
    fn name(&self) -> &'static str {
        "leaked_heartbeat"
    }

    fn sources(&self) -> &'static [&'static str] {
        &["heartbeat", "mounts"]
    }

    fn defaults(&self) -> RuleSettings {
        RuleSettings {
            alert_only: true,
            r#for: std::time::Duration::from_secs(120),
            max_attempts: 1,
            ..base_settings()
        }
    }

    fn evaluate(&self, snapshot: &Snapshot, _config: &Config) -> Vec<Finding> {
        let (Some(heartbeat), Some(mounts)) = (snapshot.heartbeat(), snapshot.mounts()) else {
            return Vec::new();
        };
        if heartbeat.mode != Some(HeartbeatMode::Local) {
            return Vec::new();
        }
        let ocfs2_tops = mounts
            .mounts
            .iter()
            .filter_map(|m| m.top.as_ref().map(|t| (m, t)))
            .filter(|(_, t)| t.fstype == "ocfs2");
        let mut mounted: BTreeSet<&str> = BTreeSet::new();
        let mut devices: BTreeSet<&str> = BTreeSet::new();
        for (mount, top) in ocfs2_tops {
            mounted.insert(mount.uuid.as_str());
            devices.insert(top.source.as_str());
        }
        heartbeat
            .regions
            .iter()
            .filter(|r| !r.uuid.is_empty() && !mounted.contains(r.uuid.as_str()))
            .filter(|r| r.device.is_empty() || !devices.contains(r.device.as_str()))
            .map(|r| Finding {
                target: r.uuid.clone(),
                evidence: format!(
                    "heartbeat region {} on {} runs with no volume mounted",
                    r.uuid, r.device
                ),
                plan: Some(Plan::KillLeakedHeartbeat {
                    uuid: r.uuid.clone(),
                }),
            })
            .collect()
    }
}
