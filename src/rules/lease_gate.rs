//! Where the cluster lease (`cluster::lease`) plugs into the engine: the
//! last check before a disruptive action in `enforce` mode (after the
//! volume locks and the per-tick limit, so a lease is never taken for an
//! action that then does not run), the grant moved into the action's
//! thread by `Engine::execute`, what this node tells its peers each tick
//! (its number, maintenance, firing disruptive findings that are not given
//! up: a given-up finding is not acted on, so it is nobody's trouble to
//! wait for), and what the peers last told this node (`peer_health`,
//! `peer_maintenance`: a report older than `REPORT_POLLS` poll intervals
//! plus one request is not fresh).
//!
//! Dry-run takes no lease: it changes nothing, and a dry-run node holding
//! the lease would hold up a peer that acts. An engine built without a
//! lease fails closed: what needs the lease is skipped (`skipped_lease`);
//! the daemon always builds one.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::config::Mode;
use super::engine::Engine;
use super::state::Key;
use super::storm;
use crate::actions::audit::AuditOutcome;
use crate::actions::Plan;
use crate::cluster::lease::reports::{Heard, PeerReports, PeerStates};
use crate::cluster::lease::{needs_lease, Context, Lease};
use crate::snapshot::Snapshot;

/// A peer's report is fresh for this many poll intervals (plus one
/// request's deadline, the round's own length): a poll or two may fail
/// without holding anything, a peer silent for longer is unknown.
const REPORT_POLLS: u32 = 3;

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

    /// Tests: the peers' reports without the peer protocol.
    pub fn set_peer_reports(&mut self, reports: Arc<PeerReports>) {
        self.peer_reports = Some(reports);
    }

    /// How old a peer's report may be and still count as fresh.
    pub(super) fn report_max_age(&self) -> Duration {
        let cluster = &self.config.cluster;
        cluster
            .poll_interval
            .saturating_mul(REPORT_POLLS)
            .saturating_add(cluster.request_timeout)
    }

    /// The peers' reports as of `now`; `None` without a peer protocol, and
    /// while it has no usable cluster token: then nothing is asked, so
    /// nothing could ever be fresh, and every node of a cluster run without
    /// a token would hold its disruptive actions (and raise the storm brake
    /// alert) for good. The gates then count what this node sees, as an
    /// engine without a peer protocol does; what needs the other nodes'
    /// consent still fails closed in the lease (`no_token`).
    pub(super) fn peer_states(&self, now: Instant) -> Option<PeerStates> {
        if self.peers.as_ref().is_some_and(|peers| !peers.enabled()) {
            return None;
        }
        self.peer_reports
            .as_ref()
            .map(|r| r.read(now, self.report_max_age()))
    }

    /// The peers as the unhealthy-nodes gate counts them, on `snapshot`.
    pub(super) fn peer_health(
        &self,
        snapshot: &Snapshot,
        now: Instant,
    ) -> Option<storm::PeerHealth> {
        self.peer_states(now)
            .map(|states| storm::peer_health(snapshot, &states))
    }

    /// Why a peer's maintenance holds every action: its last report (of
    /// any age: what it said last is all this node knows) says cluster
    /// maintenance is in force there, and it has not left the cluster.
    pub(super) fn peer_maintenance(&self, snapshot: &Snapshot, now: Instant) -> Option<String> {
        let states = self.peer_states(now)?;
        states.peers.iter().find_map(|(node, (_, heard))| {
            heard.last_state().filter(|s| s.maintenance)?;
            if let storm::Presence::Gone(_) = storm::presence(snapshot, *node) {
                return None;
            }
            let when = match heard {
                Heard::Fresh(_) => "as last polled".to_string(),
                Heard::Stale { last, .. } => format!(
                    "as last polled {} ago",
                    humantime::format_duration(Duration::from_secs(
                        last.as_ref().map_or(0, |(age, _)| age.as_secs())
                    ))
                ),
            };
            Some(format!("in force on {} {when}", states.label(*node)))
        })
    }

    /// This node's firing targets that would act destructively and are not
    /// given up, as `rule/target`.
    pub(super) fn disruptive_findings(&self, now: Instant) -> Vec<String> {
        self.targets
            .iter()
            .filter(|(key, state)| {
                let settings = &self.settings[key.0];
                let given_up = self
                    .ledger
                    .histories
                    .get(*key)
                    .is_some_and(|h| h.gave_up.is_some());
                !settings.alert_only
                    && !given_up
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
