//! The control endpoints, `POST /pause`, `/resume` and `/reset`, and the
//! optional listener that keeps them off the scrape port.
//!
//! Each request must carry the admin token (`rules::control::Control`) and
//! is audited with its caller: the peer address of a TCP connection, the
//! peer's pid and uid on the Unix socket (`Caller`). With `[web]
//! admin_listen` set, only this module's router is served there and the
//! scrape port has no state-changing route at all (docs/deploy.md).

use std::future::Future;
use std::sync::Arc;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Query, State};
use axum::http::{header, Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::IncomingStream;
use axum::Router;
use serde::Deserialize;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use super::tls::TlsListener;
use crate::config::{AdminListen, WebLimitsConfig};
use crate::rules::control::{Control, ControlError};

/// Who sent a request, for the audit log.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Caller {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Self(stream.remote_addr().to_string())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Caller {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Self(stream.remote_addr().to_string())
    }
}

impl Connected<IncomingStream<'_, tokio::net::UnixListener>> for Caller {
    fn connect_info(stream: IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(cred) => Self(format!(
                "unix:pid={},uid={}",
                cred.pid().map_or("?".into(), |p| p.to_string()),
                cred.uid()
            )),
            Err(_) => Self("unix:unknown".into()),
        }
    }
}

pub(crate) fn caller(extensions: &Extensions) -> String {
    extensions
        .get::<ConnectInfo<Caller>>()
        .map_or_else(|| "unknown".to_string(), |info| info.0 .0.clone())
}

/// The control routes, merged into the scrape router or served alone.
pub fn routes<S: Clone + Send + Sync + 'static>(control: Arc<Control>) -> Router<S> {
    Router::new()
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        .route("/reset", post(reset))
        .with_state(control)
}

/// `Some(refusal)` unless the request carries the configured token.
pub(crate) fn authorize(control: &Control, headers: &HeaderMap) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    match control.token_matches(given) {
        None => Some((StatusCode::FORBIDDEN, "no admin token configured\n").into_response()),
        Some(true) => None,
        Some(false) => Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing or wrong bearer token\n",
            )
                .into_response(),
        ),
    }
}

async fn pause(
    State(control): State<Arc<Control>>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Response {
    if let Some(denied) = authorize(&control, &headers) {
        return denied;
    }
    let caller = caller(&extensions);
    control.pause(&caller);
    tracing::warn!(caller = %crate::logtext::Escaped(&caller), "Remediation paused by an operator.");
    "paused\n".into_response()
}

async fn resume(
    State(control): State<Arc<Control>>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Response {
    if let Some(denied) = authorize(&control, &headers) {
        return denied;
    }
    let caller = caller(&extensions);
    match control.resume(&caller) {
        Ok(()) => {
            tracing::warn!(caller = %crate::logtext::Escaped(&caller), "Remediation resumed by an operator.");
            "resumed; give-ups stay until POST /reset\n".into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct ResetQuery {
    rule: Option<String>,
    target: Option<String>,
}

async fn reset(
    State(control): State<Arc<Control>>,
    extensions: Extensions,
    headers: HeaderMap,
    Query(query): Query<ResetQuery>,
) -> Response {
    if let Some(denied) = authorize(&control, &headers) {
        return denied;
    }
    let Some(rule) = query.rule.filter(|r| !r.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            "name the rule: POST /reset?rule=<rule>[&target=<target>]\n",
        )
            .into_response();
    };
    let caller = caller(&extensions);
    match control.reset(&rule, query.target.clone(), &caller) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            "reset queued; the engine applies it on its next tick\n",
        )
            .into_response(),
        Err(e @ ControlError::UnknownRule(_)) => {
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Serves the control routes (and `extra`, the cluster maintenance
/// routes) alone on `listen` until `shutdown`.
pub async fn serve(
    listen: AdminListen,
    control: Arc<Control>,
    extra: Router,
    limits: &WebLimitsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router: Router = routes(control)
        .merge(extra)
        .layer(RequestBodyLimitLayer::new(limits.max_request_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ));
    match listen {
        AdminListen::Loopback(address) => {
            let listener = tokio::net::TcpListener::bind(address).await?;
            tracing::info!(address = %address, "Control endpoints listening on loopback.");
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<Caller>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
        AdminListen::Unix(path) => {
            use std::os::unix::fs::PermissionsExt;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // A socket left by a killed daemon would make bind fail.
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let listener = tokio::net::UnixListener::bind(&path)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            tracing::info!(socket = %path.display(), "Control endpoints listening on a Unix socket.");
            let served = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<Caller>(),
            )
            .with_graceful_shutdown(shutdown)
            .await;
            let _ = std::fs::remove_file(&path);
            served
        }
    }
}
