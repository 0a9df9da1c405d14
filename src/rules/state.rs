//! The engine's durable memory: what it did to each (rule, target) and how
//! much of the hourly budget it spent, kept across daemon restarts.
//!
//! Without it a restart (or a crash loop under systemd) would hand out a
//! fresh budget and retry what the engine had given up on. `Ledger` holds,
//! per target, the attempts inside the rule's `failure_window` (they decay,
//! as Pacemaker's `failure-timeout`), the consecutive failures that set the
//! backoff, the consecutive `precondition_changed` outcomes, a sticky
//! give-up and the cooldown or backoff in force; and the budget spent in the
//! last hour, per rule. It is saved to `<state_dir>/remediation-state.json`
//! (atomically, `crate::durable`) whenever it changes and before every
//! action; `engine.rs` refuses to act when it cannot be saved. Times are
//! stored as Unix seconds and mapped to the engine's monotonic clock through
//! `Clock`, so tests drive it with simulated `Instant`s.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::RULES;
use crate::input::{self, InputError, Source};

pub const STATE_FILE: &str = "remediation-state.json";
/// Budget entries spent because the state could not be read at start: they
/// are saved and restored like any rule's, so a crash loop stays closed.
pub const STATE_LOST: &str = "state_unreadable";
pub const HOUR: Duration = Duration::from_secs(3600);
/// How far ahead of the clock a past event in the file may lie (the file
/// is this node's own: only a clock step explains more).
const MAX_AHEAD: Duration = Duration::from_secs(300);

/// Maps the engine's `Instant`s to wall-clock time and back.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    instant: Instant,
    wall: SystemTime,
}

impl Clock {
    pub fn now() -> Self {
        Self {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// The `Instant` the clock was taken at.
    pub fn anchor(&self) -> Instant {
        self.instant
    }

    pub fn wall(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.instant) {
            Some(after) => input::saturating_add(self.wall, after),
            None => self
                .wall
                .checked_sub(self.instant.duration_since(at))
                .unwrap_or(UNIX_EPOCH),
        }
    }

    /// `None` for a time the monotonic clock cannot express (before boot).
    pub fn instant(&self, at: SystemTime) -> Option<Instant> {
        match at.duration_since(self.wall) {
            Ok(after) => self.instant.checked_add(after),
            Err(before) => self.instant.checked_sub(before.duration()),
        }
    }

    fn unix(&self, at: Instant) -> f64 {
        self.wall(at)
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
    }

    /// A time read back from the state file. Not finite or before the
    /// epoch: dropped. Further than `max_ahead` in the future (a clock set
    /// back, a forged file): held at that bound, so what it records (budget
    /// spent, an attempt, a wait) still counts and fails closed. Either is
    /// counted as a refused state-file input.
    fn restore(&self, field: &'static str, seconds: f64, max_ahead: Duration) -> Option<Instant> {
        match input::timestamp(field, seconds, self.wall, max_ahead) {
            Ok(at) => self.instant(at),
            Err(error @ InputError::Future { .. }) => {
                input::reject(Source::StateFile, error);
                self.instant(input::saturating_add(self.wall, max_ahead))
            }
            Err(error) => {
                input::reject(Source::StateFile, error);
                None
            }
        }
    }

    fn past(&self, field: &'static str, seconds: f64) -> Option<Instant> {
        self.restore(field, seconds, MAX_AHEAD)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wait {
    Cooldown,
    Backoff,
}

/// What the engine remembers about one (rule, target), present or not.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// Actions that ran (or were interrupted) inside the failure window.
    pub attempts: VecDeque<Instant>,
    /// Consecutive failed or interrupted actions: the backoff exponent.
    pub failures: u32,
    /// Consecutive `precondition_changed` outcomes.
    pub precondition_streak: u32,
    /// Why the engine gave up; sticky until an operator's reset or until the
    /// condition stayed clear for a whole failure window.
    pub gave_up: Option<String>,
    pub waiting: Option<(Instant, Wait)>,
    /// The last time the condition was seen (or the target acted on).
    pub last_seen: Instant,
}

impl History {
    pub fn new(now: Instant) -> Self {
        Self {
            attempts: VecDeque::new(),
            failures: 0,
            precondition_streak: 0,
            gave_up: None,
            waiting: None,
            last_seen: now,
        }
    }

    /// Drops attempts older than `window`.
    pub fn decay(&mut self, now: Instant, window: Duration) {
        while self
            .attempts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.attempts.pop_front();
        }
    }

    /// The wait in force at `now`, if any.
    pub fn waiting_at(&self, now: Instant) -> Option<(Instant, Wait)> {
        self.waiting.filter(|(until, _)| now < *until)
    }
}

pub type Key = (&'static str, String);

/// Everything durable, keyed by rule and target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    pub histories: BTreeMap<Key, History>,
    /// When each action of the last hour was started, and by which rule.
    pub spent: VecDeque<(Instant, &'static str)>,
}

impl Ledger {
    /// Drops budget spent an hour or more ago.
    pub fn expire(&mut self, now: Instant) {
        while self
            .spent
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= HOUR)
        {
            self.spent.pop_front();
        }
    }

    pub fn spent_by(&self, rule: &str) -> usize {
        self.spent.iter().filter(|(_, r)| *r == rule).count()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    spent: Vec<SpentEntry>,
    targets: Vec<TargetEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SpentEntry {
    rule: String,
    at: f64,
}

#[derive(Debug, Serialize, Deserialize)]
struct TargetEntry {
    rule: String,
    target: String,
    attempts: Vec<f64>,
    failures: u32,
    precondition_streak: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gave_up: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    waiting_until: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    waiting: Option<Wait>,
    last_seen: f64,
}

/// Why the saved state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid remediation state: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

fn rule_name(name: &str) -> Option<&'static str> {
    RULES
        .iter()
        .map(|r| r.name())
        .chain([STATE_LOST])
        .find(|r| *r == name)
}

/// Reads the saved ledger; an absent file is an empty ledger (first start).
pub fn load(dir: &Path, clock: &Clock) -> Result<Ledger, StateError> {
    let path = state_path(dir);
    let text = match crate::durable::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ledger::default()),
        Err(source) => return Err(StateError::Read { path, source }),
    };
    match parse(&text, clock) {
        Ok(ledger) => Ok(ledger),
        Err(message) => {
            input::reject(
                Source::StateFile,
                InputError::Malformed {
                    field: STATE_FILE,
                    message: message.clone(),
                },
            );
            // Kept for the operator; the next save writes a valid file.
            let kept = path.with_extension("json.corrupt");
            let _ = std::fs::rename(&path, &kept);
            Err(StateError::Parse {
                path,
                message: format!("{message} (kept as {})", kept.display()),
            })
        }
    }
}

/// The ledger a state file's text describes, mapped onto `clock`; every
/// time is checked (`Clock::restore`). `Err` says why it is not a state file.
pub fn parse(text: &str, clock: &Clock) -> Result<Ledger, String> {
    let file: StateFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut ledger = Ledger::default();
    for entry in file.spent {
        if let (Some(rule), Some(at)) = (rule_name(&entry.rule), clock.past("spent.at", entry.at)) {
            ledger.spent.push_back((at, rule));
        }
    }
    ledger.spent.make_contiguous().sort_by_key(|(at, _)| *at);
    for entry in file.targets {
        // A rule that no longer exists has nothing left to remember.
        let Some(rule) = rule_name(&entry.rule) else {
            continue;
        };
        let now = clock.instant;
        let history = History {
            attempts: entry
                .attempts
                .iter()
                .filter_map(|t| clock.past("attempts", *t))
                .collect(),
            failures: entry.failures,
            precondition_streak: entry.precondition_streak,
            gave_up: entry.gave_up,
            waiting: entry
                .waiting_until
                .and_then(|t| clock.restore("waiting_until", t, crate::config::MAX_DURATION))
                .zip(entry.waiting),
            last_seen: clock.past("last_seen", entry.last_seen).unwrap_or(now),
        };
        ledger.histories.insert((rule, entry.target), history);
    }
    Ok(ledger)
}

/// Saves the ledger atomically.
pub fn save(dir: &Path, clock: &Clock, ledger: &Ledger) -> Result<(), StateError> {
    let path = state_path(dir);
    let file = StateFile {
        version: 1,
        spent: ledger
            .spent
            .iter()
            .map(|(at, rule)| SpentEntry {
                rule: rule.to_string(),
                at: clock.unix(*at),
            })
            .collect(),
        targets: ledger
            .histories
            .iter()
            .map(|((rule, target), h)| TargetEntry {
                rule: rule.to_string(),
                target: target.clone(),
                attempts: h.attempts.iter().map(|t| clock.unix(*t)).collect(),
                failures: h.failures,
                precondition_streak: h.precondition_streak,
                gave_up: h.gave_up.clone(),
                waiting_until: h.waiting.map(|(t, _)| clock.unix(t)),
                waiting: h.waiting.map(|(_, w)| w),
                last_seen: clock.unix(h.last_seen),
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&file).map_err(|e| StateError::Write {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    crate::durable::write_atomically(&path, text.as_bytes())
        .map_err(|source| StateError::Write { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::now();
        let now = Instant::now();
        let mut ledger = Ledger::default();
        ledger.spent.push_back((now, "missing_mount"));
        let mut history = History::new(now);
        history.attempts.push_back(now);
        history.failures = 2;
        history.gave_up = Some("3 attempts within 1h".into());
        history.waiting = Some((now + Duration::from_secs(60), Wait::Backoff));
        ledger
            .histories
            .insert(("missing_mount", "/srv/a".into()), history);
        save(dir.path(), &clock, &ledger).unwrap();
        // A later start maps the same wall times onto its own clock.
        let restored = load(dir.path(), &Clock::now()).unwrap();
        let h = &restored.histories[&("missing_mount", "/srv/a".to_string())];
        assert_eq!(h.failures, 2);
        assert_eq!(h.gave_up.as_deref(), Some("3 attempts within 1h"));
        assert_eq!(h.attempts.len(), 1);
        let (until, wait) = h.waiting.unwrap();
        assert_eq!(wait, Wait::Backoff);
        let error = until.saturating_duration_since(now + Duration::from_secs(60))
            + (now + Duration::from_secs(60)).saturating_duration_since(until);
        assert!(error < Duration::from_millis(50), "{error:?}");
        assert_eq!(restored.spent_by("missing_mount"), 1);
    }

    #[test]
    fn a_corrupt_file_is_an_error_and_an_absent_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path(), &Clock::now()).unwrap(), Ledger::default());
        std::fs::write(state_path(dir.path()), "{\"version\": 1, \"spe").unwrap();
        let err = load(dir.path(), &Clock::now()).unwrap_err();
        assert!(err.to_string().contains("not valid"), "{err}");
        assert!(dir.path().join("remediation-state.json.corrupt").exists());
        // The budget spent for a lost state is restored like any other.
        let clock = Clock::now();
        let mut ledger = Ledger::default();
        ledger.spent.push_back((Instant::now(), STATE_LOST));
        save(dir.path(), &clock, &ledger).unwrap();
        assert_eq!(load(dir.path(), &clock).unwrap().spent.len(), 1);
    }
}
