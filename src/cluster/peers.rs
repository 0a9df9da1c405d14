//! The peer protocol: each daemon serves its maintenance record to the
//! other nodes of its o2cb cluster and asks theirs every `poll_interval`.
//!
//! Peers are the nodes of this node's cluster in `/etc/ocfs2/cluster.conf`
//! (read under the root each round, so an edited file is followed), at
//! their interconnect `ip_address` and `[cluster] port`; this node is the
//! one named like its hostname. Requests carry `Authorization: Bearer
//! <cluster token>` from `[cluster] token_file`; without a token nothing
//! is served or asked (anything that needs the peers fails closed). Pull
//! only: a record set or cleared on any node reaches every other node on
//! its next round (`Maintenance::merge`: the newer change wins), and a
//! daemon that starts asks every peer before its first tick has long
//! passed. Each peer's reachability is kept for `/metrics`
//! (`ocfs2_watchdog_cluster_peer_up`).
//!
//! `GET /cluster/v1/state` answers this node's `lease::LocalState`: whether
//! it holds the cluster lease, acts, intends to act, is in maintenance, and
//! its firing disruptive findings. The lease's peer route asks it of every
//! peer at once (`PeerAsker`); the poll round keeps the answers, so the
//! storm brake's unhealthy-nodes gate counts the nodes that report trouble.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::client::request;
use super::config::ClusterConfig;
use super::lease::consensus::NodeState;
use super::lease::{LocalState, Member, PeerAsker};
use super::maintenance::{Maintenance, MaintenanceRecord};
use crate::collector::nodemap::NodeSet;
use crate::collector::o2cb::cluster_conf::{parse_cluster_conf, ConfNode};
use crate::host::HostPaths;

pub const MAINTENANCE_PATH: &str = "/cluster/v1/maintenance";
pub const STATE_PATH: &str = "/cluster/v1/state";

/// One peer as last asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerView {
    pub node: String,
    pub address: String,
    pub up: bool,
    pub error: Option<String>,
}

/// This node's listen address and its peers (name, `ip:port`), from
/// cluster.conf: the nodes of the cluster this node is in.
pub fn cluster_nodes(
    paths: &HostPaths,
    node: &str,
    port: u16,
) -> (Option<String>, Vec<(String, String)>) {
    let Ok((local, peers)) = members(paths, node) else {
        return (None, Vec::new());
    };
    let address = |ip: &str| format!("{ip}:{port}");
    let peers = peers
        .iter()
        .filter_map(|n| Some((n.name.clone(), address(n.ip_address.as_deref()?))))
        .collect();
    (local.ip_address.as_deref().map(address), peers)
}

/// This node and the other nodes of its cluster in cluster.conf.
fn members(paths: &HostPaths, node: &str) -> Result<(ConfNode, Vec<ConfNode>), String> {
    let path = paths.root("/etc/ocfs2/cluster.conf");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let conf = parse_cluster_conf(&text);
    let local = conf
        .nodes
        .iter()
        .find(|n| n.name == node)
        .ok_or_else(|| format!("this node ({node}) is not in cluster.conf"))?;
    let peers = conf
        .nodes_of(&local.cluster)
        .filter(|n| n.name != local.name)
        .cloned()
        .collect();
    Ok((local.clone(), peers))
}

pub struct Peers {
    config: ClusterConfig,
    paths: HostPaths,
    token: Option<String>,
    maintenance: Arc<Maintenance>,
    views: Mutex<Vec<PeerView>>,
    local: Arc<LocalState>,
    /// Peers' node numbers whose last state reported a firing disruptive
    /// finding.
    troubled: Mutex<NodeSet>,
}

fn read_token(path: &Path) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(token) => Some(token.trim().to_string()).filter(|t| !t.is_empty()),
        Err(error) => {
            tracing::error!(file = %path.display(), error = %error, "Cannot read the cluster token; no peer protocol, and what needs the peers stays alert only.");
            None
        }
    }
}

impl Peers {
    pub fn new(config: &ClusterConfig, paths: HostPaths, maintenance: Arc<Maintenance>) -> Self {
        let token = config.token_file.as_deref().and_then(read_token);
        Self {
            config: config.clone(),
            paths,
            token,
            local: LocalState::new(maintenance.node()),
            maintenance,
            views: Mutex::new(Vec::new()),
            troubled: Mutex::new(NodeSet::new()),
        }
    }

    /// What this node answers at `GET /cluster/v1/state`.
    pub fn local(&self) -> &Arc<LocalState> {
        &self.local
    }

    /// Peers that reported a firing disruptive finding in the last round.
    pub fn troubled(&self) -> NodeSet {
        self.troubled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn ask_state(&self, token: &str, address: &str) -> Result<NodeState, String> {
        let answer = request(
            address,
            "GET",
            STATE_PATH,
            Some(token),
            self.config.request_timeout,
        )
        .map_err(|e| e.to_string())?;
        if answer.status != 200 {
            return Err(format!("answered {}", answer.status));
        }
        serde_json::from_str(&answer.body).map_err(|e| format!("not a node state: {e}"))
    }

    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    /// Where to serve: `[cluster] listen`, else this node's interconnect
    /// address from cluster.conf.
    pub fn listen_address(&self) -> Option<String> {
        self.config
            .listen
            .clone()
            .or_else(|| cluster_nodes(&self.paths, self.maintenance.node(), self.config.port).0)
    }

    pub fn views(&self) -> Vec<PeerView> {
        self.views.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks every peer for its record once and merges what is newer.
    pub fn poll_once(&self) {
        let Some(token) = self.token.as_deref() else {
            return;
        };
        let (_, peers) = cluster_nodes(&self.paths, self.maintenance.node(), self.config.port);
        let views = peers
            .into_iter()
            .map(|(node, address)| {
                let answer = request(
                    &address,
                    "GET",
                    MAINTENANCE_PATH,
                    Some(token),
                    self.config.request_timeout,
                );
                let error = match answer {
                    Ok(answer) if answer.status == 200 => {
                        match serde_json::from_str::<Option<MaintenanceRecord>>(&answer.body) {
                            Ok(Some(record)) => self
                                .maintenance
                                .merge(record, &format!("{node} {address}"))
                                .err()
                                .map(|e| e.to_string()),
                            Ok(None) => None,
                            Err(e) => Some(format!("not a maintenance record: {e}")),
                        }
                    }
                    Ok(answer) => Some(format!("answered {}", answer.status)),
                    Err(e) => Some(e.to_string()),
                };
                PeerView {
                    node,
                    address,
                    up: error.is_none(),
                    error,
                }
            })
            .collect::<Vec<_>>();
        let members: Vec<Member> = PeerAsker::members(self).map(|(_, m)| m).unwrap_or_default();
        let troubled = members
            .iter()
            .zip(self.ask_states(&members))
            .filter(|(_, s)| s.as_ref().is_ok_and(|s| !s.disruptive_findings.is_empty()))
            .map(|(m, _)| m.node_num)
            .collect();
        *self.troubled.lock().unwrap_or_else(|e| e.into_inner()) = troubled;
        for view in views.iter().filter(|v| !v.up) {
            tracing::debug!(peer = %view.node, address = %view.address, error = view.error.as_deref().unwrap_or(""), "Peer unreachable.");
        }
        *self.views.lock().unwrap_or_else(|e| e.into_inner()) = views;
    }

    /// Polls every `poll_interval` on its own thread until `stop`; the
    /// first round runs at once, so a restarted daemon learns the
    /// cluster's maintenance before its engine acts.
    pub fn spawn(
        self: Arc<Self>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("cluster-peers".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    self.poll_once();
                    let mut waited = Duration::ZERO;
                    while waited < self.config.poll_interval && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100));
                        waited += Duration::from_millis(100);
                    }
                }
            })
    }

    /// This node's name and its peers (name, `ip:port`) from cluster.conf.
    pub(crate) fn roster(&self) -> (String, Vec<(String, String)>) {
        let node = self.maintenance.node().to_string();
        let (_, peers) = cluster_nodes(&self.paths, &node, self.config.port);
        (node, peers)
    }

    /// One authenticated GET to a peer, as the poll asks: the hook the
    /// cluster view's route uses (`status_route.rs`).
    pub(crate) fn get(&self, address: &str, path: &str) -> Result<String, String> {
        let token = self.token.as_deref().ok_or("no cluster token configured")?;
        let answer = request(
            address,
            "GET",
            path,
            Some(token),
            self.config.request_timeout,
        )
        .map_err(|e| e.to_string())?;
        if answer.status != 200 {
            return Err(format!("answered {}", answer.status));
        }
        Ok(answer.body)
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        self.config.poll_interval
    }

    /// `Some(refusal)` unless the request carries the cluster token.
    pub(crate) fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let Some(token) = self.token.as_deref() else {
            return Some((StatusCode::FORBIDDEN, "no cluster token configured\n").into_response());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let same = given.len() == token.len()
            && given
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        (!same)
            .then(|| (StatusCode::UNAUTHORIZED, "missing or wrong cluster token\n").into_response())
    }
}

impl PeerAsker for Peers {
    fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn members(&self) -> Result<(u8, Vec<Member>), String> {
        let (local, peers) = members(&self.paths, self.maintenance.node())?;
        let port = self.config.port;
        let members = peers
            .into_iter()
            .map(|n| Member {
                address: n
                    .ip_address
                    .as_deref()
                    .map_or_else(String::new, |ip| format!("{ip}:{port}")),
                node: n.name,
                node_num: n.number,
            })
            .collect();
        Ok((local.number, members))
    }

    fn ask_states(&self, members: &[Member]) -> Vec<Result<NodeState, String>> {
        let Some(token) = self.token.as_deref() else {
            return members
                .iter()
                .map(|_| Err("no cluster token configured".to_string()))
                .collect();
        };
        std::thread::scope(|scope| {
            let asks: Vec<_> = members
                .iter()
                .map(|m| {
                    scope.spawn(move || {
                        if m.address.is_empty() {
                            return Err("no ip_address in cluster.conf".to_string());
                        }
                        self.ask_state(token, &m.address)
                    })
                })
                .collect();
            asks.into_iter()
                .map(|a| a.join().unwrap_or_else(|_| Err("asking panicked".into())))
                .collect()
        })
    }
}

/// The routes peers call.
pub fn routes(peers: Arc<Peers>) -> Router {
    Router::new()
        .route(MAINTENANCE_PATH, get(maintenance))
        .route(STATE_PATH, get(state))
        .with_state(peers)
}

async fn state(State(peers): State<Arc<Peers>>, headers: HeaderMap) -> Response {
    if let Some(denied) = peers.refusal(&headers) {
        return denied;
    }
    Json(peers.local.state()).into_response()
}

async fn maintenance(State(peers): State<Arc<Peers>>, headers: HeaderMap) -> Response {
    if let Some(denied) = peers.refusal(&headers) {
        return denied;
    }
    Json(peers.maintenance.record()).into_response()
}
