//! The HTTP surface: `/metrics`, `/healthz`, `/readyz`, `/status`, `/`.
//!
//! Handlers only read the latest published `Snapshot` (a watch channel) and
//! the sampler's `Health`; none touches the host, so a hung mount can never
//! hang a scrape. The OpenMetrics text is rendered once per snapshot and then
//! shared by every scrape of it.
//!
//! `/` is the human status page (`crate::status`), `/status` the same as
//! JSON, `/status/cluster` the cluster view (`status --cluster`, read from
//! the `ClusterViewSource` extension the daemon adds); all sit behind the
//! same credentials as `/metrics`. Without credentials on a listener that
//! is not loopback they leave out callers, kernel log text and iSCSI names
//! (`Security::redact_details`, `status::redact`).
//!
//! Hardening (`[web]` config, see docs/deploy.md): optional TLS (`tls`),
//! credentials for `/`, `/metrics` and `/status` (`auth`), a request body limit,
//! a request timeout and a cap on concurrent scrapes that answers 503 rather
//! than queueing. `/healthz` and `/readyz` stay open and unlimited so that
//! probes keep working while scrapes are refused.

pub mod admin;
pub mod auth;
pub mod client_auth;
pub mod fdlimit;
pub mod security;
pub mod serve;
pub mod telemetry;
pub mod tls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::cluster::status_route::ClusterViewSource;
use crate::sampler::Health;
use crate::snapshot::Snapshot;
use crate::status::redact::Redaction;
pub use security::{Security, SecurityError};
use telemetry::HttpStats;

/// The cluster view for `status --cluster`, behind the scrape credentials.
pub const CLUSTER_STATUS_PATH: &str = "/status/cluster";

pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
pub struct AppState {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub health: Arc<Health>,
    pub interval: Duration,
    pub started: Instant,
    /// Thresholds of the verdict the `/` page shows.
    pub check: Arc<crate::status::thresholds::CheckConfig>,
}

/// The routes with the default limits and no credentials.
pub fn router(state: AppState) -> Router {
    router_with(state, &Security::default(), Router::new())
}

/// The routes behind the configured credentials and limits.
/// `state_changing` (POST /pause, /resume, /reset; empty when `[web]
/// admin_listen` serves them elsewhere) checks its own admin token and
/// sits under the body and time limits like every other route.
pub fn router_with(
    state: AppState,
    security: &Security,
    state_changing: Router<AppState>,
) -> Router {
    let mut scrapes = Router::new()
        .route("/", get(status_page))
        .route(&security.telemetry_path, get(metrics))
        .route("/status", get(status))
        .route(CLUSTER_STATUS_PATH, get(cluster_status));
    if let Some(auth) = &security.auth {
        scrapes = scrapes.route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(auth),
            auth::require,
        ));
    }
    // Outermost on scrapes: a flood of bad passwords is capped too.
    let scrapes = limit_concurrency_counted(
        scrapes,
        security.limits.max_concurrent_scrapes,
        Some(Arc::clone(&security.stats)),
    );
    // Outside the scrape credentials: these check the admin token.
    let mut limited = scrapes.merge(state_changing);
    // The probes are never rate limited: a flood must not make the kubelet
    // restart the daemon in the middle of an action.
    if let Some(limiter) = &security.rate_limit {
        limited = limited.layer(axum::middleware::from_fn_with_state(
            Arc::clone(limiter),
            telemetry::rate_limit,
        ));
    }
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(limited)
        .layer(RequestBodyLimitLayer::new(
            security.limits.max_request_body_bytes,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            security.limits.request_timeout,
        ))
        // Only when the client sends `Accept-Encoding: gzip`, as
        // client_golang does for Prometheus.
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .no_br()
                .no_deflate()
                .no_zstd(),
        )
        .layer(Extension(Arc::clone(&security.stats)))
        .layer(Extension(Redaction(security.redact_details)));
    let headers: Vec<(HeaderName, HeaderValue)> = security
        .headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_str(value).ok()?,
            ))
        })
        .collect();
    if !headers.is_empty() {
        router = router.layer(axum::middleware::from_fn_with_state(
            Arc::new(headers),
            telemetry::add_headers,
        ));
    }
    // Outermost but inside routing (`layer` wraps each route), so the
    // route pattern is known and refusals above are counted with their code.
    router
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&security.stats),
            telemetry::count_requests,
        ))
        .with_state(state)
}

/// `GET /status` alone, for the admin socket: the `status` subcommand asks
/// there first (root-only, so it needs no scrape credentials). Nothing is
/// redacted there: only root can connect, and root reads it all anyway.
pub fn status_routes(state: AppState) -> Router {
    Router::new()
        .route("/status", get(status))
        .layer(Extension(Redaction(false)))
        .with_state(state)
}

/// Serves at most `max` requests of `router` at once; the next one is
/// answered 503 at once, so Prometheus sees a failed scrape instead of a
/// queue that grows behind a stalled client. One semaphore shared by every
/// route of `router`, made here once: tower's ConcurrencyLimitLayer makes
/// one per `layer()` call, which axum may repeat per request for handlers
/// not yet bound to their state, silently lifting the limit.
pub fn limit_concurrency<S>(router: Router<S>, max: usize) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    limit_concurrency_counted(router, max, None)
}

/// As `limit_concurrency`, counting each refusal in `stats`.
pub fn limit_concurrency_counted<S>(
    router: Router<S>,
    max: usize,
    stats: Option<Arc<HttpStats>>,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let slots = Arc::new(Semaphore::new(max));
    router.route_layer(axum::middleware::from_fn_with_state(
        (slots, stats),
        take_slot,
    ))
}

async fn take_slot(
    State((slots, stats)): State<(Arc<Semaphore>, Option<Arc<HttpStats>>)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match slots.try_acquire_owned() {
        Ok(_slot) => next.run(request).await,
        Err(_) => {
            if let Some(stats) = &stats {
                stats.record_refused();
            }
            tracing::debug!(path = %request.uri().path(), "Refused a scrape: too many at once.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "too many concurrent scrapes\n",
            )
                .into_response()
        }
    }
}

/// OpenMetrics when the client asks for it (Prometheus does), the classic
/// text format otherwise (curl, promtool), as client_golang negotiates.
/// The snapshot's cached rendering is followed by the families made at
/// scrape time (process and HTTP self-metrics).
async fn metrics(
    State(state): State<AppState>,
    Extension(stats): Extension<Arc<HttpStats>>,
    headers: HeaderMap,
) -> Response {
    let snapshot = state.snapshots.borrow().clone();
    let mut live = telemetry::process_families();
    live.extend(stats.families());
    live.push(crate::input::family());
    let live = crate::metrics::encode(crate::metrics::normalize(live));
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/openmetrics-text"));
    if wants_openmetrics {
        let cached = snapshot.rendered();
        let body = [cached.strip_suffix("# EOF\n").unwrap_or(cached), &live].concat();
        ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response()
    } else {
        let body = [
            snapshot.rendered_text(),
            &crate::metrics::openmetrics_to_text(&live),
        ]
        .concat();
        ([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], body).into_response()
    }
}

/// 503 once no tick completed within three intervals (the sampler is
/// wedged) or the rule engine has not come round its loop within
/// `[remediation] engine_stall_intervals` (the engine is wedged).
async fn healthz(State(state): State<AppState>) -> Response {
    let since = state.health.since_last_tick(state.started);
    let seconds = |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs()));
    if since > state.interval.saturating_mul(3) {
        let body = format!("sampler wedged: no tick completed for {}\n", seconds(since));
        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    if let Some(stalled) = state.health.engine_stalled() {
        let body = format!(
            "rule engine wedged: no tick finished for {}\n",
            seconds(stalled)
        );
        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    (StatusCode::OK, "ok\n").into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.snapshots.borrow().is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no snapshot yet\n").into_response()
    }
}

async fn status(
    State(state): State<AppState>,
    Extension(redaction): Extension<Redaction>,
) -> Response {
    let snapshot = state.snapshots.borrow().clone();
    let mut document = status_json(&snapshot);
    if redaction.0 {
        crate::status::redact::redact_value(&mut document);
    }
    Json(document).into_response()
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
        "overview": crate::status::overview(snapshot),
    })
}

/// The human status page: the latest snapshot rendered, never the host;
/// with the cluster view when the daemon gathers one (its cache).
async fn status_page(
    State(state): State<AppState>,
    Extension(redaction): Extension<Redaction>,
    cluster: Option<Extension<Arc<ClusterViewSource>>>,
) -> Html<String> {
    let snapshot = state.snapshots.borrow().clone();
    // Refresh about every two snapshots, never faster than every 5 s.
    let refresh = (state.interval * 2).max(Duration::from_secs(5));
    let cluster = cluster.map(|Extension(source)| redacted_cluster(source.status(), redaction));
    Html(crate::status::page_with(
        &snapshot,
        &state.check,
        refresh,
        redaction,
        cluster.as_ref(),
    ))
}

/// The cluster view with the same details left out as `/status` (peers'
/// findings can name an IQN, their maintenance its caller).
fn redacted_cluster(
    status: crate::status::cluster::ClusterStatus,
    redaction: Redaction,
) -> crate::status::cluster::ClusterStatus {
    if !redaction.0 {
        return status;
    }
    let Ok(mut value) = serde_json::to_value(&status) else {
        return crate::status::cluster::ClusterStatus::default();
    };
    crate::status::redact::redact_value(&mut value);
    serde_json::from_value(value).unwrap_or_default()
}

/// `GET /status/cluster`: this node now and its peers as last gathered;
/// 404 where the daemon runs without the cluster view (tests' routers).
async fn cluster_status(
    Extension(redaction): Extension<Redaction>,
    cluster: Option<Extension<Arc<ClusterViewSource>>>,
) -> Response {
    match cluster {
        Some(Extension(source)) => {
            Json(redacted_cluster(source.status(), redaction)).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no cluster view in this daemon\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::CLUSTER_STATUS_PATH;
    use crate::config::RESERVED_PATHS;

    /// axum panics on a route registered twice: every path this module
    /// serves besides the telemetry path must be refused as one.
    #[test]
    fn the_scrape_ports_own_routes_are_reserved_from_the_telemetry_path() {
        for path in ["/", "/healthz", "/readyz", "/status", CLUSTER_STATUS_PATH] {
            assert!(RESERVED_PATHS.contains(&path), "{path} is not reserved");
        }
    }
}
