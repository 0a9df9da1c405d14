//! The HTTP surface: `/metrics`, `/healthz`, `/readyz`, `/status`, `/`.
//!
//! Handlers only read the latest published `Snapshot` (a watch channel) and
//! the sampler's `Health`; none touches the host, so a hung mount can never
//! hang a scrape. The OpenMetrics text is rendered once per snapshot and then
//! shared by every scrape of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::watch;

use crate::sampler::Health;
use crate::snapshot::Snapshot;

pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
pub struct AppState {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub health: Arc<Health>,
    pub interval: Duration,
    pub started: Instant,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .with_state(state)
}

/// OpenMetrics when the client asks for it (Prometheus does), the classic
/// text format otherwise (curl, promtool), as client_golang negotiates.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let snapshot = state.snapshots.borrow().clone();
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/openmetrics-text"));
    if wants_openmetrics {
        (
            [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
            snapshot.rendered().to_string(),
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)],
            snapshot.rendered_text().to_string(),
        )
            .into_response()
    }
}

/// 503 once no tick completed within three intervals: the sampler is wedged.
async fn healthz(State(state): State<AppState>) -> Response {
    let since = state.health.since_last_tick(state.started);
    if since <= state.interval * 3 {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let body = format!(
            "sampler wedged: no tick completed for {}\n",
            humantime::format_duration(Duration::from_secs(since.as_secs()))
        );
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.snapshots.borrow().is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no snapshot yet\n").into_response()
    }
}

async fn status(State(state): State<AppState>) -> Response {
    let snapshot = state.snapshots.borrow().clone();
    Json(status_json(&snapshot)).into_response()
}

/// The `/status` document: what the latest snapshot says, for humans and tools.
pub fn status_json(snapshot: &Snapshot) -> serde_json::Value {
    let collectors: serde_json::Map<String, serde_json::Value> = snapshot
        .collectors
        .iter()
        .map(|(name, (report, _))| (name.to_string(), json!(report)))
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "ready": snapshot.is_ready(),
        "sequence": snapshot.sequence,
        "taken_at": humantime::format_rfc3339_millis(snapshot.taken_at).to_string(),
        "probes": { "running": snapshot.probes_running, "stuck": snapshot.probes_stuck },
        "enforcing": snapshot.enforcing,
        "collectors": collectors,
        "mounts": snapshot.mounts(),
        "kernel_log": snapshot.kernel_log(),
        "remediation": snapshot.remediation,
    })
}

async fn landing() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>ocfs2-watchdog</title></head><body>",
        "<h1>ocfs2-watchdog ",
        env!("CARGO_PKG_VERSION"),
        "</h1><p>Prometheus exporter and self-healing watchdog for OCFS2.</p><ul>",
        "<li><a href=\"metrics\">/metrics</a>: OpenMetrics</li>",
        "<li><a href=\"status\">/status</a>: JSON summary of the latest snapshot</li>",
        "<li><a href=\"healthz\">/healthz</a>: sampler liveness</li>",
        "<li><a href=\"readyz\">/readyz</a>: first snapshot taken</li>",
        "</ul></body></html>\n"
    ))
}
