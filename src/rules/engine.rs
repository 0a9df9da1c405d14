//! The engine: per-(rule, target) state machine and the global guard rails.
//!
//! Per target: `pending` from the first snapshot showing the finding,
//! `firing` once it held for `for`. A firing target with a plan is acted on
//! unless something holds it, in this order: given up; paused or a
//! maintenance flag, or the storm brake on the freshest snapshot (all read
//! again for every action, `guard.rs`); the startup grace; a cooldown after
//! an action or a doubling backoff after a failure; `max_attempts` actions
//! within the rule's `failure_window` (then it gives up); the hourly budget,
//! global and the rule's own share; another action on the same volume still
//! running (or stuck); a disruptive action already taken on this tick. A
//! skip is audited and counted once per reason, not once per tick.
//!
//! What the engine did to a target outlives the finding and the process
//! (`state.rs`): a resolved target keeps its attempts until they decay, so a
//! flapping condition still gives up; a give-up stays until an operator's
//! `POST /reset` or until the condition stayed clear for a whole window;
//! `max_precondition_changed` consecutive `precondition_changed` outcomes
//! give up too. The ledger is saved before every action and the engine does
//! not act when it cannot be; an action a killed daemon left unfinished is
//! audited `interrupted` at the next start (`recovery.rs`) and backed off.
//!
//! Every action writes an fsync'd `before` line; when that write fails the
//! engine does not act. Actions run on deadline probes (probe.rs): one that
//! blocks on a dead filesystem is reported failed after `HUNG_ACTION_FACTOR`
//! action timeouts, is never started a second time for its target while its
//! thread is still blocked, and keeps its volumes locked until it ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::control::Control;
use super::guard::{HoldReason, MaintenanceFlag, StartupGrace, VolumeClaim, VolumeLocks};
use super::report::Report;
use super::state::{self, Clock, History, Key, Ledger, Wait};
use super::{source_fresh, Finding, RuleSettings, RULES};
use crate::actions::audit::{AuditLog, AuditOutcome, AuditRecord, Phase};
use crate::actions::{Action, Executor, Outcome, Plan};
use crate::config::Config;
use crate::probe::{ProbePool, ProbeState, Prober};
use crate::snapshot::Snapshot;

/// What the engine knows about a target only while its finding lasts.
#[derive(Debug, Clone)]
pub(super) struct TargetState {
    pub since: Instant,
    pub finding: Finding,
    /// Outcome last audited, so a skip is written once per reason.
    pub last_outcome: Option<AuditOutcome>,
}

/// An action chains commands that each get `action_timeout` (an o2cb restart
/// runs several); only a thread still blocked after this many of them is
/// taken for hung.
const HUNG_ACTION_FACTOR: u32 = 5;

/// Actions that take something away from running workloads; at most one of
/// them per tick, so the next snapshot shows its effect before another.
pub fn is_disruptive(action: Action) -> bool {
    matches!(
        action,
        Action::RestartO2cb | Action::IscsiRelogin | Action::KillLeakedHeartbeat
    )
}

pub struct Engine {
    pub(super) config: Arc<Config>,
    pub(super) settings: BTreeMap<&'static str, RuleSettings>,
    executor: Arc<dyn Executor>,
    runs: Prober<Outcome>,
    pub(super) audit: Arc<Mutex<AuditLog>>,
    pub(super) control: Arc<Control>,
    pub(super) clock: Clock,
    pub(super) ledger: Ledger,
    ledger_dirty: bool,
    pub(super) state_errors: u64,
    pub(super) targets: BTreeMap<Key, TargetState>,
    pub(super) counters: BTreeMap<(&'static str, &'static str, AuditOutcome), u64>,
    locks: VolumeLocks,
    pub(super) grace: StartupGrace,
    maintenance: Vec<Box<dyn MaintenanceFlag>>,
    latest: Option<watch::Receiver<Arc<Snapshot>>>,
    disruptive_taken: bool,
    /// When the current tick began on the real clock: audit times add the
    /// time an action took to the tick's `now`.
    tick_started: Instant,
}

impl Engine {
    /// Restores the saved state, settles actions a previous run left
    /// unfinished and starts the startup grace (from now; `set_boot_time`
    /// adds the boot).
    pub fn new(config: Arc<Config>, executor: Box<dyn Executor>, control: Arc<Control>) -> Self {
        let settings = RULES
            .iter()
            .map(|rule| {
                let overrides = config.remediation.rules.get(rule.name());
                (rule.name(), rule.defaults().with(overrides))
            })
            .collect();
        let clock = Clock::now();
        let now = Instant::now();
        let executor: Arc<dyn Executor> = Arc::from(executor);
        control.set_mode(executor.mode().as_str());
        let grace = StartupGrace::new(config.remediation.startup_grace, now, clock.wall(now), None);
        let mut engine = Self {
            settings,
            executor,
            runs: Prober::new("action", ProbePool::new(config.probe.max_threads)),
            audit: control.audit(),
            control,
            clock,
            ledger: Ledger::default(),
            ledger_dirty: false,
            state_errors: 0,
            targets: BTreeMap::new(),
            counters: BTreeMap::new(),
            locks: VolumeLocks::default(),
            grace,
            maintenance: Vec::new(),
            latest: None,
            disruptive_taken: false,
            tick_started: now,
            config,
        };
        engine.restore(now);
        let pause = engine.control.pause_state();
        if pause.paused {
            let age = pause
                .since
                .and_then(|since| SystemTime::now().duration_since(since).ok())
                .map(|age| humantime::format_duration(Duration::from_secs(age.as_secs())));
            tracing::warn!(age = %age.map_or("unknown".into(), |a| a.to_string()), reason = %pause.reason.unwrap_or_default(), "Remediation is paused: nothing is acted on until POST /resume or the pause file is removed.");
        }
        engine
    }

    /// Extends the startup grace to `startup_grace` after the host's boot.
    pub fn set_boot_time(&mut self, boot: Option<SystemTime>) {
        let started = self.clock.instant(self.clock.wall(Instant::now()));
        let started = started.unwrap_or_else(Instant::now);
        let with_boot = StartupGrace::new(
            self.config.remediation.startup_grace,
            started,
            self.clock.wall(started),
            boot,
        );
        if with_boot.until > self.grace.until {
            self.grace = with_boot;
        }
    }

    /// The storm brake is read again from the newest published snapshot
    /// just before each action.
    pub fn follow_snapshots(&mut self, snapshots: watch::Receiver<Arc<Snapshot>>) {
        self.latest = Some(snapshots);
    }

    /// Hook for a cluster-wide maintenance flag, checked before each action.
    pub fn add_maintenance_flag(&mut self, flag: Box<dyn MaintenanceFlag>) {
        self.maintenance.push(flag);
    }

    fn restore(&mut self, now: Instant) {
        let dir = self.config.state_dir.0.clone();
        match state::load(&dir, &self.clock) {
            Ok(ledger) => self.ledger = ledger,
            Err(error) => {
                // Fail closed: without the record of what was done, spend
                // the whole hourly budget rather than hand out a fresh one.
                self.state_errors += 1;
                tracing::error!(error = %error, "Cannot restore the remediation state; no action for an hour.");
                for _ in 0..self.config.remediation.actions_per_hour {
                    self.ledger.spent.push_back((now, ""));
                }
            }
        }
        let audit_file = self.audit_lock().path().to_path_buf();
        let unfinished = match super::recovery::unfinished_actions(&audit_file) {
            Ok(unfinished) => unfinished,
            Err(error) => {
                tracing::error!(file = %audit_file.display(), error = %error, "Cannot read the audit log to find interrupted actions.");
                Vec::new()
            }
        };
        for before in unfinished {
            self.interrupted(before, now);
        }
        self.save_ledger();
    }

    /// Audits and backs off an action a previous run never finished.
    fn interrupted(&mut self, before: AuditRecord, now: Instant) {
        let Some(rule) = RULES.iter().map(|r| r.name()).find(|r| *r == before.rule) else {
            return;
        };
        tracing::warn!(rule, target = %before.target, action = %before.action, started = %before.time, "An action was interrupted by the daemon stopping; backing off.");
        let action = ACTIONS
            .iter()
            .copied()
            .find(|a| a.as_str() == before.action)
            .map_or("", Action::as_str);
        self.audit_lock().append(&AuditRecord {
            time: AuditRecord::at(self.clock.wall(now)),
            phase: Phase::After,
            outcome: AuditOutcome::Interrupted,
            detail: None,
            error: Some(format!(
                "the daemon stopped during the action started at {}",
                before.time
            )),
            caller: None,
            ..before.clone()
        });
        self.count(rule, action, AuditOutcome::Interrupted);
        let settings = self.settings[rule].clone();
        let history = self.history((rule, before.target), now);
        history.attempts.push_back(now);
        history.failures += 1;
        history.waiting = Some((now + backoff(&settings, history.failures), Wait::Backoff));
        self.ledger_dirty = true;
    }

    pub(super) fn audit_lock(&self) -> std::sync::MutexGuard<'_, AuditLog> {
        self.audit.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn history(&mut self, key: Key, now: Instant) -> &mut History {
        self.ledger
            .histories
            .entry(key)
            .or_insert_with(|| History::new(now))
    }

    fn save_ledger(&mut self) -> bool {
        match state::save(&self.config.state_dir.0, &self.clock, &self.ledger) {
            Ok(()) => {
                self.ledger_dirty = false;
                true
            }
            Err(error) => {
                self.state_errors += 1;
                tracing::error!(error = %error, "Cannot save the remediation state.");
                false
            }
        }
    }

    /// Runs `plan` on a deadline thread keyed by rule and target, holding
    /// its volumes until the thread ends.
    fn execute(&mut self, rule: &str, target: &str, plan: &Plan) -> Outcome {
        let deadline = self.config.remediation.action_timeout * HUNG_ACTION_FACTOR;
        let executor = Arc::clone(&self.executor);
        let owner = format!("{rule}/{target}");
        let held = self.locks.claim(VolumeClaim::of(plan), owner.clone());
        let plan = plan.clone();
        match self.runs.run(&owner, deadline, move || {
            let _held = held;
            executor.execute(&plan)
        }) {
            ProbeState::Done { value, .. } => value,
            ProbeState::Stuck { elapsed } | ProbeState::Pending { elapsed } => {
                Outcome::Failed(format!(
                    "still running after {}: blocked on the host",
                    humantime::format_duration(Duration::from_secs(elapsed.as_secs()))
                ))
            }
            ProbeState::Panicked => Outcome::Failed("action panicked".into()),
            ProbeState::NoCapacity | ProbeState::Idle => {
                Outcome::Failed("no action thread available: earlier actions are blocked".into())
            }
        }
    }

    /// Evaluates every rule on `snapshot` at time `now` and acts.
    pub fn tick(&mut self, snapshot: &Snapshot, now: Instant) -> Report {
        self.disruptive_taken = false;
        self.tick_started = Instant::now();
        self.apply_resets();
        self.ledger.expire(now);
        for ((rule, _), history) in self.ledger.histories.iter_mut() {
            let window = self
                .settings
                .get(rule)
                .map_or(state::HOUR, |s| s.failure_window);
            let before = history.attempts.len();
            history.decay(now, window);
            self.ledger_dirty |= history.attempts.len() != before;
        }
        for rule in RULES {
            let name = rule.name();
            let settings = self.settings[name].clone();
            if !settings.enabled {
                self.targets.retain(|(r, _), _| *r != name);
                continue;
            }
            if !rule.sources().iter().all(|s| source_fresh(snapshot, s)) {
                continue;
            }
            let findings = rule.evaluate(snapshot, &self.config);
            let resolved: Vec<Key> = self
                .targets
                .keys()
                .filter(|(r, t)| *r == name && !findings.iter().any(|f| &f.target == t))
                .cloned()
                .collect();
            for key in resolved {
                if let Some(state) = self.targets.remove(&key) {
                    if now.duration_since(state.since) >= settings.r#for {
                        self.record(
                            name,
                            &state.finding,
                            Phase::Decision,
                            AuditOutcome::Resolved,
                            None,
                            None,
                            now,
                        );
                    }
                }
                if let Some(history) = self.ledger.histories.get_mut(&key) {
                    history.precondition_streak = 0;
                    self.ledger_dirty = true;
                }
            }
            for finding in findings {
                let key = (name, finding.target.clone());
                if let Some(history) = self.ledger.histories.get_mut(&key) {
                    history.last_seen = now;
                }
                let state = self.targets.entry(key.clone()).or_insert(TargetState {
                    since: now,
                    finding: finding.clone(),
                    last_outcome: None,
                });
                state.finding = finding;
                if now.duration_since(state.since) >= settings.r#for {
                    self.decide(&key, &settings, snapshot, now);
                }
            }
        }
        self.forget_settled(now);
        if self.ledger_dirty {
            self.save_ledger();
        }
        self.report(snapshot, now)
    }

    /// Applies queued `POST /reset`s: the target starts afresh.
    fn apply_resets(&mut self) {
        for reset in self.control.take_resets() {
            let keys: Vec<Key> = self
                .ledger
                .histories
                .keys()
                .filter(|(r, t)| {
                    *r == reset.rule && reset.target.as_ref().map_or(true, |want| want == t)
                })
                .cloned()
                .collect();
            for key in &keys {
                self.ledger.histories.remove(key);
                if let Some(state) = self.targets.get_mut(key) {
                    state.last_outcome = None;
                }
            }
            self.ledger_dirty = true;
            let detail = format!("cleared {} target(s)", keys.len());
            self.control.record(
                AuditOutcome::Reset,
                reset.rule,
                reset.target.as_deref(),
                &reset.caller,
                None,
            );
            tracing::warn!(rule = reset.rule, target = reset.target.as_deref().unwrap_or("*"), caller = %reset.caller, detail, "Remediation state reset by an operator.");
        }
    }

    /// Forgets targets whose condition stayed clear for a whole window.
    fn forget_settled(&mut self, now: Instant) {
        let settings = &self.settings;
        let targets = &self.targets;
        let before = self.ledger.histories.len();
        self.ledger.histories.retain(|key, history| {
            let window = settings
                .get(key.0)
                .map_or(state::HOUR, |s| s.failure_window);
            targets.contains_key(key)
                || now.saturating_duration_since(history.last_seen) < window
                || history.waiting_at(now).is_some()
        });
        self.ledger_dirty |= self.ledger.histories.len() != before;
    }

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
        let fresh = self
            .latest
            .as_ref()
            .map(|latest| latest.borrow().clone())
            .filter(|latest| latest.is_ready() && latest.sequence > snapshot.sequence);
        let storm = super::storm::evaluate(
            fresh.as_deref().unwrap_or(snapshot),
            &self.config.remediation,
        );
        storm.map(|why| (AuditOutcome::SkippedStorm, why))
    }

    fn decide(&mut self, key: &Key, settings: &RuleSettings, snapshot: &Snapshot, now: Instant) {
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

    fn give_up(&mut self, key: &Key, why: String, now: Instant) {
        tracing::warn!(rule = key.0, target = %key.1, reason = %why, "Remediation gave up; a human must fix it.");
        self.history(key.clone(), now).gave_up = Some(why.clone());
        self.ledger_dirty = true;
        self.skip(key, AuditOutcome::GaveUp, Some(why), true, now);
    }

    fn act(&mut self, key: &Key, settings: &RuleSettings, plan: &Plan, now: Instant) {
        let rule = key.0;
        let Some(finding) = self.targets.get(key).map(|s| s.finding.clone()) else {
            return;
        };
        self.ledger.spent.push_back((now, rule));
        // The spend and the `before` line reach the disk before the action
        // does: a crash mid-action cannot hand out its budget again.
        let outcome = if !self.save_ledger() {
            Outcome::Failed("remediation state unwritable: not acting without it".into())
        } else if !self.record(
            rule,
            &finding,
            Phase::Before,
            AuditOutcome::Started,
            None,
            None,
            now,
        ) {
            Outcome::Failed("audit log unwritable: not acting without a record".into())
        } else {
            let started = Instant::now();
            let outcome = self.execute(rule, &finding.target, plan);
            tracing::info!(rule, target = %finding.target, action = plan.action().as_str(), outcome = outcome.as_str(), seconds = started.elapsed().as_secs_f64(), detail = %outcome.detail(), "Remediation decision.");
            outcome
        };
        let audited = outcome.audit_outcome();
        let (detail, error) = match &outcome {
            Outcome::Failed(e) => (None, Some(e.clone())),
            other => (Some(other.detail().to_string()), None),
        };
        self.record(rule, &finding, Phase::After, audited, detail, error, now);
        self.count(rule, plan.action().as_str(), audited);
        if let Some(state) = self.targets.get_mut(key) {
            state.last_outcome = Some(audited);
        }
        if is_disruptive(plan.action()) && !matches!(outcome, Outcome::PreconditionChanged(_)) {
            self.disruptive_taken = true;
        }
        let history = self.history(key.clone(), now);
        history.last_seen = now;
        match outcome {
            Outcome::Success(_) | Outcome::DryRun(_) => {
                history.attempts.push_back(now);
                history.failures = 0;
                history.precondition_streak = 0;
                history.waiting = Some((now + settings.cooldown, Wait::Cooldown));
            }
            Outcome::Failed(_) => {
                history.attempts.push_back(now);
                history.failures += 1;
                history.precondition_streak = 0;
                history.waiting = Some((now + backoff(settings, history.failures), Wait::Backoff));
            }
            // The host moved on: no attempt spent, look again after a
            // backoff; but a mismatch that lasts is not going to clear.
            Outcome::PreconditionChanged(_) => {
                history.precondition_streak += 1;
                history.waiting = Some((now + settings.backoff, Wait::Backoff));
                let streak = history.precondition_streak;
                if streak >= settings.max_precondition_changed {
                    self.give_up(
                        key,
                        format!("{streak} consecutive precondition_changed"),
                        now,
                    );
                }
            }
        }
        self.ledger_dirty = true;
        self.save_ledger();
    }

    /// Audits and counts a decision not to act, once per reason.
    fn skip(
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

    fn count(&mut self, rule: &'static str, action: &'static str, outcome: AuditOutcome) {
        *self.counters.entry((rule, action, outcome)).or_default() += 1;
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        rule: &'static str,
        finding: &Finding,
        phase: Phase,
        outcome: AuditOutcome,
        detail: Option<String>,
        error: Option<String>,
        now: Instant,
    ) -> bool {
        let record = AuditRecord {
            time: AuditRecord::at(self.clock.wall(now) + self.tick_started.elapsed()),
            rule: rule.to_string(),
            target: finding.target.clone(),
            action: finding
                .plan
                .as_ref()
                .map_or("", |p| p.action().as_str())
                .to_string(),
            mode: self.executor.mode().as_str().to_string(),
            phase,
            outcome,
            evidence: finding.evidence.clone(),
            detail,
            error,
            caller: None,
        };
        self.audit_lock().append(&record)
    }

    pub(super) fn executor_mode(&self) -> super::config::Mode {
        self.executor.mode()
    }

    fn report(&self, snapshot: &Snapshot, now: Instant) -> Report {
        super::report::build(self, snapshot, now)
    }
}

/// Every action, to map an audited action name back.
const ACTIONS: &[Action] = &[
    Action::Remount,
    Action::Unstack,
    Action::RestartO2cb,
    Action::IscsiRelogin,
    Action::KillLeakedHeartbeat,
];

/// The wait after the `failures`-th consecutive failure: doubling from
/// `backoff` up to `backoff_max`.
fn backoff(settings: &RuleSettings, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    settings
        .backoff
        .saturating_mul(factor)
        .min(settings.backoff_max)
}
