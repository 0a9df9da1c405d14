//! The control endpoints, `POST /pause`, `/resume` and `/reset`, and the
//! listeners that serve them, never on the scrape port.
//!
//! Each request must carry the admin token (`rules::control::Control`) and
//! is audited with its caller: the peer address of a TCP connection, the
//! peer's pid and uid on the Unix socket (`Caller`). With an admin token
//! configured they are served on a Unix socket only root can reach
//! (`Config::admin_socket`: 0600 in a 0700 directory); `[web] admin_listen`
//! = host:port adds a TCP listener, loopback or, over TLS, any address
//! (docs/deploy.md, "Threat model").

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Query, State};
use axum::http::{header, Extensions, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use super::serve::{self, Deadlines, Gate};
use super::tls::CertStore;
use crate::config::WebLimitsConfig;
use crate::rules::control::{Control, ControlError};

/// Who sent a request, for the audit log.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

impl Caller {
    /// The peer's pid and uid on a Unix socket.
    pub fn of_unix(stream: &tokio::net::UnixStream) -> Self {
        match stream.peer_cred() {
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

/// The control routes, served on the admin socket and the optional TCP
/// admin listener (`router`), never on the scrape port.
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

/// The control routes and `extra` (the cluster maintenance routes) under
/// the body and time limits, as served on an admin listener.
pub fn router(control: Arc<Control>, extra: Router, limits: &WebLimitsConfig) -> Router {
    routes(control)
        .merge(extra)
        .layer(RequestBodyLimitLayer::new(limits.max_request_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
}

/// Why the admin socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot make the admin socket directory {path}: {source}")]
    Directory {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the admin socket directory {path} belongs to uid {uid}, not to this process: refusing to serve the control routes there (chown root:root {path}; chmod 700 {path})")]
    Owner { path: std::path::PathBuf, uid: u32 },
    #[error("{0} exists and is not a socket: refusing to replace it")]
    NotASocket(std::path::PathBuf),
    #[error("cannot listen on the admin socket {path}: {source}")]
    Bind {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Makes the socket's directory root's alone when it is the daemon's own
/// (`own_directory`: the default under `state_dir`), removes a socket left
/// by a killed daemon and binds a new one, mode 0600.
pub fn bind_socket(
    path: &Path,
    own_directory: bool,
) -> Result<tokio::net::UnixListener, SocketError> {
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, MetadataExt as _};
    let dir = path.parent().unwrap_or(Path::new("/"));
    let directory = |source| SocketError::Directory {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(directory)?;
    }
    if own_directory {
        let meta = std::fs::symlink_metadata(dir).map_err(directory)?;
        let euid = nix::unistd::geteuid().as_raw();
        if meta.uid() != euid || !meta.is_dir() {
            return Err(SocketError::Owner {
                path: dir.to_path_buf(),
                uid: meta.uid(),
            });
        }
        if meta.mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(directory)?;
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|source| SocketError::Bind {
                path: path.to_path_buf(),
                source,
            })?;
        }
        Ok(_) => return Err(SocketError::NotASocket(path.to_path_buf())),
        Err(_) => {}
    }
    let bind = |source| SocketError::Bind {
        path: path.to_path_buf(),
        source,
    };
    let listener = tokio::net::UnixListener::bind(path).map_err(bind)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind)?;
    Ok(listener)
}

/// Serves `router` on the Unix socket `listener` (bound at `path`) until
/// `shutdown`, then removes the socket.
pub async fn serve_socket(
    listener: tokio::net::UnixListener,
    path: &Path,
    router: Router,
    gate: Gate,
    deadlines: Deadlines,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    tracing::info!(socket = %path.display(), "Control endpoints listening on a Unix socket.");
    serve::serve(
        serve::Listener::Unix(listener),
        router,
        gate,
        deadlines,
        shutdown,
    )
    .await;
    let _ = std::fs::remove_file(path);
}

/// Serves `router` on a TCP address until `shutdown`: over TLS with `tls`
/// (required for a non-loopback address, see `config::AdminListen`).
pub async fn serve_tcp(
    address: std::net::SocketAddr,
    tls: Option<Arc<CertStore>>,
    router: Router,
    gate: Gate,
    deadlines: Deadlines,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(address = %address, tls = tls.is_some(), "Control endpoints listening on TCP.");
    let listener = match tls {
        Some(store) => serve::Listener::Tls(listener, store),
        None => serve::Listener::Tcp(listener),
    };
    serve::serve(listener, router, gate, deadlines, shutdown).await;
    Ok(())
}
