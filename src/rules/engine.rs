//! The engine: per-(rule, target) state machine and the global guard rails.
//!
//! Per target: `pending` from the first snapshot showing the finding,
//! `firing` once it held for `for`. A firing target with a plan is acted on
//! unless paused, storm-braked, waiting (cooldown after an action, doubling
//! backoff after a failure), given up (`max_attempts` actions without the
//! condition clearing; stays firing until it clears or an operator resumes),
//! or out of hourly budget. A skip is audited and counted once per reason,
//! not once per tick. A target whose finding disappears is resolved and
//! forgotten. Every action writes an fsync'd `before` line; when that write
//! fails the engine does not act. Actions run on deadline probes (probe.rs):
//! one that blocks on a dead filesystem (a stat, an umount2) is reported
//! failed after `HUNG_ACTION_FACTOR` action timeouts and is never started a
//! second time for its target while its thread is still blocked.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::control::Control;
use super::report::{Report, TargetView};
use super::{source_fresh, Finding, RuleSettings, RULES};
use crate::actions::audit::{AuditLog, AuditRecord};
use crate::actions::{Executor, Outcome, Plan};
use crate::config::Config;
use crate::probe::{ProbePool, ProbeState, Prober};
use crate::snapshot::Snapshot;

const HOUR: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Cooldown,
    Backoff,
}

#[derive(Debug, Clone)]
struct TargetState {
    since: Instant,
    finding: Finding,
    attempts: u32,
    failures: u32,
    waiting: Option<(Instant, Wait)>,
    gave_up: bool,
    /// Outcome last audited, so a skip is written once per reason.
    last_outcome: Option<&'static str>,
}

/// An action chains commands that each get `action_timeout` (an o2cb restart
/// runs several); only a thread still blocked after this many of them is
/// taken for hung.
const HUNG_ACTION_FACTOR: u32 = 5;

pub struct Engine {
    config: Arc<Config>,
    settings: BTreeMap<&'static str, RuleSettings>,
    executor: Arc<dyn Executor>,
    runs: Prober<Outcome>,
    audit: AuditLog,
    control: Arc<Control>,
    targets: BTreeMap<(&'static str, String), TargetState>,
    spent: VecDeque<Instant>,
    counters: BTreeMap<(&'static str, &'static str, &'static str), u64>,
    paused_since: Option<Instant>,
    resumes_seen: u64,
}

impl Engine {
    pub fn new(config: Arc<Config>, executor: Box<dyn Executor>, control: Arc<Control>) -> Self {
        let settings = RULES
            .iter()
            .map(|rule| {
                let overrides = config.remediation.rules.get(rule.name());
                (rule.name(), rule.defaults().with(overrides))
            })
            .collect();
        let audit = AuditLog::new(&config.state_dir.0, config.remediation.recent_audit_lines);
        Self {
            settings,
            executor: Arc::from(executor),
            runs: Prober::new("action", ProbePool::new(config.probe.max_threads)),
            audit,
            resumes_seen: control.resumes(),
            control,
            targets: BTreeMap::new(),
            spent: VecDeque::new(),
            counters: BTreeMap::new(),
            paused_since: None,
            config,
        }
    }

    /// Runs `plan` on a deadline thread keyed by rule and target.
    fn execute(&self, rule: &str, target: &str, plan: &Plan) -> Outcome {
        let deadline = self.config.remediation.action_timeout * HUNG_ACTION_FACTOR;
        let executor = Arc::clone(&self.executor);
        let plan = plan.clone();
        match self
            .runs
            .run(&format!("{rule}/{target}"), deadline, move || {
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
        let paused = self.control.paused();
        match (paused, self.paused_since) {
            (true, None) => self.paused_since = Some(now),
            (false, Some(_)) => self.paused_since = None,
            _ => {}
        }
        let resumes = self.control.resumes();
        if resumes != self.resumes_seen {
            self.resumes_seen = resumes;
            for state in self.targets.values_mut() {
                state.gave_up = false;
                state.attempts = 0;
                state.failures = 0;
                state.waiting = None;
                state.last_outcome = None;
            }
        }
        while self
            .spent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= HOUR)
        {
            self.spent.pop_front();
        }
        let storm = super::storm::evaluate(snapshot, &self.config.remediation);

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
            let present: Vec<String> = findings.iter().map(|f| f.target.clone()).collect();
            let resolved: Vec<(&'static str, String)> = self
                .targets
                .keys()
                .filter(|(r, t)| *r == name && !present.contains(t))
                .cloned()
                .collect();
            for key in resolved {
                if let Some(state) = self.targets.remove(&key) {
                    if now.duration_since(state.since) >= settings.r#for {
                        self.record(name, &state.finding, "decision", "resolved", None, None);
                    }
                }
            }
            for finding in findings {
                let key = (name, finding.target.clone());
                let state = self.targets.entry(key.clone()).or_insert(TargetState {
                    since: now,
                    finding: finding.clone(),
                    attempts: 0,
                    failures: 0,
                    waiting: None,
                    gave_up: false,
                    last_outcome: None,
                });
                state.finding = finding;
                if now.duration_since(state.since) >= settings.r#for {
                    self.decide(name, &key, &settings, paused, storm.as_deref(), now);
                }
            }
        }
        self.report(paused, storm, now)
    }

    fn decide(
        &mut self,
        rule: &'static str,
        key: &(&'static str, String),
        settings: &RuleSettings,
        paused: bool,
        storm: Option<&str>,
        now: Instant,
    ) {
        let Some(state) = self.targets.get(key).cloned() else {
            return;
        };
        let Some(plan) = state.finding.plan.clone().filter(|_| !settings.alert_only) else {
            self.skip(key, "alert_only", None, false);
            return;
        };
        if state.gave_up {
            return;
        }
        let skip = if paused {
            Some(("skipped_paused", None))
        } else if let Some(reason) = storm {
            Some(("skipped_storm", Some(reason.to_string())))
        } else if let Some((until, wait)) = state.waiting.filter(|(until, _)| now < *until) {
            let outcome = match wait {
                Wait::Cooldown => "skipped_cooldown",
                Wait::Backoff => "skipped_backoff",
            };
            Some((outcome, Some(format!("{:?} left", until - now))))
        } else if state.attempts >= settings.max_attempts {
            if let Some(s) = self.targets.get_mut(key) {
                s.gave_up = true;
            }
            Some(("gave_up", Some(format!("{} attempts", state.attempts))))
        } else if self.spent.len() >= self.config.remediation.actions_per_hour as usize {
            Some(("skipped_budget", None))
        } else {
            None
        };
        if let Some((outcome, detail)) = skip {
            self.skip(key, outcome, detail, true);
            return;
        }
        self.act(rule, key, settings, &plan, now);
    }

    fn act(
        &mut self,
        rule: &'static str,
        key: &(&'static str, String),
        settings: &RuleSettings,
        plan: &Plan,
        now: Instant,
    ) {
        let Some(finding) = self.targets.get(key).map(|s| s.finding.clone()) else {
            return;
        };
        self.spent.push_back(now);
        let outcome = if self.record(rule, &finding, "before", "started", None, None) {
            let started = Instant::now();
            let outcome = self.execute(rule, &finding.target, plan);
            tracing::info!(rule, target = %finding.target, action = plan.action().as_str(), outcome = outcome.as_str(), seconds = started.elapsed().as_secs_f64(), detail = %outcome.detail(), "Remediation decision.");
            outcome
        } else {
            Outcome::Failed("audit log unwritable: not acting without a record".into())
        };
        let (detail, error) = match &outcome {
            Outcome::Failed(e) => (None, Some(e.clone())),
            other => (Some(other.detail().to_string()), None),
        };
        self.record(rule, &finding, "after", outcome.as_str(), detail, error);
        self.count(rule, plan.action().as_str(), outcome.as_str());
        let Some(state) = self.targets.get_mut(key) else {
            return;
        };
        state.last_outcome = Some(outcome.as_str());
        match outcome {
            Outcome::Success(_) | Outcome::DryRun(_) => {
                state.attempts += 1;
                state.failures = 0;
                state.waiting = Some((now + settings.cooldown, Wait::Cooldown));
            }
            Outcome::Failed(_) => {
                state.attempts += 1;
                state.failures += 1;
                let factor = 1u32 << state.failures.saturating_sub(1).min(16);
                let wait = settings
                    .backoff
                    .saturating_mul(factor)
                    .min(settings.backoff_max);
                state.waiting = Some((now + wait, Wait::Backoff));
            }
            // The host moved on: no attempt spent, look again after a backoff.
            Outcome::PreconditionChanged(_) => {
                state.waiting = Some((now + settings.backoff, Wait::Backoff));
            }
        }
    }

    /// Audits and counts a decision not to act, once per reason.
    fn skip(
        &mut self,
        key: &(&'static str, String),
        outcome: &'static str,
        detail: Option<String>,
        counted: bool,
    ) {
        let Some(state) = self.targets.get_mut(key) else {
            return;
        };
        if state.last_outcome == Some(outcome) {
            return;
        }
        state.last_outcome = Some(outcome);
        let finding = state.finding.clone();
        self.record(key.0, &finding, "decision", outcome, detail, None);
        if counted {
            if let Some(plan) = &finding.plan {
                self.count(key.0, plan.action().as_str(), outcome);
            }
        }
    }

    fn count(&mut self, rule: &'static str, action: &'static str, outcome: &'static str) {
        *self.counters.entry((rule, action, outcome)).or_default() += 1;
    }

    fn record(
        &mut self,
        rule: &'static str,
        finding: &Finding,
        phase: &str,
        outcome: &str,
        detail: Option<String>,
        error: Option<String>,
    ) -> bool {
        self.audit.append(&AuditRecord {
            time: AuditRecord::now(),
            rule: rule.to_string(),
            target: finding.target.clone(),
            action: finding
                .plan
                .as_ref()
                .map_or("", |p| p.action().as_str())
                .to_string(),
            mode: self.executor.mode().as_str().to_string(),
            phase: phase.to_string(),
            outcome: outcome.to_string(),
            evidence: finding.evidence.clone(),
            detail,
            error,
        })
    }

    fn report(&self, paused: bool, storm: Option<String>, now: Instant) -> Report {
        let targets = self
            .targets
            .iter()
            .map(|((rule, target), state)| {
                let settings = &self.settings[rule];
                let firing = now.duration_since(state.since) >= settings.r#for;
                TargetView {
                    rule,
                    target: target.clone(),
                    action: state.finding.plan.as_ref().map(|p| p.action().as_str()),
                    state: match (firing, state.gave_up) {
                        (false, _) => "pending",
                        (true, false) => "firing",
                        (true, true) => "gave_up",
                    },
                    alert_only: settings.alert_only || state.finding.plan.is_none(),
                    attempts: state.attempts,
                    evidence: state.finding.evidence.clone(),
                    last_outcome: state.last_outcome,
                }
            })
            .collect();
        let per_hour = self.config.remediation.actions_per_hour;
        Report {
            enforcing: self.executor.mode() == super::config::Mode::Enforce,
            action_namespace: self.executor.placement(),
            paused,
            paused_seconds: self
                .paused_since
                .map_or(0.0, |since| now.duration_since(since).as_secs_f64()),
            storm_brake: storm,
            budget_per_hour: per_hour,
            budget_remaining: per_hour.saturating_sub(self.spent.len() as u32),
            targets,
            actions: self
                .counters
                .iter()
                .map(|((r, a, o), n)| (*r, *a, *o, *n))
                .collect(),
            audit_write_errors: self.audit.write_errors(),
            audit_file: self.audit.path().display().to_string(),
            recent_audit: self.audit.recent(),
        }
    }
}
