//! The peer listener: the routes other nodes call (`peer_routes`), all
//! behind one verifier (`authenticate`) that checks each request's
//! signature, sender, source address, time and nonce (`verify_request`)
//! and signs each answer for the request it answers (`peer_auth.rs` has
//! the scheme). `peers.rs` is the client side and the state it serves.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::peer_auth::{
    fresh_time, unix_now, valid_nonce, Direction, PeerKey, Reason, RequestAuth, MAC_HEADER,
    MAX_MESSAGE, NODE_HEADER, NONCE_HEADER, TIME_HEADER,
};
use super::peers::{ip_of, members, Peers, MAINTENANCE_PATH, STATE_PATH};

/// The routes peers call. Add a route here: `routes` puts every one
/// behind `authenticate`.
fn peer_routes() -> Router<Arc<Peers>> {
    Router::new()
        .route(MAINTENANCE_PATH, get(maintenance))
        .route(STATE_PATH, get(state))
}

/// The peer listener's router: every route of `peer_routes` and of
/// `extra` (routes other modules serve to peers, with their own state),
/// each request verified and each answer signed by `authenticate`. Served
/// by `http::serve`, which hands each request its TCP source address so it
/// can be checked.
pub fn routes(peers: Arc<Peers>, extra: Router) -> Router {
    // A request (its body read included) gets as long as a peer's whole
    // exchange may take: a sender that drips holds no handler longer.
    let deadline = peers.config.request_timeout.max(Duration::from_secs(1));
    peer_routes()
        .with_state(Arc::clone(&peers))
        .merge(extra)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&peers),
            authenticate,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            deadline,
        ))
}

fn refuse(peers: &Peers, reason: Reason, source: Option<IpAddr>, detail: &str) -> Response {
    let peer = source.map_or_else(|| "unknown address".to_string(), |s| s.to_string());
    peers
        .rejections
        .count(Direction::Request, reason, &peer, detail);
    let status = match reason {
        Reason::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Reason::NonceCacheFull => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNAUTHORIZED,
    };
    (status, format!("rejected: {}\n", reason.as_str())).into_response()
}

/// The one server-side verifier of the peer protocol (see `verify_request`)
/// and the signer of every answer.
async fn authenticate(State(peers): State<Arc<Peers>>, request: Request, next: Next) -> Response {
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let Some(key) = peers.key() else {
        return (StatusCode::FORBIDDEN, "no cluster token configured\n").into_response();
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_MESSAGE).await else {
        return refuse(
            &peers,
            Reason::TooLarge,
            source,
            "request body over the limit",
        );
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    let auth = match verify_request(
        &peers,
        &key,
        parts.method.as_str(),
        &path,
        &parts.headers,
        &body,
        source,
    ) {
        Ok(auth) => auth,
        Err((reason, detail)) => return refuse(&peers, reason, source, &detail),
    };
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (mut parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_MESSAGE).await else {
        tracing::error!(path = %path, "A peer-protocol answer is over the size limit; not sent.");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mac = key.sign_response(peers.node(), &auth.nonce, parts.status.as_u16(), &body);
    for (name, value) in [
        (NODE_HEADER, peers.node()),
        (NONCE_HEADER, auth.nonce.as_str()),
        (MAC_HEADER, mac.as_str()),
    ] {
        match HeaderValue::from_str(value) {
            Ok(value) => {
                parts.headers.insert(name, value);
            }
            Err(_) => {
                tracing::error!(node = %peers.node().escape_debug(), "This node's name cannot be sent in a header; peers cannot check its answers.");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        }
    }
    Response::from_parts(parts, Body::from(body))
}

async fn state(State(peers): State<Arc<Peers>>) -> Response {
    Json(peers.local.state()).into_response()
}

async fn maintenance(State(peers): State<Arc<Peers>>) -> Response {
    Json(peers.maintenance.record()).into_response()
}

/// Checks one request's authentication: the headers are present and
/// well formed, the sender is a node of this cluster (sending from its
/// `ip_address` when the source is known), the MAC is right, the time
/// is fresh and the nonce new. The MAC is checked before the nonce is
/// remembered, so only a holder of the token can fill the cache.
fn verify_request(
    peers: &Peers,
    key: &PeerKey,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    source: Option<IpAddr>,
) -> Result<RequestAuth, (Reason, String)> {
    let field = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| (Reason::BadMac, format!("no {name} header")))
    };
    let auth = RequestAuth {
        node: field(NODE_HEADER)?,
        nonce: field(NONCE_HEADER)?,
        time: field(TIME_HEADER)?.parse().map_err(|_| {
            (
                Reason::Malformed,
                "the time is not Unix seconds".to_string(),
            )
        })?,
        mac: field(MAC_HEADER)?,
    };
    if !valid_nonce(&auth.nonce) {
        return Err((Reason::Malformed, "the nonce is not 16 bytes of hex".into()));
    }
    let (_, others) = members(&peers.paths, peers.node())
        .map_err(|why| (Reason::UnknownNode, format!("no peers known: {why}")))?;
    let sender = others.iter().find(|n| n.name == auth.node).ok_or_else(|| {
        (
            Reason::UnknownNode,
            format!(
                "{} is not a peer of this cluster in cluster.conf",
                auth.node.escape_debug()
            ),
        )
    })?;
    if let (Some(expected), Some(source)) = (ip_of(sender), source) {
        if expected.to_canonical() != source.to_canonical() {
            return Err((
                Reason::WrongNode,
                format!(
                    "{} sends from {source}, cluster.conf says {expected}",
                    auth.node
                ),
            ));
        }
    }
    key.verify_request(method, path, body, &auth)
        .map_err(|r| (r, "the request's signature is wrong".to_string()))?;
    let now = unix_now();
    let skew = peers.config.max_clock_skew;
    fresh_time(auth.time, now, skew)
        .map_err(|r| (r, format!("sent at {}, this clock says {now}", auth.time)))?;
    peers
        .nonces
        .admit(&auth.nonce, now, skew)
        .map_err(|r| (r, "the nonce was seen before".to_string()))?;
    Ok(auth)
}
