//! What the engine publishes after each tick: an immutable view for
//! `/metrics` (the self-metrics of the contract and the engine's own) and
//! `/status`, built from the engine's state by `build`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::engine::Engine;
use crate::metrics::{bool_value, Family};
use crate::snapshot::Snapshot;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetView {
    pub rule: &'static str,
    pub target: String,
    pub action: Option<&'static str>,
    /// `pending`, `firing`, `gave_up`.
    pub state: &'static str,
    pub alert_only: bool,
    /// Attempts within the rule's failure window.
    pub attempts: u32,
    pub evidence: String,
    pub last_outcome: Option<&'static str>,
}

/// A target the engine gave up on, present or not (a flapping condition
/// may be clear right now and still given up).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GaveUpView {
    pub rule: &'static str,
    pub target: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub enforcing: bool,
    /// Where actions and their re-checks run (`Executor::placement`): the
    /// daemon's namespace, PID 1's through the helper, or the container's
    /// when the host is unreachable (dry-run only).
    pub action_namespace: String,
    pub paused: bool,
    /// Age of the pause, from when it was set (survives restarts).
    pub paused_seconds: f64,
    /// Unix time the pause was set, when paused.
    pub paused_since: Option<f64>,
    pub pause_reason: Option<String>,
    /// Why the storm brake is engaged, when it is.
    pub storm_brake: Option<String>,
    /// Every reason engaged now (`storm::BrakeReason::as_str`).
    pub storm_brake_reasons: Vec<&'static str>,
    /// Seconds of hold-down left after the last storm evidence.
    pub storm_hold_down_seconds: f64,
    /// Other live nodes reporting trouble (the unhealthy-nodes gate's count).
    pub unhealthy_nodes: u32,
    /// The peers as last asked; `None` without a cluster token.
    pub peers: Option<Vec<crate::cluster::peers::PeerView>>,
    /// The node's cluster identity and the peer protocol's rejections; `None`
    /// for an engine without them (`--once` sets its own).
    pub peer_protocol: Option<crate::cluster::peer_auth::PeerMetrics>,
    /// The cluster lease (an engine without one, `--once`: nothing held,
    /// never asked).
    pub lease: Option<crate::cluster::lease::LeaseView>,
    /// Cluster maintenance in force now (`cluster::maintenance`).
    pub maintenance: Option<crate::cluster::MaintenanceRecord>,
    /// Why the maintenance record found at start cannot be used: it holds
    /// like maintenance until set on or off again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_unreadable: Option<String>,
    /// Seconds of startup grace left (0 once over).
    pub startup_grace_seconds: f64,
    pub budget_per_hour: u32,
    pub budget_remaining: u32,
    /// Per rule: actions left of its own hourly share.
    pub rule_budget_remaining: Vec<(&'static str, u32)>,
    pub targets: Vec<TargetView>,
    pub gave_up: Vec<GaveUpView>,
    /// (rule, action, outcome) → decisions counted since start.
    pub actions: Vec<(&'static str, &'static str, &'static str, u64)>,
    pub audit_write_errors: u64,
    /// Remediation state that could not be restored or saved.
    pub state_errors: u64,
    pub audit_file: String,
    pub recent_audit: Vec<String>,
    /// Time to heal per action (`heal.rs`).
    pub heal: super::heal::HealTimes,
}

fn unix(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub(super) fn build(engine: &Engine, snapshot: &Snapshot, now: Instant) -> Report {
    let targets = engine
        .targets
        .iter()
        .map(|(key, state)| {
            let settings = &engine.settings[key.0];
            let firing = now.duration_since(state.since) >= settings.r#for;
            let history = engine.ledger.histories.get(key);
            let gave_up = history.is_some_and(|h| h.gave_up.is_some());
            TargetView {
                rule: key.0,
                target: key.1.clone(),
                action: state.finding.plan.as_ref().map(|p| p.action().name()),
                state: match (firing, gave_up) {
                    (false, _) => "pending",
                    (true, false) => "firing",
                    (true, true) => "gave_up",
                },
                alert_only: settings.alert_only || state.finding.plan.is_none(),
                attempts: history.map_or(0, |h| h.attempts.len() as u32),
                evidence: state.finding.evidence.clone(),
                last_outcome: state.last_outcome.map(|o| o.as_str()),
            }
        })
        .collect();
    let gave_up = engine
        .ledger
        .histories
        .iter()
        .filter_map(|(key, h)| {
            h.gave_up.as_ref().map(|reason| GaveUpView {
                rule: key.0,
                target: key.1.clone(),
                reason: reason.clone(),
            })
        })
        .collect();
    let per_hour = engine.config.remediation.actions_per_hour;
    let rule_budget_remaining = engine
        .settings
        .iter()
        .filter(|(_, s)| s.enabled)
        .map(|(rule, s)| {
            let share = s.budget_share(per_hour);
            (
                *rule,
                share.saturating_sub(engine.ledger.spent_by(rule) as u32),
            )
        })
        .collect();
    let brake = engine.brake_view(snapshot, now);
    let maintenance = engine
        .cluster_maintenance
        .as_ref()
        .and_then(|m| m.record())
        .filter(|r| r.in_force(SystemTime::now()));
    let maintenance_unreadable = engine
        .cluster_maintenance
        .as_ref()
        .and_then(|m| m.unreadable());
    let pause = engine.control.pause_state();
    let wall_now = engine.clock.wall(now);
    let audit = engine.audit_lock();
    Report {
        enforcing: engine.executor_mode() == super::config::Mode::Enforce,
        action_namespace: engine.executor.placement(),
        paused: pause.paused,
        paused_seconds: pause
            .since
            .filter(|_| pause.paused)
            .and_then(|since| wall_now.duration_since(since).ok())
            .map_or(0.0, |age| age.as_secs_f64()),
        paused_since: pause.since.filter(|_| pause.paused).map(unix),
        pause_reason: pause.reason.filter(|_| pause.paused),
        storm_brake: brake.summary,
        storm_brake_reasons: brake.reasons,
        storm_hold_down_seconds: brake.hold_down_seconds,
        unhealthy_nodes: brake.unhealthy_nodes,
        maintenance,
        maintenance_unreadable,
        lease: Some(engine.lease.as_ref().map_or_else(
            || crate::cluster::lease::LeaseView {
                max_concurrent_nodes: engine.config.cluster.max_concurrent_nodes.max(1),
                ..Default::default()
            },
            |l| l.view(Instant::now()),
        )),
        peers: engine
            .peers
            .as_ref()
            .filter(|p| p.enabled())
            .map(|p| p.views()),
        peer_protocol: engine.peers.as_ref().map(|p| p.metrics()),
        startup_grace_seconds: engine
            .grace
            .remaining(now)
            .map_or(0.0, |left| left.as_secs_f64()),
        budget_per_hour: per_hour,
        budget_remaining: per_hour.saturating_sub(engine.ledger.spent.len() as u32),
        rule_budget_remaining,
        targets,
        gave_up,
        actions: engine
            .counters
            .iter()
            .map(|((r, a, o), n)| (*r, *a, o.as_str(), *n))
            .collect(),
        audit_write_errors: audit.write_errors(),
        state_errors: engine.state_errors,
        audit_file: audit.path().display().to_string(),
        recent_audit: audit.recent(),
        heal: engine.heal_times.clone(),
    }
}

impl Report {
    pub fn families(&self) -> Vec<Family> {
        let mut firing = Family::gauge(
            "ocfs2_watchdog_rule_firing",
            "1 when the rule's condition has held for its `for` duration (0 while pending).",
        );
        for target in &self.targets {
            let value = bool_value(target.state != "pending");
            firing.push(&[("rule", target.rule), ("target", &target.target)], value);
        }
        let mut actions = Family::counter(
            "ocfs2_watchdog_actions",
            "Remediation decisions taken, by rule, action and outcome.",
        );
        for (rule, action, outcome, count) in &self.actions {
            actions.push(
                &[("rule", rule), ("action", action), ("outcome", outcome)],
                *count as f64,
            );
        }
        let mut gave_up = Family::gauge(
            "ocfs2_watchdog_remediation_gave_up",
            "1 for each target remediation gave up on; kept across restarts until POST /reset or the condition stays clear for the rule's failure_window.",
        );
        for g in &self.gave_up {
            gave_up.push(&[("rule", g.rule), ("target", &g.target)], 1.0);
        }
        let mut attempts = Family::gauge(
            "ocfs2_watchdog_remediation_attempts",
            "Actions on the target within the rule's failure_window (gives up at max_attempts).",
        );
        for target in self.targets.iter().filter(|t| !t.alert_only) {
            attempts.push(
                &[("rule", target.rule), ("target", &target.target)],
                f64::from(target.attempts),
            );
        }
        let mut rule_budget = Family::gauge(
            "ocfs2_watchdog_rule_budget_remaining",
            "Actions left in the rule's own share of the rolling hourly budget.",
        );
        for (rule, left) in &self.rule_budget_remaining {
            rule_budget.push(&[("rule", rule)], f64::from(*left));
        }
        let mut families = vec![
            firing,
            actions,
            gave_up,
            attempts,
            Family::gauge(
                "ocfs2_watchdog_paused",
                "1 while remediation is paused (maintenance).",
            )
            .with(&[], bool_value(self.paused)),
            Family::gauge(
                "ocfs2_watchdog_paused_seconds",
                "How long remediation has been paused, from when the pause was set (survives restarts; 0 when not paused).",
            )
            .with(&[], self.paused_seconds),
            Family::gauge(
                "ocfs2_watchdog_paused_since_timestamp_seconds",
                "Unix time the pause was set (the pause file's mtime); 0 when not paused.",
            )
            .with(&[], self.paused_since.unwrap_or(0.0)),
            Family::gauge(
                "ocfs2_watchdog_storm_brake",
                "1 while the storm brake holds actions (SAN- or cluster-wide failure, missing evidence, partition, too many unhealthy nodes, hold-down).",
            )
            .with(&[], bool_value(self.storm_brake.is_some())),
            super::storm::reason_family(&self.storm_brake_reasons),
            Family::gauge(
                "ocfs2_watchdog_maintenance",
                "1 while cluster maintenance holds every action (ocfs2-watchdog maintenance on, here or on a peer).",
            )
            .with(
                &[],
                bool_value(self.maintenance.is_some() || self.maintenance_unreadable.is_some()),
            ),
            maintenance_info(self.maintenance.as_ref()),
            Family::gauge(
                "ocfs2_watchdog_cluster_peers_enabled",
                "1 when the peer protocol runs ([cluster] token_file read); 0: what needs the peers fails closed.",
            )
            .with(&[], bool_value(self.peers.is_some())),
            Family::gauge(
                "ocfs2_watchdog_cluster_peers_unreachable",
                "Peers that did not answer the last peer-protocol request (see ocfs2_watchdog_cluster_peer_up).",
            )
            .with(
                &[],
                self.peers
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .filter(|p| !p.up)
                    .count() as f64,
            ),
            peer_family(self.peers.as_deref().unwrap_or_default()),
            Family::gauge(
                "ocfs2_watchdog_storm_hold_down_seconds",
                "Seconds the storm brake keeps holding destructive actions after the last storm evidence (0 when none).",
            )
            .with(&[], self.storm_hold_down_seconds),
            Family::gauge(
                "ocfs2_watchdog_unhealthy_nodes",
                "Other live nodes whose fresh state report has a firing disruptive finding that is not given up (this node, evicted and powered-off nodes not counted), compared with max_unhealthy_nodes.",
            )
            .with(&[], f64::from(self.unhealthy_nodes)),
            Family::gauge(
                "ocfs2_watchdog_startup_grace_seconds",
                "Seconds left of the startup grace during which no action changes the host (0 once over).",
            )
            .with(&[], self.startup_grace_seconds),
            Family::gauge(
                "ocfs2_watchdog_action_budget_remaining",
                "Actions left in the rolling hourly budget.",
            )
            .with(&[], f64::from(self.budget_remaining)),
            rule_budget,
            Family::counter(
                "ocfs2_watchdog_audit_write_errors",
                "Audit log lines that could not be written and fsync'd.",
            )
            .with(&[], self.audit_write_errors as f64),
            Family::counter(
                "ocfs2_watchdog_remediation_state_errors",
                "Times the remediation state (budget, attempts, give-ups) could not be restored or saved; no action runs while it cannot be saved.",
            )
            .with(&[], self.state_errors as f64),
        ];
        families.extend(self.lease.clone().unwrap_or_default().families());
        families.extend(self.peer_protocol.iter().flat_map(|p| p.families()));
        families.extend(self.heal.families());
        families
    }
}

/// `ocfs2_watchdog_maintenance_info{reason,node,set_by,expires}`: 1 while
/// maintenance is in force, no series otherwise.
fn maintenance_info(record: Option<&crate::cluster::MaintenanceRecord>) -> Family {
    let mut family = Family::gauge(
        "ocfs2_watchdog_maintenance_info",
        "Cluster maintenance in force: why, the node it was set on, who set it and when it expires (RFC 3339).",
    );
    if let Some(r) = record {
        let expires = crate::input::rfc3339(r.expires_at);
        family.push(
            &[
                ("reason", r.reason.as_str()),
                ("node", r.node.as_str()),
                ("set_by", r.caller.as_str()),
                ("expires", expires.as_str()),
            ],
            1.0,
        );
    }
    family
}

/// `ocfs2_watchdog_cluster_peer_up{peer,address}`: 1 when the peer answered
/// its last request.
fn peer_family(peers: &[crate::cluster::peers::PeerView]) -> Family {
    let mut family = Family::gauge(
        "ocfs2_watchdog_cluster_peer_up",
        "1 when the peer's watchdog answered the last peer-protocol request with the cluster token.",
    );
    for peer in peers {
        family.push(
            &[
                ("peer", peer.node.as_str()),
                ("address", peer.address.as_str()),
            ],
            bool_value(peer.up),
        );
    }
    family
}
