//! Whether a firing target is acted on now, and the audit of why not.
//!
//! The checks run in a fixed order, each read afresh for this one action
//! (not once per tick): given up; paused, a maintenance flag or the storm
//! brake on the freshest snapshot (`hold`); the startup grace; cooldown or
//! backoff; `max_attempts` within the failure window (gives up); the global
//! hourly budget and the rule's share; a volume still held by another
//! action's thread; one disruptive action per tick. A skip is audited and
//! counted once per reason, not once per tick.

use std::time::{Duration, Instant};

use super::engine::{is_disruptive, Engine};
use super::guard::{HoldReason, VolumeClaim};
use super::state::{Key, Wait};
use super::RuleSettings;
use crate::actions::audit::{AuditOutcome, Phase};
use crate::snapshot::Snapshot;

impl Engine {
    /// Why the action must wait, read afresh: pause, maintenance, storm.
    fn hold(&self, snapshot: &Snapshot) -> Option<HoldReason> {
        let pause = self.control.pause_state();
        if pause.paused {
            return Some((
                AuditOutcome::SkippedPaused,
                pause.reason.unwrap_or_default(),
            ));
        }
        if let Some(why) = self.maintenance.iter().find_map(|flag| flag.active()) {
            return Some((AuditOutcome::SkippedPaused, format!("maintenance: {why}")));
        }
        self.storm(snapshot)
            .map(|why| (AuditOutcome::SkippedStorm, why))
    }

    /// The storm brake on the newest published snapshot (the sampler may
    /// have published one since this tick's), else on `snapshot`.
    pub(super) fn storm(&self, snapshot: &Snapshot) -> Option<String> {
        let fresh = self
            .latest
            .as_ref()
            .map(|latest| latest.borrow().clone())
            .filter(|latest| latest.is_ready() && latest.sequence > snapshot.sequence);
        super::storm::evaluate(
            fresh.as_deref().unwrap_or(snapshot),
            &self.config.remediation,
        )
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
        if let Some((outcome, why)) = self.hold(snapshot) {
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
        self.act(key, settings, &plan, now);
    }

    pub(super) fn give_up(&mut self, key: &Key, why: String, now: Instant) {
        tracing::warn!(rule = key.0, target = %key.1, reason = %why, "Remediation gave up; a human must fix it.");
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
                self.count(key.0, plan.action().as_str(), outcome);
            }
        }
    }
}
