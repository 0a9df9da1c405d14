//! How the engine's memory of its actions begins and ends.
//!
//! At start it restores the saved ledger (`state.rs`; unreadable: no budget
//! for an hour, failing closed) and settles actions a previous run began and
//! never finished: a `before` line in the audit log with no `after` line for
//! the same rule and target after it means the daemon died mid-action
//! (SIGKILL, OOM, a fence, a crash loop). Each is audited `interrupted`,
//! counted as a failed attempt and backed off: whatever the action left
//! half-done, retrying at once is the one thing not to do. While running, an
//! operator's `POST /reset` clears a target's memory, and a target whose
//! condition stayed clear for a whole `failure_window` is forgotten.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use super::engine::{backoff, Engine};
use super::state::{self, Key, Wait};
use super::RULES;
use crate::actions::action_named;
use crate::actions::audit::{read_records, AuditOutcome, AuditRecord, Phase};

/// The `before` lines without their `after`, oldest first.
pub fn unfinished_actions(audit_file: &Path) -> std::io::Result<Vec<AuditRecord>> {
    let (records, unparsable) = read_records(audit_file)?;
    if unparsable > 0 {
        tracing::warn!(file = %audit_file.display(), lines = unparsable, "Audit lines that do not parse were skipped.");
    }
    Ok(unfinished(records))
}

fn unfinished(records: Vec<AuditRecord>) -> Vec<AuditRecord> {
    let mut open: BTreeMap<(String, String), (usize, AuditRecord)> = BTreeMap::new();
    for (index, record) in records.into_iter().enumerate() {
        let key = (record.rule.clone(), record.target.clone());
        match record.phase {
            Phase::Before => {
                open.insert(key, (index, record));
            }
            Phase::After => {
                open.remove(&key);
            }
            Phase::Decision | Phase::Control | Phase::Undo => {}
        }
    }
    let mut left: Vec<(usize, AuditRecord)> = open.into_values().collect();
    left.sort_by_key(|(index, _)| *index);
    left.into_iter().map(|(_, record)| record).collect()
}

impl Engine {
    pub(super) fn restore(&mut self, now: Instant) {
        let dir = self.config.state_dir.0.clone();
        match state::load(&dir, &self.clock) {
            Ok(ledger) => self.ledger = ledger,
            Err(error) => {
                // Fail closed: without the record of what was done, spend
                // the whole hourly budget rather than hand out a fresh one.
                self.state_errors += 1;
                tracing::error!(error = %error, "Cannot restore the remediation state; no action for an hour.");
                for _ in 0..self.config.remediation.actions_per_hour {
                    self.ledger.spent.push_back((now, state::STATE_LOST));
                }
            }
        }
        let audit_file = self.audit_lock().path().to_path_buf();
        let unfinished = match unfinished_actions(&audit_file) {
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
        let action = action_named(&before.action).map_or("", |a| a.name());
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
        history.waiting = Some((
            crate::input::saturating_instant(now, backoff(&settings, history.failures)),
            Wait::Backoff,
        ));
        self.ledger_dirty = true;
    }

    /// Applies queued `POST /reset`s: the target starts afresh.
    pub(super) fn apply_resets(&mut self) {
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
            tracing::warn!(rule = reset.rule, target = reset.target.as_deref().unwrap_or("*"), caller = %crate::logtext::Escaped(&reset.caller), detail, "Remediation state reset by an operator.");
        }
    }

    /// Forgets targets whose condition stayed clear for a whole window.
    pub(super) fn forget_settled(&mut self, now: Instant) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::audit::AuditOutcome;

    fn line(target: &str, phase: Phase, outcome: AuditOutcome) -> AuditRecord {
        AuditRecord {
            time: AuditRecord::now(),
            rule: "missing_mount".into(),
            target: target.into(),
            action: "remount".into(),
            mode: "enforce".into(),
            phase,
            outcome,
            evidence: String::new(),
            detail: None,
            error: None,
            caller: None,
        }
    }

    #[test]
    fn a_before_without_an_after_is_unfinished() {
        let records = vec![
            line("/a", Phase::Before, AuditOutcome::Started),
            line("/a", Phase::After, AuditOutcome::Success),
            line("/b", Phase::Before, AuditOutcome::Started),
            line("/a", Phase::Before, AuditOutcome::Started),
            line("/c", Phase::Decision, AuditOutcome::SkippedPaused),
        ];
        let left = unfinished(records);
        let targets: Vec<&str> = left.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["/b", "/a"]);
    }
}
