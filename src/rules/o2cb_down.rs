//! `o2cb_down`: the cluster stack is configured but not online while OCFS2
//! mounts are expected, or a global heartbeat region failed. Action: restart
//! o2cb (unmount, restart, remount). Decided here: when volumes are mounted,
//! another node must be live in heartbeat, or this node is the last holder
//! and the finding is alert-only. A failed global heartbeat region is
//! alert-only unless only this node lost it (`o2cb_region`); the engine
//! then restarts only under the cluster lease (`cluster::lease`).

use std::time::Duration;

use super::o2cb_region;
use super::{base_settings, Finding, Rule, RuleSettings};
use crate::actions::Plan;
use crate::config::Config;
use crate::snapshot::Snapshot;

pub struct O2cbDown;

impl Rule for O2cbDown {
    fn name(&self) -> &'static str {
        "o2cb_down"
    }

    fn sources(&self) -> &'static [&'static str] {
        &["o2cb", "heartbeat", "mounts"]
    }

    fn defaults(&self) -> RuleSettings {
        RuleSettings {
            r#for: Duration::from_secs(120),
            cooldown: Duration::from_secs(1800),
            backoff: Duration::from_secs(600),
            max_attempts: 1,
            ..base_settings()
        }
    }

    fn evaluate(&self, snapshot: &Snapshot, config: &Config) -> Vec<Finding> {
        // The o2cb section exists only when a cluster is registered or
        // configured (cluster.conf, sysconfig): configured but not in configfs
        // is exactly "o2cb did not come back after a reboot".
        let Some(o2cb) = snapshot.o2cb() else {
            return Vec::new();
        };
        // O2CB_ENABLED=false while mounts are expected: the operator turned
        // the stack off; say so, do not fight it.
        let disabled = o2cb
            .mismatches
            .iter()
            .any(|m| m.setting == "o2cb_enabled" && m.mismatch);
        let mounts = snapshot
            .mounts()
            .map(|m| m.mounts.as_slice())
            .unwrap_or(&[]);
        let expects_ocfs2 = mounts
            .iter()
            .any(|m| m.expected.as_ref().is_some_and(|e| e.fstype == "ocfs2"));
        let heartbeat = snapshot.heartbeat();
        let failed_regions = heartbeat.map_or(0, |h| h.failed_regions.len());
        let local = o2cb
            .cluster
            .as_ref()
            .and_then(|c| c.local_node())
            .and_then(|n| n.num);
        let region_failed = o2cb.online && failed_regions > 0;
        let mut region_loss = None;
        let evidence = if !o2cb.online && expects_ocfs2 {
            "cluster offline while OCFS2 mounts are expected".to_string()
        } else if region_failed {
            region_loss = heartbeat.and_then(|h| o2cb_region::classify(h, local));
            format!("{failed_regions} heartbeat regions failed")
        } else {
            return Vec::new();
        };
        let volumes = super::o2cb_plan::restore_mounts(mounts);
        let others_live = heartbeat.map_or(0, |h| h.live_any.len().saturating_sub(1));
        let stop_services = config
            .remediation
            .rules
            .get(self.name())
            .map(|r| r.stop_services.clone())
            .unwrap_or_default();
        let plan = match &volumes {
            Ok(volumes) if !disabled && (volumes.is_empty() || others_live > 0) => {
                Some(Plan::RestartO2cb {
                    cluster: o2cb.cluster_name.clone(),
                    volumes: volumes.clone(),
                    stop_services,
                    timeouts: o2cb.last_timeouts,
                })
            }
            _ => None,
        };
        // Fails closed: no restart for a failed region unless only this
        // node lost it (and then the engine takes the cluster lease).
        let plan = plan
            .filter(|_| !region_failed || region_loss.as_ref().is_some_and(|l| l.allows_restart()));
        let evidence = if let Some(loss) = &region_loss {
            format!("{evidence}; {}", loss.evidence_note())
        } else if disabled {
            format!("{evidence}; alert only: O2CB_ENABLED=false")
        } else if let Err(why) = &volumes {
            format!("{evidence}; alert only: {why}")
        } else if plan.is_none() {
            format!("{evidence}; alert only: no other live node holds the volumes")
        } else {
            evidence
        };
        vec![Finding {
            target: o2cb.cluster_name.clone(),
            evidence,
            plan,
        }]
    }
}
