//! Where the cluster lease (`cluster::lease`) plugs into the engine: the
//! last check before a disruptive action in `enforce` mode (after the
//! volume locks and the per-tick limit, so a lease is never taken for an
//! action that then does not run), the grant moved into the action's
//! thread by `Engine::execute`, and what this node tells its peers each
//! tick (its number, maintenance, firing disruptive findings).
//!
//! Dry-run takes no lease: it changes nothing, and a dry-run node holding
//! the lease would hold up a peer that acts. An engine built without a
//! lease fails closed: what needs the lease is skipped (`skipped_lease`);
//! the daemon always builds one.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::config::Mode;
use super::engine::Engine;
use super::state::Key;
use super::storm;
use crate::actions::audit::AuditOutcome;
use crate::actions::Plan;
use crate::cluster::lease::{needs_lease, Context, Lease};
use crate::collector::nodemap::NodeSet;
use crate::snapshot::Snapshot;

/// Why this node's DLM view cannot stand for the cluster's: it does not
/// heartbeat (its domain is an island), or a domain misses a live node or
/// is recovering.
fn dlm_untrusted(snapshot: &Snapshot) -> Option<String> {
    let local = snapshot
        .o2cb()
        .and_then(|o| o.cluster.as_ref())
        .and_then(|c| c.local_node())
        .and_then(|n| n.num);
    let Some(local) = local else {
        return Some("this node's number is unknown".into());
    };
    let Some(heartbeat) = snapshot.heartbeat() else {
        return Some("no heartbeat facts".into());
    };
    if heartbeat.regions.is_empty() || !heartbeat.live_any.contains(&local) {
        return Some("this node does not heartbeat (local mode: no volume mounted)".into());
    }
    let Some(dlm) = snapshot.dlm() else {
        return Some("no DLM facts".into());
    };
    dlm.domains
        .iter()
        .find(|d| !d.missing_from_domain.is_empty() || !d.state.recovery_map.is_empty())
        .map(|d| {
            format!(
                "DLM domain {} is missing a live node or recovering",
                d.state.domain
            )
        })
}

impl Engine {
    /// Disruptive actions take the cluster lease first.
    pub fn set_lease(&mut self, lease: Arc<Lease>) {
        self.lease = Some(lease);
    }

    /// Peers that reported a firing disruptive finding.
    pub(super) fn peer_trouble(&self) -> NodeSet {
        self.peers
            .as_ref()
            .map(|p| p.troubled())
            .unwrap_or_default()
    }

    /// This node's firing targets that would act destructively, as
    /// `rule/target`.
    pub(super) fn disruptive_findings(&self, now: Instant) -> Vec<String> {
        self.targets
            .iter()
            .filter(|(key, state)| {
                let settings = &self.settings[key.0];
                !settings.alert_only
                    && now.duration_since(state.since) >= settings.r#for
                    && state
                        .finding
                        .plan
                        .as_ref()
                        .is_some_and(storm::is_destructive)
            })
            .map(|((rule, target), _)| format!("{rule}/{target}"))
            .collect()
    }

    /// Tells the peers (through `LocalState`) what this tick found.
    pub(super) fn publish_local_state(&self, snapshot: &Snapshot, now: Instant) {
        let Some(lease) = &self.lease else {
            return;
        };
        let node_num = snapshot
            .o2cb()
            .and_then(|o| o.cluster.as_ref())
            .and_then(|c| c.local_node())
            .and_then(|n| n.num);
        let maintenance = self
            .cluster_maintenance
            .as_ref()
            .and_then(|m| m.record())
            .is_some_and(|r| r.in_force(SystemTime::now()));
        lease
            .local()
            .observe(node_num, maintenance, self.disruptive_findings(now));
    }

    /// Takes the lease for `plan` when it needs one; `false` after auditing
    /// `skipped_lease` with the reason.
    pub(super) fn take_lease(
        &mut self,
        key: &Key,
        plan: &Plan,
        snapshot: &Snapshot,
        now: Instant,
    ) -> bool {
        if self.executor_mode() != Mode::Enforce
            || !needs_lease(plan, self.config.remediation.serialize_remounts)
        {
            return true;
        }
        let Some(lease) = self.lease.clone() else {
            // Fail closed: an engine built without the lease must not act
            // alone on what needs the cluster's agreement.
            let detail = "lease unavailable: this engine has no cluster lease".to_string();
            self.skip(key, AuditOutcome::SkippedLease, Some(detail), true, now);
            return false;
        };
        let context = Context {
            stack_online: snapshot.o2cb().is_some_and(|o| o.online),
            live_on_disk: storm::disk_view(snapshot),
            dlm_untrusted: dlm_untrusted(snapshot),
        };
        match lease.acquire(plan, &context) {
            Ok(grant) => {
                self.lease_grant = Some(grant);
                true
            }
            Err(denied) => {
                let detail = format!(
                    "lease {} by {}: {}",
                    denied.result.as_str(),
                    denied.route.as_str(),
                    denied.reason
                );
                self.skip(key, AuditOutcome::SkippedLease, Some(detail), true, now);
                false
            }
        }
    }
}
