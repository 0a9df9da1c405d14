//! Cluster-wide maintenance mode: while it is on, no node acts.
//!
//! One record, `<state_dir>/maintenance.json`, written atomically: on or
//! off, why, which node and who set it, when it changed and when it
//! expires (default 2 h: a forgotten maintenance ends by itself). Records
//! from other nodes are merged by `changed_at` (the newer wins; on a tie
//! "on" wins, failing closed), so `off` on any node ends it everywhere and
//! a restarted daemon picks up the cluster's state. Every change, local or
//! from a peer, and the expiry are audited (phase `control`). A record that
//! cannot be read counts as maintenance and says why.
//!
//! Every record from outside (a peer's answer, the file at start, an admin's
//! `--for`) is checked against `Limits` first (`crate::input`): times finite
//! and not further ahead than `[cluster] max_clock_skew`, a window no longer
//! than `[cluster] max_maintenance`, bounded text. A peer's bad record is
//! refused and counted; a bad file at start holds like an unreadable one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::actions::audit::{AuditLog, AuditOutcome, AuditRecord, Phase};
use crate::input::{self, InputError, Source};
use crate::rules::guard::MaintenanceFlag;

pub const MAINTENANCE_FILE: &str = "maintenance.json";
/// How long `maintenance on` lasts without `--for`.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(2 * 3600);
/// Longest text (reason, node, caller) a record may carry.
pub const MAX_TEXT: usize = 1024;

/// What a record from outside must respect (`[cluster] max_maintenance`
/// and `max_clock_skew`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest maintenance window.
    pub max_duration: Duration,
    /// How far ahead of this node's clock a peer's time may lie.
    pub max_skew: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_duration: Duration::from_secs(3 * 86_400),
            max_skew: Duration::from_secs(300),
        }
    }
}

impl Limits {
    pub fn of(config: &super::config::ClusterConfig) -> Self {
        Self {
            max_duration: config.max_maintenance,
            max_skew: config.max_clock_skew,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceRecord {
    pub active: bool,
    pub reason: String,
    /// The node where it was turned on or off.
    pub node: String,
    /// Who: the admin caller (peer address or `unix:pid=,uid=`).
    pub caller: String,
    /// Unix seconds of the change: the merge order between nodes.
    pub changed_at: f64,
    /// Unix seconds it ends by itself (0 when off).
    pub expires_at: f64,
}

impl MaintenanceRecord {
    pub fn in_force(&self, now: SystemTime) -> bool {
        self.active && unix(now) < self.expires_at
    }

    /// Checks a record from outside: both times finite, `changed_at` not
    /// ahead of `now` by more than the skew, an active window no longer
    /// than the maximum (measured from `changed_at` and from `now`, so a
    /// record cannot extend itself by claiming an old change), text
    /// bounded. What passes can be rendered and added to without overflow.
    pub fn validate(&self, now: SystemTime, limits: &Limits) -> Result<(), InputError> {
        for (field, text) in [
            ("reason", &self.reason),
            ("node", &self.node),
            ("caller", &self.caller),
        ] {
            if text.len() > MAX_TEXT {
                return Err(InputError::Malformed {
                    field,
                    message: format!("{} bytes, more than {MAX_TEXT}", text.len()),
                });
            }
        }
        let changed = input::timestamp("changed_at", self.changed_at, now, limits.max_skew)?;
        let expires = UNIX_EPOCH
            .checked_add(input::seconds("expires_at", self.expires_at)?)
            .ok_or_else(|| InputError::OutOfRange {
                field: "expires_at",
                value: self.expires_at.to_string(),
                range: "not a representable time".into(),
            })?;
        if !self.active {
            return Ok(());
        }
        let window = expires.duration_since(changed).unwrap_or_default();
        input::bounded("expires_at - changed_at", window, limits.max_duration)?;
        let left = expires.duration_since(now).unwrap_or_default();
        input::bounded(
            "expires_at - now",
            left,
            limits.max_duration.saturating_add(limits.max_skew),
        )?;
        Ok(())
    }

    /// Whether `self` replaces `other` in the merge.
    pub fn supersedes(&self, other: &Self) -> bool {
        self.changed_at > other.changed_at
            || (self.changed_at == other.changed_at && self.active && !other.active)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the reason must not be empty")]
    NoReason,
    /// A value from outside (an admin's request, a peer's record) that
    /// cannot be used; counted in `ocfs2_watchdog_input_rejected_total`.
    #[error("refused: {0}")]
    Invalid(#[from] InputError),
}

pub use crate::input::unix;

struct Inner {
    record: Option<MaintenanceRecord>,
    /// The file exists but cannot be read or parsed: fail closed.
    unreadable: Option<String>,
    /// Expiry already audited for this record.
    expiry_audited: bool,
}

pub struct Maintenance {
    path: PathBuf,
    node: String,
    limits: Limits,
    inner: Mutex<Inner>,
    audit: Arc<Mutex<AuditLog>>,
}

impl Maintenance {
    /// Loads `<state_dir>/maintenance.json`; `node` names this node in
    /// records and audit lines.
    pub fn open(state_dir: &Path, node: &str, audit: Arc<Mutex<AuditLog>>) -> Self {
        Self::open_with(state_dir, node, audit, Limits::default())
    }

    /// As `open`, with the configured `limits`. A file whose record breaks
    /// them holds, as an unreadable one does, until maintenance is set on
    /// or off again: the endpoints keep serving.
    pub fn open_with(
        state_dir: &Path,
        node: &str,
        audit: Arc<Mutex<AuditLog>>,
        limits: Limits,
    ) -> Self {
        let path = state_dir.join(MAINTENANCE_FILE);
        let (record, unreadable) = match crate::durable::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<MaintenanceRecord>(&bytes) {
                Ok(record) => match record.validate(SystemTime::now(), &limits) {
                    Ok(()) => (Some(record), None),
                    Err(e) => {
                        let e = input::reject(Source::StateFile, e);
                        (
                            None,
                            Some(format!("{} holds an invalid record: {e}", path.display())),
                        )
                    }
                },
                Err(e) => {
                    input::reject(
                        Source::StateFile,
                        InputError::Malformed {
                            field: MAINTENANCE_FILE,
                            message: e.to_string(),
                        },
                    );
                    (
                        None,
                        Some(format!("{} is not a record: {e}", path.display())),
                    )
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
            Err(e) => (None, Some(format!("cannot read {}: {e}", path.display()))),
        };
        if let Some(why) = &unreadable {
            tracing::error!(error = %why, "The maintenance record cannot be used; remediation holds until maintenance is set on or off again.");
        }
        Self {
            path,
            node: node.to_string(),
            limits,
            inner: Mutex::new(Inner {
                record,
                unreadable,
                expiry_audited: false,
            }),
            audit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The limits records are checked against.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Why the record at start could not be used, while that holds.
    pub fn unreadable(&self) -> Option<String> {
        self.lock().unreadable.clone()
    }

    /// The record as it stands (expired or not).
    pub fn record(&self) -> Option<MaintenanceRecord> {
        self.lock().record.clone()
    }

    /// Turns maintenance on for `duration` (default 2 h, at most
    /// `Limits::max_duration`: longer is refused and counted as an admin
    /// input).
    pub fn set_on(
        &self,
        reason: &str,
        duration: Option<Duration>,
        caller: &str,
        now: SystemTime,
    ) -> Result<MaintenanceRecord, MaintenanceError> {
        if reason.trim().is_empty() {
            return Err(MaintenanceError::NoReason);
        }
        let admin = |e| MaintenanceError::Invalid(input::reject(Source::Admin, e));
        let duration = input::bounded(
            "for",
            duration.unwrap_or(DEFAULT_DURATION),
            self.limits.max_duration,
        )
        .map_err(admin)?;
        if reason.trim().len() > MAX_TEXT {
            return Err(admin(InputError::Malformed {
                field: "reason",
                message: format!("longer than {MAX_TEXT} bytes"),
            }));
        }
        let record = MaintenanceRecord {
            active: true,
            reason: reason.trim().to_string(),
            node: self.node.clone(),
            caller: caller.chars().take(MAX_TEXT / 4).collect(),
            changed_at: self.change_time(now),
            expires_at: unix(input::saturating_add(now, duration)),
        };
        self.store(record, caller, AuditOutcome::MaintenanceOn)
    }

    pub fn set_off(
        &self,
        caller: &str,
        now: SystemTime,
    ) -> Result<MaintenanceRecord, MaintenanceError> {
        let record = MaintenanceRecord {
            active: false,
            reason: String::new(),
            node: self.node.clone(),
            caller: caller.chars().take(MAX_TEXT / 4).collect(),
            changed_at: self.change_time(now),
            expires_at: 0.0,
        };
        self.store(record, caller, AuditOutcome::MaintenanceOff)
    }

    /// The `changed_at` of a change made here: now, but always after the
    /// record it replaces. Records are merged by `changed_at` from each
    /// node's own clock, so with a clock behind a peer's an operator's `off`
    /// would lose to the peer's older `on` and be undone on the next poll.
    fn change_time(&self, now: SystemTime) -> f64 {
        let known = self.lock().record.as_ref().map_or(0.0, |r| r.changed_at);
        unix(now).max(known + 0.001)
    }

    /// Adopts a peer's record when it supersedes ours; true when adopted.
    /// A record that breaks the limits is refused (counted, source `peer`)
    /// whatever its `changed_at`: a forged `1e300` can never win the merge.
    pub fn merge(&self, remote: MaintenanceRecord, peer: &str) -> Result<bool, MaintenanceError> {
        self.merge_at(remote, peer, SystemTime::now())
    }

    /// `merge` as of `now` (tests).
    pub fn merge_at(
        &self,
        remote: MaintenanceRecord,
        peer: &str,
        now: SystemTime,
    ) -> Result<bool, MaintenanceError> {
        if let Err(e) = remote.validate(now, &self.limits) {
            let e = input::reject(Source::Peer, e);
            tracing::warn!(peer = %peer, error = %e, "Refused a peer's maintenance record.");
            return Err(MaintenanceError::Invalid(e));
        }
        let newer = self
            .lock()
            .record
            .as_ref()
            .map_or(true, |local| remote.supersedes(local));
        if !newer {
            return Ok(false);
        }
        let outcome = if remote.active {
            AuditOutcome::MaintenanceOn
        } else {
            AuditOutcome::MaintenanceOff
        };
        let caller = format!("peer {peer} (set on {} by {})", remote.node, remote.caller);
        self.store(remote, &caller, outcome).map(|_| true)
    }

    fn store(
        &self,
        record: MaintenanceRecord,
        caller: &str,
        outcome: AuditOutcome,
    ) -> Result<MaintenanceRecord, MaintenanceError> {
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        crate::durable::write_atomically(&self.path, &bytes).map_err(|source| {
            MaintenanceError::Write {
                path: self.path.clone(),
                source,
            }
        })?;
        {
            let mut inner = self.lock();
            inner.record = Some(record.clone());
            inner.unreadable = None;
            inner.expiry_audited = false;
        }
        let detail = if record.active {
            format!(
                "{} (on {}, until {})",
                record.reason,
                record.node,
                input::rfc3339(record.expires_at)
            )
        } else {
            format!("off (on {})", record.node)
        };
        tracing::warn!(caller = %crate::logtext::Escaped(caller), detail = %crate::logtext::Escaped(&detail), "Cluster maintenance changed.");
        self.audit_line(outcome, caller, detail);
        Ok(record)
    }

    fn audit_line(&self, outcome: AuditOutcome, caller: &str, detail: String) {
        let record = AuditRecord {
            time: AuditRecord::now(),
            rule: String::new(),
            target: "maintenance".into(),
            action: String::new(),
            mode: String::new(),
            phase: Phase::Control,
            outcome,
            evidence: String::new(),
            detail: Some(detail),
            error: None,
            caller: Some(format!("node={},{caller}", self.node)),
        };
        self.audit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(&record);
    }

    /// `Some(why)` while maintenance holds every action; audits the expiry
    /// once when it passes.
    pub fn holding(&self, now: SystemTime) -> Option<String> {
        let mut inner = self.lock();
        if let Some(why) = &inner.unreadable {
            return Some(format!("maintenance record unreadable: {why}"));
        }
        let record = inner.record.clone()?;
        if record.in_force(now) {
            let left = input::seconds("left", record.expires_at - unix(now)).unwrap_or_default();
            return Some(format!(
                "{} (set on {} by {}, {} left)",
                record.reason,
                record.node,
                record.caller,
                humantime::format_duration(Duration::from_secs(left.as_secs()))
            ));
        }
        if record.active && !inner.expiry_audited {
            inner.expiry_audited = true;
            drop(inner);
            tracing::warn!(reason = %crate::logtext::Escaped(&record.reason), node = %crate::logtext::Escaped(&record.node), "Cluster maintenance expired; remediation may act again.");
            self.audit_line(
                AuditOutcome::MaintenanceOff,
                "expiry",
                format!("expired: {} (on {})", record.reason, record.node),
            );
        }
        None
    }
}

/// The engine's view: maintenance holds every action.
pub struct MaintenanceGate(pub Arc<Maintenance>);

impl MaintenanceFlag for MaintenanceGate {
    fn active(&self) -> Option<String> {
        self.0.holding(SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> Maintenance {
        Maintenance::open(dir, "n1", Arc::new(Mutex::new(AuditLog::new(dir, 10))))
    }

    #[test]
    fn set_survives_a_restart_expires_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let m = store(dir.path());
        assert_eq!(m.holding(now), None);
        assert!(matches!(
            m.set_on(" ", None, "op", now),
            Err(MaintenanceError::NoReason)
        ));
        m.set_on("resize", Some(Duration::from_secs(60)), "op", now)
            .unwrap();
        let m = store(dir.path());
        let why = m.holding(now + Duration::from_secs(10)).unwrap();
        assert!(why.contains("resize") && why.contains("n1"), "{why}");
        assert_eq!(m.holding(now + Duration::from_secs(61)), None, "expired");
        m.set_on("again", None, "op", now).unwrap();
        assert!(
            m.holding(now + Duration::from_secs(7199)).is_some(),
            "2 h default"
        );
        m.set_off("op", now + Duration::from_secs(5)).unwrap();
        assert_eq!(m.holding(now + Duration::from_secs(6)), None);
        let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
        for outcome in ["maintenance_on", "maintenance_off", "expired: resize"] {
            assert!(audit.contains(outcome), "{outcome}: {audit}");
        }
    }

    #[test]
    fn the_newer_record_wins_and_on_wins_a_tie() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let m = store(dir.path());
        m.set_on("fsck", None, "op", now).unwrap();
        let mut older_off = m.record().unwrap();
        older_off.active = false;
        older_off.changed_at -= 1.0;
        assert!(!m.merge(older_off, "127.0.0.2").unwrap());
        assert!(m.holding(now).is_some());
        let mut tie_off = m.record().unwrap();
        tie_off.active = false;
        assert!(!m.merge(tie_off, "127.0.0.2").unwrap(), "on wins a tie");
        let mut newer_off = m.record().unwrap();
        newer_off.active = false;
        newer_off.node = "n2".into();
        newer_off.changed_at += 1.0;
        assert!(m.merge(newer_off, "127.0.0.2").unwrap());
        assert_eq!(m.holding(now), None);
        let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
        assert!(audit.contains("peer 127.0.0.2 (set on n2"), "{audit}");
    }

    #[test]
    fn a_change_here_supersedes_a_peer_record_from_a_clock_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let m = store(dir.path());
        let peer_on = MaintenanceRecord {
            active: true,
            reason: "resize".into(),
            node: "n1".into(),
            caller: "op".into(),
            changed_at: unix(now) + 120.0,
            expires_at: unix(now) + 3600.0,
        };
        assert!(m.merge(peer_on.clone(), "10.0.0.1").unwrap());
        let off = m.set_off("op", now).unwrap();
        assert!(off.supersedes(&peer_on), "{off:?}");
        assert!(
            !m.merge(peer_on, "10.0.0.1").unwrap(),
            "the older on came back"
        );
        assert_eq!(m.holding(now), None);
    }

    #[test]
    fn an_unreadable_record_holds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MAINTENANCE_FILE), "{garbage").unwrap();
        let m = store(dir.path());
        assert!(m.holding(SystemTime::now()).unwrap().contains("unreadable"));
    }

    #[test]
    fn a_window_past_the_maximum_is_refused_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let m = store(dir.path());
        let before = input::rejected(Source::Admin, input::Reason::TooLong);
        let huge = humantime::parse_duration("500000000y").unwrap();
        let error = m.set_on("test", Some(huge), "op", now).unwrap_err();
        assert!(matches!(error, MaintenanceError::Invalid(_)), "{error}");
        assert!(error.to_string().contains("maximum"), "{error}");
        assert!(input::rejected(Source::Admin, input::Reason::TooLong) > before);
        assert_eq!(m.record(), None, "nothing stored");
        let limits = Limits::default();
        m.set_on("ok", Some(limits.max_duration), "op", now)
            .unwrap();
    }

    #[test]
    fn a_forged_peer_record_never_wins_the_merge() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let m = store(dir.path());
        m.set_on("fsck", None, "op", now).unwrap();
        let good = m.record().unwrap();
        let forged = [
            MaintenanceRecord {
                changed_at: 1e300,
                active: false,
                ..good.clone()
            },
            MaintenanceRecord {
                changed_at: unix(now) + 3600.0,
                ..good.clone()
            },
            MaintenanceRecord {
                expires_at: 1e300,
                changed_at: unix(now) + 1.0,
                ..good.clone()
            },
            MaintenanceRecord {
                expires_at: f64::INFINITY,
                changed_at: unix(now) + 1.0,
                ..good.clone()
            },
            MaintenanceRecord {
                changed_at: -5.0,
                ..good.clone()
            },
            MaintenanceRecord {
                reason: "x".repeat(MAX_TEXT + 1),
                changed_at: unix(now) + 1.0,
                ..good.clone()
            },
        ];
        for record in forged {
            let before = input::rejected(Source::Peer, input::Reason::Future)
                + input::rejected(Source::Peer, input::Reason::OutOfRange)
                + input::rejected(Source::Peer, input::Reason::NotFinite)
                + input::rejected(Source::Peer, input::Reason::TooLong)
                + input::rejected(Source::Peer, input::Reason::Malformed);
            let refused = m.merge_at(record.clone(), "10.0.0.9", now);
            assert!(
                matches!(refused, Err(MaintenanceError::Invalid(_))),
                "{record:?}"
            );
            let after = input::rejected(Source::Peer, input::Reason::Future)
                + input::rejected(Source::Peer, input::Reason::OutOfRange)
                + input::rejected(Source::Peer, input::Reason::NotFinite)
                + input::rejected(Source::Peer, input::Reason::TooLong)
                + input::rejected(Source::Peer, input::Reason::Malformed);
            assert!(after > before, "not counted: {record:?}");
        }
        assert_eq!(m.record(), Some(good), "the real record stands");
    }

    #[test]
    fn an_out_of_range_file_holds_and_renders() {
        let dir = tempfile::tempdir().unwrap();
        let record = serde_json::json!({
            "active": true, "reason": "test", "node": "n1", "caller": "op",
            "changed_at": unix(SystemTime::now()), "expires_at": 1.5e16,
        });
        std::fs::write(dir.path().join(MAINTENANCE_FILE), record.to_string()).unwrap();
        let m = store(dir.path());
        let why = m.holding(SystemTime::now()).unwrap();
        assert!(
            why.contains("invalid record") && why.contains("maximum"),
            "{why}"
        );
        assert!(m.unreadable().is_some());
        m.set_off("op", SystemTime::now()).unwrap();
        assert_eq!(m.holding(SystemTime::now()), None, "cleared by off");
    }
}
