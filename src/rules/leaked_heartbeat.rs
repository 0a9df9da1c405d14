//! `leaked_heartbeat`: in local heartbeat mode, a heartbeat region is still
//! running although no mounted OCFS2 volume has its UUID (the lab's
//! "mounted on a second directory" leak, docs/interfaces.md §1.4). Alert only by
//! default; the action is `ocfs2_hb_ctl -K -u <UUID> ocfs2`.

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
        let mounted: BTreeSet<&str> = mounts
            .mounts
            .iter()
            .filter(|m| m.top.as_ref().is_some_and(|t| t.fstype == "ocfs2"))
            .map(|m| m.uuid.as_str())
            .collect();
        heartbeat
            .regions
            .iter()
            .filter(|r| !r.uuid.is_empty() && !mounted.contains(r.uuid.as_str()))
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
