//! The engine: per-(rule, target) state machine and the global guard rails.
//!
//! Per target: `pending` from the first snapshot showing the finding,
//! `firing` once it held for `for`. A firing target with a plan is acted on
//! unless something holds it (`decision.rs` has the checks and their order:
//! give-up, pause, maintenance and storm read again for every action, the
//! startup grace, cooldown and backoff, attempts, budget, volume locks, one
//! disruptive action per tick). This file owns the state, the tick and the
//! action itself.
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
use super::guard::{MaintenanceFlag, StartupGrace, VolumeClaim, VolumeLocks};
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
    /// The first tick at which the finding had lasted its `for`.
    pub firing_at: Option<Instant>,
    /// The action that succeeded on it (enforce mode), for `heal.rs`.
    pub healed_by: Option<&'static str>,
}

/// An action chains commands that each get `action_timeout` (an o2cb restart
/// runs several); only a thread still blocked after this many of them is
/// taken for hung.
const HUNG_ACTION_FACTOR: u32 = 5;

/// Actions that take something away from running workloads; at most one of
/// them per tick, so the next snapshot shows its effect before another.
pub fn is_disruptive(action: &dyn Action) -> bool {
    action.disruptive()
}

pub struct Engine {
    pub(super) config: Arc<Config>,
    pub(super) settings: BTreeMap<&'static str, RuleSettings>,
    pub(super) executor: Arc<dyn Executor>,
    pub(super) runs: Prober<Outcome>,
    pub(super) audit: Arc<Mutex<AuditLog>>,
    pub(super) control: Arc<Control>,
    pub(super) clock: Clock,
    pub(super) ledger: Ledger,
    pub(super) ledger_dirty: bool,
    pub(super) state_errors: u64,
    /// The last save failed (logged once until one succeeds).
    saving_fails: bool,
    pub(super) targets: BTreeMap<Key, TargetState>,
    pub(super) counters: BTreeMap<(&'static str, &'static str, AuditOutcome), u64>,
    pub(super) locks: VolumeLocks,
    pub(super) grace: StartupGrace,
    pub(super) maintenance: Vec<Box<dyn MaintenanceFlag>>,
    /// The cluster maintenance record, for the report.
    pub(super) cluster_maintenance: Option<Arc<crate::cluster::Maintenance>>,
    /// The peer protocol, for the report (`ocfs2_watchdog_cluster_peer_up`).
    pub(super) peers: Option<Arc<crate::cluster::peers::Peers>>,
    /// The peers' state answers as last polled (`lease_gate.rs`); `None`:
    /// no peer protocol, no peer is counted.
    pub(super) peer_reports: Option<Arc<crate::cluster::lease::reports::PeerReports>>,
    /// The cluster lease disruptive actions take (`lease_gate.rs`).
    pub(super) lease: Option<Arc<crate::cluster::lease::Lease>>,
    /// The grant taken for the action about to run; `execute` moves it
    /// into the action's thread.
    pub(super) lease_grant: Option<crate::cluster::lease::Grant>,
    pub(super) latest: Option<watch::Receiver<Arc<Snapshot>>>,
    pub(super) disruptive_taken: bool,
    /// Hold-down and release of the storm brake across ticks.
    pub(super) brake: super::storm::Brake,
    /// This tick's cluster-wide brake evidence, for the report.
    pub(super) brake_engaged: Vec<super::storm::Engaged>,
    /// The hold-down still runs after the evidence cleared.
    pub(super) brake_holding: bool,
    /// When the current tick began on the real clock: audit times add the
    /// time an action took to the tick's `now`.
    pub(super) tick_started: Instant,
    /// The heartbeat `/healthz` reads; told how long an action may hold
    /// the thread.
    pub(super) liveness: Option<Arc<crate::liveness::EngineHealth>>,
    /// Time to heal per action (`heal.rs`).
    pub(super) heal_times: super::heal::HealTimes,
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
            saving_fails: false,
            targets: BTreeMap::new(),
            counters: BTreeMap::new(),
            locks: VolumeLocks::default(),
            grace,
            maintenance: Vec::new(),
            cluster_maintenance: None,
            peers: None,
            peer_reports: None,
            lease: None,
            lease_grant: None,
            latest: None,
            disruptive_taken: false,
            brake: super::storm::Brake::default(),
            brake_engaged: Vec::new(),
            brake_holding: false,
            tick_started: now,
            liveness: None,
            heal_times: super::heal::HealTimes::default(),
            config,
        };
        engine.restore(now);
        let pause = engine.control.pause_state();
        if pause.paused {
            let age = pause
                .since
                .and_then(|since| SystemTime::now().duration_since(since).ok())
                .map(|age| humantime::format_duration(Duration::from_secs(age.as_secs())));
            tracing::warn!(age = %age.map_or("unknown".into(), |a| a.to_string()), reason = %crate::logtext::Escaped(&pause.reason.unwrap_or_default()), "Remediation is paused: nothing is acted on until POST /resume or the pause file is removed.");
        }
        engine
    }

    /// Extends the startup grace to `startup_grace` after the host's boot.
    /// Beats `liveness` around actions (the runner beats it every loop).
    pub fn set_liveness(&mut self, liveness: Arc<crate::liveness::EngineHealth>) {
        self.liveness = Some(liveness);
    }

    pub fn set_boot_time(&mut self, boot: Option<SystemTime>) {
        // The engine's clock was anchored when the engine (the daemon) started.
        let started = self.clock.anchor();
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

    /// Cluster maintenance holds every action while on, and a running
    /// OCFS2 tool the actions on its volume; both are in the report.
    pub fn set_cluster_maintenance(
        &mut self,
        maintenance: Arc<crate::cluster::Maintenance>,
        paths: crate::host::HostPaths,
    ) {
        self.maintenance
            .push(Box::new(crate::cluster::maintenance::MaintenanceGate(
                Arc::clone(&maintenance),
            )));
        self.maintenance
            .push(Box::new(crate::cluster::tools::ToolGate { paths }));
        self.cluster_maintenance = Some(maintenance);
    }

    pub fn set_peers(&mut self, peers: Arc<crate::cluster::peers::Peers>) {
        self.peer_reports = Some(Arc::clone(peers.reports()));
        self.peers = Some(peers);
    }

    pub(super) fn audit_lock(&self) -> std::sync::MutexGuard<'_, AuditLog> {
        self.audit.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn history(&mut self, key: Key, now: Instant) -> &mut History {
        self.ledger
            .histories
            .entry(key)
            .or_insert_with(|| History::new(now))
    }

    /// Saves the ledger; a failure is counted each time but logged when it
    /// starts and when it ends, not every tick of a full disk.
    pub(super) fn save_ledger(&mut self) -> bool {
        match state::save(&self.config.state_dir.0, &self.clock, &self.ledger) {
            Ok(()) => {
                self.ledger_dirty = false;
                if std::mem::take(&mut self.saving_fails) {
                    tracing::info!("The remediation state can be saved again; actions may run.");
                }
                true
            }
            Err(error) => {
                self.state_errors += 1;
                if !std::mem::replace(&mut self.saving_fails, true) {
                    tracing::error!(error = %error, "Cannot save the remediation state; no action runs until it can be.");
                }
                false
            }
        }
    }

    /// Runs `plan` on a deadline thread keyed by rule and target, holding
    /// its volumes until the thread ends.
    pub(super) fn execute(&mut self, rule: &str, target: &str, plan: &Plan) -> Outcome {
        let deadline = self.config.remediation.action_timeout * HUNG_ACTION_FACTOR;
        let executor = Arc::clone(&self.executor);
        let owner = format!("{rule}/{target}");
        let held = self.locks.claim(VolumeClaim::of(plan), owner.clone());
        let lease = self.lease_grant.take();
        let plan = plan.clone();
        if let Some(liveness) = &self.liveness {
            liveness.busy(Some(deadline));
        }
        let state = self.runs.run(&owner, deadline, move || {
            let _held = (held, lease);
            executor.execute(&plan)
        });
        if let Some(liveness) = &self.liveness {
            liveness.busy(None);
        }
        match state {
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
        self.observe_brake(snapshot, now);
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
                    self.observe_healed(&key, &state, now);
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
                    firing_at: None,
                    healed_by: None,
                });
                state.finding = finding;
                if now.duration_since(state.since) >= settings.r#for {
                    state.firing_at.get_or_insert(now);
                    self.decide(&key, &settings, snapshot, now);
                }
            }
        }
        self.forget_settled(now);
        self.publish_local_state(snapshot, now);
        if self.ledger_dirty {
            self.save_ledger();
        }
        self.report(snapshot, now)
    }

    pub(super) fn act(&mut self, key: &Key, settings: &RuleSettings, plan: &Plan, now: Instant) {
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
            tracing::info!(rule, target = %finding.target, action = plan.action().name(), outcome = outcome.as_str(), seconds = started.elapsed().as_secs_f64(), detail = %crate::logtext::Escaped(outcome.detail()), "Remediation decision.");
            outcome
        };
        // Not run (state or audit unwritable): the lease goes back now.
        self.lease_grant = None;
        let audited = outcome.audit_outcome();
        let (detail, error) = match &outcome {
            Outcome::Failed(e) => (None, Some(e.clone())),
            other => (Some(other.detail().to_string()), None),
        };
        self.record(rule, &finding, Phase::After, audited, detail, error, now);
        self.count(rule, plan.action().name(), audited);
        if let Some(state) = self.targets.get_mut(key) {
            state.last_outcome = Some(audited);
            if matches!(outcome, Outcome::Success(_)) {
                state.healed_by = Some(plan.action().name());
            }
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
                history.waiting = Some((
                    crate::input::saturating_instant(now, settings.cooldown),
                    Wait::Cooldown,
                ));
            }
            Outcome::Failed(_) => {
                history.attempts.push_back(now);
                history.failures = history.failures.saturating_add(1);
                history.precondition_streak = 0;
                history.waiting = Some((
                    crate::input::saturating_instant(now, backoff(settings, history.failures)),
                    Wait::Backoff,
                ));
            }
            // The host moved on: no attempt spent, look again after a
            // backoff; but a mismatch that lasts is not going to clear.
            Outcome::PreconditionChanged(_) => {
                history.precondition_streak = history.precondition_streak.saturating_add(1);
                // Doubling, so a mismatch caused by another problem (o2cb
                // down under a missing mount) leaves the rule that fixes it
                // minutes to act before this one gives up.
                let wait = backoff(settings, history.precondition_streak);
                history.waiting =
                    Some((crate::input::saturating_instant(now, wait), Wait::Backoff));
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

    /// A target whose finding is gone: when an action of ours succeeded on
    /// it, this tick verified the heal (`heal.rs` says what is measured).
    fn observe_healed(&mut self, key: &Key, state: &TargetState, now: Instant) {
        let (Some(action), Some(firing_at)) = (state.healed_by, state.firing_at) else {
            return;
        };
        let heal = now.saturating_duration_since(firing_at);
        let wait = firing_at.saturating_duration_since(state.since);
        tracing::info!(rule = key.0, target = %key.1, action, heal_seconds = heal.as_secs_f64(), wait_seconds = wait.as_secs_f64(), "Target healed.");
        self.heal_times.observe(action, heal, wait);
    }

    pub(super) fn count(
        &mut self,
        rule: &'static str,
        action: &'static str,
        outcome: AuditOutcome,
    ) {
        *self.counters.entry((rule, action, outcome)).or_default() += 1;
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record(
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
            time: AuditRecord::at(crate::input::saturating_add(
                self.clock.wall(now),
                self.tick_started.elapsed(),
            )),
            rule: rule.to_string(),
            target: finding.target.clone(),
            action: finding
                .plan
                .as_ref()
                .map_or("", |p| p.action().name())
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

/// The wait after the `failures`-th consecutive failure: doubling from
/// `backoff` up to `backoff_max`.
pub(super) fn backoff(settings: &RuleSettings, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    settings
        .backoff
        .saturating_mul(factor)
        .min(settings.backoff_max)
}
