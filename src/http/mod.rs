//! The HTTP surface: `/metrics`, `/healthz`, `/readyz`, `/status`, `/`.
//!
//! Handlers only read the latest published `Snapshot` (a watch channel) and
//! the sampler's `Health`; none touches the host, so a hung mount can never
//! hang a scrape. The OpenMetrics text is rendered once per snapshot and then
//! shared by every scrape of it.
//!
//! `/` is the human status page (`crate::status`), `/status` the same as
//! JSON; both sit behind the same credentials as `/metrics`.
//!
//! Hardening (`[web]` config, see docs/deploy.md): optional TLS (`tls`),
//! credentials for `/`, `/metrics` and `/status` (`auth`), a request body limit,
//! a request timeout and a cap on concurrent scrapes that answers 503 rather
//! than queueing. `/healthz` and `/readyz` stay open and unlimited so that
//! probes keep working while scrapes are refused.

pub mod admin;
pub mod auth;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::{WebConfig, WebLimitsConfig};
use crate::sampler::Health;
use crate::snapshot::Snapshot;
use auth::ScrapeAuth;
use tls::CertStore;

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
        .route("/metrics", get(metrics))
        .route("/status", get(status));
    if let Some(auth) = &security.auth {
        scrapes = scrapes.route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(auth),
            auth::require,
        ));
    }
    // Outermost on scrapes: a flood of bad passwords is capped too.
    let scrapes = limit_concurrency(scrapes, security.limits.max_concurrent_scrapes);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(scrapes)
        // Outside the scrape credentials: these check the admin token.
        .merge(state_changing)
        .layer(RequestBodyLimitLayer::new(
            security.limits.max_request_body_bytes,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            security.limits.request_timeout,
        ))
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
    let slots = Arc::new(Semaphore::new(max));
    router.route_layer(axum::middleware::from_fn_with_state(slots, take_slot))
}

async fn take_slot(
    State(slots): State<Arc<Semaphore>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match slots.try_acquire_owned() {
        Ok(_slot) => next.run(request).await,
        Err(_) => {
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

/// Why the web configuration could not be put in force.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot read web.admin_token_file {path}: {source} (create it: openssl rand -hex 32 > {path}; chmod 0600 {path})")]
    AdminTokenRead {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("web.admin_token_file {0} is empty")]
    AdminTokenEmpty(std::path::PathBuf),
}

/// The admin token must be readable and non-empty at start, as the scrape
/// token must: a missing file would leave pause, resume and reset closed
/// with nobody noticing until the night they are needed.
fn check_admin_token(path: &std::path::Path) -> Result<(), SecurityError> {
    let token = std::fs::read_to_string(path).map_err(|source| SecurityError::AdminTokenRead {
        path: path.to_path_buf(),
        source,
    })?;
    if token.trim().is_empty() {
        return Err(SecurityError::AdminTokenEmpty(path.to_path_buf()));
    }
    Ok(())
}

/// The `[web]` settings in force: credentials, certificate, limits.
#[derive(Debug, Default, Clone)]
pub struct Security {
    pub auth: Option<Arc<ScrapeAuth>>,
    pub tls: Option<Arc<CertStore>>,
    pub limits: WebLimitsConfig,
}

impl Security {
    /// Reads the token and certificate files; `--check-config` runs it too.
    pub fn from_config(web: &WebConfig) -> Result<Self, SecurityError> {
        if let Some(path) = &web.admin_token_file {
            check_admin_token(path)?;
        }
        let tls = web.tls.as_ref().map(CertStore::load).transpose()?;
        if let Some(store) = &tls {
            store.server_config()?;
        }
        Ok(Self {
            auth: ScrapeAuth::from_config(&web.auth)?,
            tls,
            limits: web.limits.clone(),
        })
    }

    /// SIGHUP: reads the certificate pair and the bearer token again. What
    /// fails to load is logged and the previous one stays in force.
    pub fn reload(&self) {
        if let Some(store) = &self.tls {
            match store.reload() {
                Ok(()) => tracing::info!("Reloaded the TLS certificate."),
                Err(error) => {
                    tracing::error!(error = %error, "Cannot reload the TLS certificate; keeping the one in force.")
                }
            }
        }
        if let Some(auth) = &self.auth {
            if let Err(error) = auth.reload_token() {
                tracing::error!(error = %error, "Cannot reload the bearer token; keeping the one in force.");
            }
        }
    }

    /// Serves `router` on `listener`, over TLS when configured, until
    /// `shutdown` completes.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        match &self.tls {
            None => {
                axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<admin::Caller>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
            Some(store) => {
                let config = store.server_config().map_err(std::io::Error::other)?;
                let listener =
                    tls::TlsListener::new(listener, config, self.limits.tls_handshake_timeout)?;
                axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<admin::Caller>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
        }
    }
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
        "overview": crate::status::overview(snapshot),
    })
}

/// The human status page: the latest snapshot rendered, never the host.
async fn status_page(State(state): State<AppState>) -> Html<String> {
    let snapshot = state.snapshots.borrow().clone();
    // Refresh about every two snapshots, never faster than every 5 s.
    let refresh = (state.interval * 2).max(Duration::from_secs(5));
    Html(crate::status::page(&snapshot, &state.check, refresh))
}
