//! Whether a firing target is acted on now, and the audit of why not.
//!
//! The checks run in a fixed order, each read afresh for this one action
//! (not once per tick): given up; paused, a maintenance flag (this node's
//! record, a running OCFS2 tool, a peer's last report) or the storm brake
//! on the freshest snapshot (`hold`); the startup grace; cooldown or
//! backoff; `max_attempts` within the failure window (gives up); the global
//! hourly budget and the rule's share; a volume still held by another
//! action's thread; one disruptive action per tick; the cluster lease
//! (`lease_gate.rs`). The lease can take seconds (the peer route waits for
//! a second round), so `hold` is read once more after it, immediately
//! before the action's first side effect (`recheck`): what turned during
//! the wait gives the lease back and is audited every time. A skip before
//! the lease is audited and counted once per reason, not once per tick.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::engine::{is_disruptive, Engine};
use super::guard::{HoldReason, VolumeClaim};
use super::state::{Key, Wait};
use super::storm::{self, Brake};
use super::RuleSettings;
use crate::actions::audit::{AuditOutcome, Phase};
use crate::actions::Plan;
use crate::snapshot::Snapshot;

impl Engine {
    /// Why the action must wait, read afresh: pause, maintenance (this
    /// node's flags, then the peers' last reports), the storm brake.
    fn hold(&self, snapshot: &Snapshot, plan: &Plan, now: Instant) -> Option<HoldReason> {
        let pause = self.control.pause_state();
        if pause.paused {
            return Some((
                AuditOutcome::SkippedPaused,
                pause.reason.unwrap_or_default(),
            ));
        }
        if let Some(why) = self
            .maintenance
            .iter()
            .find_map(|flag| flag.active_for(plan))
        {
            return Some((
                AuditOutcome::SkippedMaintenance,
                format!("maintenance: {why}"),
            ));
        }
        let fresh = self.freshest(snapshot);
        let snapshot = fresh.as_deref().unwrap_or(snapshot);
        if let Some(why) = self.peer_maintenance(snapshot, now) {
            return Some((
                AuditOutcome::SkippedMaintenance,
                format!("maintenance: {why}"),
            ));
        }
        let config = &self.config.remediation;
        let peers = self.peer_health(snapshot, now);
        let engaged = storm::cluster_wide(snapshot, config, peers.as_ref());
        let hold_down = Brake::hold_down(snapshot, config);
        self.brake
            .hold(&engaged, plan, snapshot, hold_down, now)
            .map(|why| (AuditOutcome::SkippedStorm, why.describe()))
    }

    /// The newest published snapshot when the sampler has published one
    /// since this tick's.
    fn freshest(&self, snapshot: &Snapshot) -> Option<Arc<Snapshot>> {
        self.latest
            .as_ref()
            .map(|latest| latest.borrow().clone())
            .filter(|latest| latest.is_ready() && latest.sequence > snapshot.sequence)
    }

    /// The brake as the report shows it, on the freshest snapshot.
    pub(super) fn brake_view(&self, snapshot: &Snapshot, now: Instant) -> storm::BrakeView {
        let fresh = self.freshest(snapshot);
        let snapshot = fresh.as_deref().unwrap_or(snapshot);
        let config = &self.config.remediation;
        let peers = self.peer_health(snapshot, now);
        let engaged = storm::cluster_wide(snapshot, config, peers.as_ref());
        let left = self
            .brake
            .hold_down_left(Brake::hold_down(snapshot, config), now);
        let mut reasons: Vec<&'static str> = engaged.iter().map(|e| e.reason.as_str()).collect();
        if left.is_some() && engaged.is_empty() {
            reasons.push(storm::BrakeReason::HoldDown.as_str());
        }
        reasons.dedup();
        let summary = engaged.first().map(storm::Engaged::describe).or_else(|| {
            left.map(|l| {
                format!(
                    "hold_down: {} left",
                    humantime::format_duration(Duration::from_secs(l.as_secs()))
                )
            })
        });
        storm::BrakeView {
            summary,
            reasons,
            hold_down_seconds: left.map_or(0.0, |l| l.as_secs_f64()),
            unhealthy_nodes: peers.map_or(0, |p| p.troubled.len() as u32),
        }
    }

    /// Notes this tick's cluster-wide brake evidence for the hold-down and
    /// the report; when the brake releases, the `for` of every target it
    /// held starts again, plus this node's share of
    /// `storm_release_jitter`.
    pub(super) fn observe_brake(&mut self, snapshot: &Snapshot, now: Instant) {
        let config = &self.config.remediation;
        let peers = self.peer_health(snapshot, now);
        let engaged = storm::cluster_wide(snapshot, config, peers.as_ref());
        let hold_down = Brake::hold_down(snapshot, config);
        let was_engaged = !self.brake_engaged.is_empty() || self.brake_holding;
        let release = self.brake.observe(&engaged, hold_down, now);
        self.brake_holding = self.brake.hold_down_left(hold_down, now).is_some();
        if !engaged.is_empty() && !was_engaged {
            let reasons: Vec<String> = engaged.iter().map(|e| e.describe()).collect();
            tracing::warn!(reasons = %reasons.join("; "), "The storm brake is engaged; destructive actions wait.");
        }
        self.brake_engaged = engaged;
        if release != storm::Release::None {
            let local = snapshot
                .o2cb()
                .and_then(|o| o.cluster.as_ref())
                .and_then(|c| c.local_node());
            let fraction = storm::jitter_fraction(
                local.and_then(|n| n.num),
                local.map_or("", |n| n.name.as_str()),
            );
            let jitter = crate::input::fraction_of(config.storm_release_jitter, fraction);
            // Other nodes' trouble held only the disruptive actions: local
            // healing keeps its `for`.
            let all = release == storm::Release::All;
            for state in self
                .targets
                .values_mut()
                .filter(|s| all || s.finding.plan.as_ref().is_some_and(storm::is_disruptive))
            {
                state.since = crate::input::saturating_instant(now, jitter);
            }
            tracing::info!(
                jitter_seconds = jitter.as_secs_f64(),
                targets = if all { "all" } else { "disruptive" },
                "The storm brake released; the targets it held wait their `for` again."
            );
        }
    }

    pub(super) fn decide(
        &mut self,
        key: &Key,
        settings: &RuleSettings,
        snapshot: &Snapshot,
        now: Instant,
    ) {
        let rule = key.0;
        let Some(plan) = self
            .targets
            .get(key)
            .and_then(|s| s.finding.plan.clone())
            .filter(|_| !settings.alert_only)
        else {
            self.skip(key, AuditOutcome::AlertOnly, None, false, now);
            return;
        };
        let history = self.ledger.histories.get(key).cloned();
        if let Some(why) = history.as_ref().and_then(|h| h.gave_up.clone()) {
            self.skip(key, AuditOutcome::GaveUp, Some(why), true, now);
            return;
        }
        if let Some((outcome, why)) = self.hold(snapshot, &plan, now) {
            self.skip(key, outcome, Some(why), true, now);
            return;
        }
        if let Some(left) = self.grace.remaining(now) {
            let detail = format!(
                "{} left",
                humantime::format_duration(Duration::from_secs(left.as_secs()))
            );
            self.skip(
                key,
                AuditOutcome::SkippedStartupGrace,
                Some(detail),
                true,
                now,
            );
            return;
        }
        if let Some((until, wait)) = history.as_ref().and_then(|h| h.waiting_at(now)) {
            let outcome = match wait {
                Wait::Cooldown => AuditOutcome::SkippedCooldown,
                Wait::Backoff => AuditOutcome::SkippedBackoff,
            };
            self.skip(
                key,
                outcome,
                Some(format!("{:?} left", until - now)),
                true,
                now,
            );
            return;
        }
        let attempts = history.as_ref().map_or(0, |h| h.attempts.len() as u32);
        if attempts >= settings.max_attempts {
            let why = format!(
                "{attempts} attempts within {}",
                humantime::format_duration(settings.failure_window)
            );
            self.give_up(key, why, now);
            return;
        }
        let per_hour = self.config.remediation.actions_per_hour;
        let share = settings.budget_share(per_hour);
        if self.ledger.spent.len() >= per_hour as usize {
            self.skip(
                key,
                AuditOutcome::SkippedBudget,
                Some(format!("{per_hour} actions in the last hour")),
                true,
                now,
            );
            return;
        }
        if self.ledger.spent_by(rule) >= share as usize {
            self.skip(
                key,
                AuditOutcome::SkippedBudget,
                Some(format!("rule share of {share} actions per hour used")),
                true,
                now,
            );
            return;
        }
        if let Some(owner) = self.locks.busy(&VolumeClaim::of(&plan)) {
            self.skip(
                key,
                AuditOutcome::SkippedVolumeBusy,
                Some(format!("{owner} is still running on the volume")),
                true,
                now,
            );
            return;
        }
        if is_disruptive(plan.action()) && self.disruptive_taken {
            self.skip(
                key,
                AuditOutcome::SkippedTickLimit,
                Some("one disruptive action per tick".into()),
                true,
                now,
            );
            return;
        }
        if !self.take_lease(key, &plan, snapshot, now) {
            return;
        }
        if !self.recheck(key, &plan, snapshot, now) {
            return;
        }
        self.act(key, settings, &plan, now);
    }

    /// Every gate once more, after the lease and immediately before the
    /// action's first side effect (the ledger's spend, the `before`
    /// line): the peer route's lease takes seconds, and a pause, a
    /// maintenance set on any node (as last polled), storm evidence or a
    /// peer's trouble may have come meanwhile. When one holds now, the
    /// lease goes back and the refusal is audited (every time: each is a
    /// lease taken and given back), counted and logged; `false` then. The
    /// other checks (grace, waits, budget, volume locks, the tick limit)
    /// are the engine's own state, which nothing else changes meanwhile.
    fn recheck(&mut self, key: &Key, plan: &Plan, snapshot: &Snapshot, now: Instant) -> bool {
        // The tick's `now` plus the time the tick (the lease wait) took.
        let at = crate::input::saturating_instant(now, self.tick_started.elapsed());
        let Some((outcome, why)) = self.hold(snapshot, plan, at) else {
            return true;
        };
        let held_lease = self.lease_grant.take().is_some();
        let detail = format!(
            "at the action{}: {why}",
            if held_lease {
                ", after the lease was granted (lease released)"
            } else {
                ""
            }
        );
        tracing::warn!(rule = key.0, target = %key.1, action = plan.action().name(), outcome = outcome.as_str(), reason = %crate::logtext::Escaped(&why), lease_released = held_lease, "A gate turned just before the action; it does not run.");
        let Some(state) = self.targets.get_mut(key) else {
            return false;
        };
        state.last_outcome = Some(outcome);
        let finding = state.finding.clone();
        self.record(
            key.0,
            &finding,
            Phase::Decision,
            outcome,
            Some(detail),
            None,
            now,
        );
        self.count(key.0, plan.action().name(), outcome);
        false
    }

    pub(super) fn give_up(&mut self, key: &Key, why: String, now: Instant) {
        tracing::warn!(rule = key.0, target = %key.1, reason = %crate::logtext::Escaped(&why), "Remediation gave up; a human must fix it.");
        self.history(key.clone(), now).gave_up = Some(why.clone());
        self.ledger_dirty = true;
        self.skip(key, AuditOutcome::GaveUp, Some(why), true, now);
    }

    /// Audits and counts a decision not to act, once per reason.
    pub(super) fn skip(
        &mut self,
        key: &Key,
        outcome: AuditOutcome,
        detail: Option<String>,
        counted: bool,
        now: Instant,
    ) {
        let Some(state) = self.targets.get_mut(key) else {
            return;
        };
        if state.last_outcome == Some(outcome) {
            return;
        }
        state.last_outcome = Some(outcome);
        let finding = state.finding.clone();
        self.record(key.0, &finding, Phase::Decision, outcome, detail, None, now);
        if counted {
            if let Some(plan) = &finding.plan {
                self.count(key.0, plan.action().name(), outcome);
            }
        }
    }
}
