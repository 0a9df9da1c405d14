//! Operator control: pause (maintenance) and resume.
//!
//! Paused while `<state_dir>/pause` exists (touch it from a shell, or a
//! config-management run) or after `POST /pause`, which also writes that
//! file so the pause survives a restart. `POST /resume` removes it and clears
//! every given-up target, the operator's "try again". Both endpoints need
//! `Authorization: Bearer <token>` with the token read from
//! `[web] admin_token_file`: 401 without or with a wrong one, 403 when no
//! token is configured (state-changing endpoints are then closed).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

pub const PAUSE_FILE: &str = "pause";

pub struct Control {
    pause_file: PathBuf,
    api_paused: AtomicBool,
    resumes: AtomicU64,
    token: Option<String>,
}

impl Control {
    pub fn new(state_dir: &Path, token: Option<String>) -> Self {
        Self {
            pause_file: state_dir.join(PAUSE_FILE),
            api_paused: AtomicBool::new(false),
            resumes: AtomicU64::new(0),
            token: token.filter(|t| !t.is_empty()),
        }
    }

    /// Reads the token file named by `[web] admin_token_file`; an unreadable
    /// file leaves the endpoints closed (403) and says so.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let token = config.web.admin_token_file.as_ref().and_then(|path| {
            std::fs::read_to_string(path)
                .map(|t| t.trim().to_string())
                .map_err(|e| {
                    tracing::error!(file = %path.display(), error = %e, "Cannot read the admin token; pause and resume stay closed.");
                })
                .ok()
        });
        Self::new(&config.state_dir.0, token)
    }

    pub fn paused(&self) -> bool {
        self.api_paused.load(Ordering::Relaxed) || self.pause_file.exists()
    }

    /// Bumped by every resume; the engine clears given-up targets on change.
    pub fn resumes(&self) -> u64 {
        self.resumes.load(Ordering::Relaxed)
    }

    pub fn pause(&self) {
        self.api_paused.store(true, Ordering::Relaxed);
        let written = self
            .pause_file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&self.pause_file, "paused through POST /pause\n"));
        if let Err(e) = written {
            tracing::warn!(file = %self.pause_file.display(), error = %e, "Paused in memory only: cannot write the pause file.");
        }
    }

    pub fn resume(&self) -> Result<(), String> {
        match std::fs::remove_file(&self.pause_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", self.pause_file.display())),
        }
        self.api_paused.store(false, Ordering::Relaxed);
        self.resumes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// `Some(refusal)` unless the request carries the configured token.
    fn authorize(&self, headers: &HeaderMap) -> Option<Response> {
        let Some(token) = &self.token else {
            return Some((StatusCode::FORBIDDEN, "no admin token configured\n").into_response());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if constant_time_eq(given.as_bytes(), token.as_bytes()) {
            None
        } else {
            Some(
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    "missing or wrong bearer token\n",
                )
                    .into_response(),
            )
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /pause` and `POST /resume`, merged into the daemon's router.
pub fn routes<S: Clone + Send + Sync + 'static>(control: Arc<Control>) -> Router<S> {
    Router::new()
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        .with_state(control)
}

async fn pause(State(control): State<Arc<Control>>, headers: HeaderMap) -> Response {
    if let Some(denied) = control.authorize(&headers) {
        return denied;
    }
    control.pause();
    tracing::warn!("Remediation paused by an operator.");
    "paused\n".into_response()
}

async fn resume(State(control): State<Arc<Control>>, headers: HeaderMap) -> Response {
    if let Some(denied) = control.authorize(&headers) {
        return denied;
    }
    match control.resume() {
        Ok(()) => {
            tracing::warn!("Remediation resumed by an operator.");
            "resumed\n".into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_file_and_api_both_pause() {
        let dir = tempfile::tempdir().unwrap();
        let control = Control::new(dir.path(), Some("t".into()));
        assert!(!control.paused());
        std::fs::write(dir.path().join(PAUSE_FILE), "").unwrap();
        assert!(control.paused());
        control.resume().unwrap();
        assert!(!control.paused());
        assert_eq!(control.resumes(), 1);
        control.pause();
        assert!(dir.path().join(PAUSE_FILE).exists());
        assert!(control.paused());
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
