//! `iscsi_session_failed`: an iSCSI session is FAILED or FREE (docs/interfaces.md
//! §6.1) for longer than `for`. Action: `iscsiadm` logout + login, which
//! refuses unless every disk of the session is a multipath path with another
//! active path and none carries a mounted filesystem or a heartbeat region
//! (`actions::iscsi`, re-read on the host). Off by default: the initiator's
//! own recovery usually wins, and re-login during a SAN-wide outage only
//! adds load.

use std::time::Duration;

use super::{base_settings, Finding, Rule, RuleSettings};
use crate::actions::Plan;
use crate::config::Config;
use crate::snapshot::Snapshot;

pub struct IscsiSessionFailed;

impl Rule for IscsiSessionFailed {
    fn name(&self) -> &'static str {
        "iscsi_session_failed"
    }

    fn sources(&self) -> &'static [&'static str] {
        &["iscsi"]
    }

    fn defaults(&self) -> RuleSettings {
        RuleSettings {
            enabled: false,
            r#for: Duration::from_secs(180),
            cooldown: Duration::from_secs(600),
            ..base_settings()
        }
    }

    fn evaluate(&self, snapshot: &Snapshot, _config: &Config) -> Vec<Finding> {
        let Some(iscsi) = snapshot.iscsi() else {
            return Vec::new();
        };
        iscsi
            .sessions
            .iter()
            .filter(|s| matches!(s.state.as_deref(), Some("FAILED" | "FREE")))
            .map(|s| {
                let portal = s.portal();
                let target = s.target_label().to_string();
                Finding {
                    target: s.name.clone(),
                    evidence: format!(
                        "session {} to {target} at {portal} is {}",
                        s.name,
                        s.state.as_deref().unwrap_or("")
                    ),
                    plan: (!target.is_empty() && !portal.is_empty()).then(|| Plan::IscsiRelogin {
                        session: s.name.clone(),
                        target,
                        portal,
                    }),
                }
            })
            .collect()
    }
}
