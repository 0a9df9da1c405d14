//! Operator control: pause (maintenance), resume, and reset of give-ups.
//!
//! Paused while `<state_dir>/pause` exists (touch it from a shell, or a
//! config-management run) or after `POST /pause`, which also writes that
//! file so the pause survives a restart. The pause's age is the file's
//! modification time, so it survives restarts too. A pause file that cannot
//! be checked (permission error, a file where the state directory should be)
//! counts as paused, and says why: remediation fails closed. `POST /resume`
//! removes it and clears nothing else; `POST /reset?rule=&target=` clears
//! the give-up, attempts and backoff of one rule's target (or every target
//! of the rule) and is applied by the engine on its next tick. Each of them
//! is audited with the caller's address. The endpoints (served by
//! `crate::http::admin`) need `Authorization: Bearer <token>` with the token
//! read from `[web] admin_token_file`, again on SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use crate::actions::audit::{AuditLog, AuditOutcome, AuditRecord, Phase};
use crate::secret::constant_time_eq;

pub const PAUSE_FILE: &str = "pause";

/// Whether remediation is paused, since when and why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PauseState {
    pub paused: bool,
    /// When the pause was set (the pause file's mtime), when known.
    pub since: Option<SystemTime>,
    pub reason: Option<String>,
}

/// An operator's `POST /reset`, waiting for the engine's next tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRequest {
    pub rule: &'static str,
    /// `None`: every target of the rule.
    pub target: Option<String>,
    pub caller: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot remove {path}: {source}")]
    RemovePauseFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unknown rule {0:?} (see docs/rules.md)")]
    UnknownRule(String),
}

pub struct Control {
    pause_file: PathBuf,
    /// Set by `POST /pause` when the pause file could not be written.
    api_paused: Mutex<Option<SystemTime>>,
    /// When the pause file was first found uncheckable.
    uncheckable_since: Mutex<Option<SystemTime>>,
    token_file: Option<PathBuf>,
    token: RwLock<Option<String>>,
    resets: Mutex<Vec<ResetRequest>>,
    audit: Arc<Mutex<AuditLog>>,
    mode: Mutex<&'static str>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Control {
    pub fn new(state_dir: &Path, token: Option<String>) -> Self {
        Self::with_audit(state_dir, token, None, AuditLog::new(state_dir, 50))
    }

    fn with_audit(
        state_dir: &Path,
        token: Option<String>,
        token_file: Option<PathBuf>,
        audit: AuditLog,
    ) -> Self {
        Self {
            pause_file: state_dir.join(PAUSE_FILE),
            api_paused: Mutex::new(None),
            uncheckable_since: Mutex::new(None),
            token_file,
            token: RwLock::new(token.filter(|t| !t.is_empty())),
            resets: Mutex::new(Vec::new()),
            audit: Arc::new(Mutex::new(audit)),
            mode: Mutex::new(""),
        }
    }

    /// Reads the token file named by `[web] admin_token_file`; an unreadable
    /// file leaves the endpoints closed (403) and says so.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let token_file = config.web.admin_token_file.clone();
        let token = token_file.as_deref().and_then(|path| read_token(path).ok());
        let audit = AuditLog::new(&config.state_dir.0, config.remediation.recent_audit_lines);
        Self::with_audit(&config.state_dir.0, token, token_file, audit)
    }

    /// SIGHUP: the admin token is read again (a failed read keeps the one in
    /// force) and the audit log is reopened on its next line.
    pub fn reload(&self) {
        if let Some(path) = &self.token_file {
            if let Ok(token) = read_token(path) {
                *self.token.write().unwrap_or_else(|e| e.into_inner()) = Some(token);
                tracing::info!(file = %path.display(), "Reloaded the admin token.");
            }
        }
        lock(&self.audit)
            .reopen_handle()
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The audit log every decision and control line goes to.
    pub fn audit(&self) -> Arc<Mutex<AuditLog>> {
        Arc::clone(&self.audit)
    }

    /// The executor's mode, written on control lines.
    pub fn set_mode(&self, mode: &'static str) {
        *lock(&self.mode) = mode;
    }

    pub fn paused(&self) -> bool {
        self.pause_state().paused
    }

    pub fn pause_state(&self) -> PauseState {
        let api = *lock(&self.api_paused);
        match std::fs::symlink_metadata(&self.pause_file) {
            Ok(meta) => {
                *lock(&self.uncheckable_since) = None;
                PauseState {
                    paused: true,
                    since: meta.modified().ok().or(api),
                    reason: Some(format!("{} exists", self.pause_file.display())),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                *lock(&self.uncheckable_since) = None;
                PauseState {
                    paused: api.is_some(),
                    since: api,
                    reason: api.map(|_| "POST /pause (pause file not writable)".to_string()),
                }
            }
            Err(e) => {
                let since = *lock(&self.uncheckable_since).get_or_insert_with(SystemTime::now);
                PauseState {
                    paused: true,
                    since: Some(api.map_or(since, |a| a.min(since))),
                    reason: Some(format!(
                        "cannot check {}: {e}; paused until it can be",
                        self.pause_file.display()
                    )),
                }
            }
        }
    }

    /// Pauses; an existing pause keeps its start time.
    pub fn pause(&self, caller: &str) {
        if !self.paused() {
            // Atomic and link-safe like every state file: the pause file
            // sits in the state directory root writes to.
            let written = crate::durable::write_atomically(
                &self.pause_file,
                format!("paused through POST /pause by {caller}\n").as_bytes(),
            );
            if let Err(e) = written {
                tracing::warn!(file = %self.pause_file.display(), error = %e, "Paused in memory only: cannot write the pause file.");
                lock(&self.api_paused).get_or_insert_with(SystemTime::now);
            }
        }
        self.record(AuditOutcome::Paused, "", None, caller, None);
    }

    /// Removes the pause; give-ups stay (see `reset`).
    pub fn resume(&self, caller: &str) -> Result<(), ControlError> {
        match std::fs::remove_file(&self.pause_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                let error = ControlError::RemovePauseFile {
                    path: self.pause_file.clone(),
                    source,
                };
                self.record(
                    AuditOutcome::Resumed,
                    "",
                    None,
                    caller,
                    Some(error.to_string()),
                );
                return Err(error);
            }
        }
        *lock(&self.api_paused) = None;
        self.record(AuditOutcome::Resumed, "", None, caller, None);
        Ok(())
    }

    /// Queues a reset of `rule`'s give-up for `target` (or all its targets).
    pub fn reset(
        &self,
        rule: &str,
        target: Option<String>,
        caller: &str,
    ) -> Result<(), ControlError> {
        let rule = super::RULES
            .iter()
            .map(|r| r.name())
            .find(|name| *name == rule)
            .ok_or_else(|| ControlError::UnknownRule(rule.to_string()))?;
        lock(&self.resets).push(ResetRequest {
            rule,
            target: target.filter(|t| !t.is_empty()),
            caller: caller.to_string(),
        });
        Ok(())
    }

    /// The resets asked for since the last call.
    pub fn take_resets(&self) -> Vec<ResetRequest> {
        std::mem::take(&mut *lock(&self.resets))
    }

    /// Writes a control line; `rule` is empty for pause and resume.
    pub fn record(
        &self,
        outcome: AuditOutcome,
        rule: &str,
        target: Option<&str>,
        caller: &str,
        error: Option<String>,
    ) -> bool {
        let mode = *lock(&self.mode);
        lock(&self.audit).append(&AuditRecord {
            time: AuditRecord::now(),
            rule: rule.to_string(),
            target: target.unwrap_or("").to_string(),
            action: String::new(),
            mode: mode.to_string(),
            phase: Phase::Control,
            outcome,
            evidence: String::new(),
            detail: None,
            error,
            caller: Some(caller.to_string()),
        })
    }

    /// True when `given` is the configured token; `None` when none is
    /// configured (state-changing endpoints are then closed).
    pub fn token_matches(&self, given: &str) -> Option<bool> {
        let token = self.token.read().unwrap_or_else(|e| e.into_inner());
        token
            .as_deref()
            .map(|token| constant_time_eq(given.as_bytes(), token.as_bytes()))
    }
}

/// The token file under the rules of `crate::secret`; a refused file is
/// logged and leaves the token in force (none at start: the control routes
/// stay closed, but start-up has refused such a file already).
fn read_token(path: &Path) -> Result<String, crate::secret::TokenError> {
    crate::secret::load_token(path)
        .map(|token| token.expose().to_string())
        .inspect_err(|e| {
            tracing::error!(file = %path.display(), error = %e, "Cannot use the admin token file; the token in force stays.");
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::audit::read_records;

    #[test]
    fn pause_file_and_api_both_pause_and_are_audited() {
        let dir = tempfile::tempdir().unwrap();
        let control = Control::new(dir.path(), Some("t".into()));
        assert!(!control.paused());
        std::fs::write(dir.path().join(PAUSE_FILE), "").unwrap();
        assert!(control.paused());
        control.resume("127.0.0.1:5000").unwrap();
        assert!(!control.paused());
        control.pause("127.0.0.1:5001");
        assert!(dir.path().join(PAUSE_FILE).exists());
        assert!(control.paused());
        let (records, _) = read_records(&dir.path().join("audit.jsonl")).unwrap();
        let seen: Vec<_> = records
            .iter()
            .map(|r| (r.outcome, r.caller.clone().unwrap()))
            .collect();
        assert_eq!(
            seen,
            [
                (AuditOutcome::Resumed, "127.0.0.1:5000".to_string()),
                (AuditOutcome::Paused, "127.0.0.1:5001".to_string())
            ]
        );
    }

    #[test]
    fn the_pause_keeps_its_age_and_an_uncheckable_file_pauses() {
        let dir = tempfile::tempdir().unwrap();
        let control = Control::new(dir.path(), None);
        let file = dir.path().join(PAUSE_FILE);
        std::fs::write(&file, "").unwrap();
        let set = SystemTime::now() - std::time::Duration::from_secs(7200);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(set)
            .unwrap();
        control.pause("again");
        assert_eq!(
            control.pause_state().since,
            Some(set),
            "a second pause keeps the age"
        );

        // The state directory is a file: the pause file cannot be checked.
        let control = Control::new(Path::new("/dev/null"), None);
        let state = control.pause_state();
        assert!(state.paused);
        assert!(
            state.reason.unwrap().contains("cannot check"),
            "fails closed"
        );
    }

    #[test]
    fn resets_name_a_known_rule_and_tokens_reload() {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let token_file = dir.path().join("token");
        let write = |text: &str| {
            std::fs::write(&token_file, text).unwrap();
            std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        };
        let (old, new) = ("o".repeat(32), "n".repeat(40));
        write(&format!("{old}\n"));
        let mut config = crate::config::Config {
            state_dir: crate::config::StateDir(dir.path().to_path_buf()),
            ..Default::default()
        };
        config.web.admin_token_file = Some(token_file.clone());
        let control = Control::from_config(&config);
        assert_eq!(control.token_matches(&old), Some(true));
        write(&format!("{new}\n"));
        control.reload();
        assert_eq!(control.token_matches(&old), Some(false));
        assert_eq!(control.token_matches(&new), Some(true));
        // A reloaded token that breaks the rules is refused: the one in
        // force stays.
        write("short\n");
        control.reload();
        assert_eq!(control.token_matches("short"), Some(false));
        assert_eq!(control.token_matches(&new), Some(true));
        assert!(matches!(
            control.reset("nope", None, "me"),
            Err(ControlError::UnknownRule(_))
        ));
        control
            .reset("missing_mount", Some("/srv/a".into()), "me")
            .unwrap();
        let resets = control.take_resets();
        assert_eq!(resets.len(), 1);
        assert_eq!(resets[0].rule, "missing_mount");
        assert!(control.take_resets().is_empty());
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert_eq!(Control::new(Path::new("/x"), None).token_matches("a"), None);
    }
}
