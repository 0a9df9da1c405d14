//! The peer protocol: each daemon serves its maintenance record to the
//! other nodes of its o2cb cluster and asks theirs every `poll_interval`.
//!
//! Peers are the nodes of this node's cluster in `/etc/ocfs2/cluster.conf`
//! (read under the root each round, so an edited file is followed), at
//! their interconnect `ip_address` and `[cluster] port`; this node is the
//! one named `[cluster] node_name` (default its short hostname). When that
//! name is not in cluster.conf it says so (`node_known`, the
//! `ocfs2_watchdog_cluster_node_known` gauge) and the lease holds what
//! needs it. Both directions are authenticated with the cluster token from
//! `[cluster] token_file` (`peer_auth.rs`: an HMAC, the token never goes on
//! the wire), re-read on SIGHUP (`reload`); without a token nothing is
//! served or asked (anything that needs the peers fails closed). Every
//! route goes through one verifier (`peer_server.rs`, a middleware over
//! its `peer_routes`) and every ask through one client function (`call`): a
//! total deadline (`request_timeout`) and a 64 KiB cap per exchange. Pull
//! only: a record set or cleared on any node reaches every other node on
//! its next round (`Maintenance::merge`: the newer change wins), and a
//! daemon that starts asks every peer before its first tick has long
//! passed. Each peer's reachability is kept for `/metrics`
//! (`ocfs2_watchdog_cluster_peer_up`).
//!
//! `GET /cluster/v1/state` answers this node's `lease::LocalState`: whether
//! it holds the cluster lease, acts, intends to act, is in maintenance, and
//! its firing disruptive findings. The lease's peer route asks it of every
//! peer at once (`PeerAsker`); the poll round keeps the answers with when
//! they arrived (`lease::reports::PeerReports`), so the storm brake's
//! unhealthy-nodes gate counts the nodes that report trouble and holds on
//! a live peer whose report has aged.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::client::{exchange, ExchangeError};
use super::config::ClusterConfig;
use super::lease::consensus::NodeState;
use super::lease::reports::PeerReports;
use super::lease::{LocalState, Member, PeerAsker};
use super::maintenance::{Maintenance, MaintenanceRecord};
use super::peer_auth::{
    Direction, NonceCache, PeerError, PeerKey, PeerMetrics, Reason, Rejections, SignedAnswer,
    MAX_MESSAGE,
};
use crate::collector::o2cb::cluster_conf::{parse_cluster_conf, ConfNode};
use crate::host::HostPaths;

pub const MAINTENANCE_PATH: &str = "/cluster/v1/maintenance";
pub const STATE_PATH: &str = "/cluster/v1/state";

pub use super::peer_server::routes;

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
pub(super) fn members(paths: &HostPaths, node: &str) -> Result<(ConfNode, Vec<ConfNode>), String> {
    let path = paths.root("/etc/ocfs2/cluster.conf");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let conf = parse_cluster_conf(&text);
    let local = conf.nodes.iter().find(|n| n.name == node).ok_or_else(|| {
        format!("this node ({node}, [cluster] node_name) is not a node of cluster.conf")
    })?;
    let peers = conf
        .nodes_of(&local.cluster)
        .filter(|n| n.name != local.name)
        .cloned()
        .collect();
    Ok((local.clone(), peers))
}

/// This node's cluster.conf name: `[cluster] node_name`, else the host's
/// short hostname (`/etc/hostname`, then the kernel's), else `unknown`.
pub fn local_node_name(config: &ClusterConfig, paths: &HostPaths) -> String {
    if let Some(name) = config.node_name.as_deref().filter(|n| !n.is_empty()) {
        return name.to_string();
    }
    std::fs::read_to_string(paths.root("/etc/hostname"))
        .or_else(|_| std::fs::read_to_string(paths.proc("sys/kernel/hostname")))
        .ok()
        .and_then(|h| h.split('.').next().map(|s| s.trim().to_string()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The identity gauge and zero rejections, for `--once` (no peer protocol).
pub fn identity_metrics(config: &ClusterConfig, paths: &HostPaths) -> PeerMetrics {
    let node = local_node_name(config, paths);
    PeerMetrics {
        node_known: members(paths, &node).is_ok(),
        node_name: node,
        rejected: Rejections::default().snapshot(),
    }
}

pub(super) fn ip_of(node: &ConfNode) -> Option<IpAddr> {
    node.ip_address.as_deref()?.parse().ok()
}

pub struct Peers {
    pub(super) config: ClusterConfig,
    pub(super) paths: HostPaths,
    key: RwLock<Option<Arc<PeerKey>>>,
    pub(super) nonces: NonceCache,
    pub(super) rejections: Rejections,
    pub(super) maintenance: Arc<Maintenance>,
    views: Mutex<Vec<PeerView>>,
    pub(super) local: Arc<LocalState>,
    /// Every peer's last state answer and when it came.
    reports: Arc<PeerReports>,
}

/// The cluster token under the same rules as the admin token
/// (`crate::secret`): a short, placeholder or world-readable token is no
/// key at all, so nothing is served or asked (fail closed).
fn read_token(path: &Path) -> Option<PeerKey> {
    match crate::secret::load_token(path) {
        Ok(token) => Some(PeerKey::new(token.expose().as_bytes())),
        Err(error) => {
            tracing::error!(error = %error, "Cannot use the cluster token; no peer protocol, and what needs the peers stays alert only.");
            None
        }
    }
}

/// Where one ask goes: the node cluster.conf names at `address`, sent from
/// this node's interconnect address.
struct Target<'a> {
    node: &'a str,
    address: &'a str,
    from: Option<IpAddr>,
}

impl Peers {
    pub fn new(config: &ClusterConfig, paths: HostPaths, maintenance: Arc<Maintenance>) -> Self {
        let key = config
            .token_file
            .as_deref()
            .and_then(read_token)
            .map(Arc::new);
        Self {
            config: config.clone(),
            paths,
            key: RwLock::new(key),
            nonces: NonceCache::default(),
            rejections: Rejections::default(),
            local: LocalState::new(maintenance.node()),
            maintenance,
            views: Mutex::new(Vec::new()),
            reports: Arc::new(PeerReports::new()),
        }
    }

    /// Re-reads the cluster token (SIGHUP): a rotated token is used from
    /// the next request on. An unreadable file keeps the token in use.
    pub fn reload(&self) {
        let Some(path) = self.config.token_file.as_deref() else {
            return;
        };
        match read_token(path) {
            Some(key) => {
                *self.key.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(key));
                tracing::info!(file = %path.display(), "Reloaded the cluster token.");
            }
            None => {
                tracing::error!(file = %path.display(), "Keeping the cluster token in use: the new one cannot be used.");
            }
        }
    }

    pub(super) fn key(&self) -> Option<Arc<PeerKey>> {
        self.key.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What this node answers at `GET /cluster/v1/state`.
    pub fn local(&self) -> &Arc<LocalState> {
        &self.local
    }

    /// This node's cluster.conf name.
    pub fn node(&self) -> &str {
        self.maintenance.node()
    }

    /// `Ok` when this node's name is a node of cluster.conf; else why not
    /// (no peers can be asked, the lease holds what needs it).
    pub fn node_known(&self) -> Result<(), String> {
        members(&self.paths, self.node()).map(|_| ())
    }

    /// The identity gauge and the rejection counters, for `/metrics`.
    pub fn metrics(&self) -> PeerMetrics {
        PeerMetrics {
            node_known: self.node_known().is_ok(),
            node_name: self.node().to_string(),
            rejected: self.rejections.snapshot(),
        }
    }

    /// The peers' state answers as last polled, with their age.
    pub fn reports(&self) -> &Arc<PeerReports> {
        &self.reports
    }

    pub fn enabled(&self) -> bool {
        self.key().is_some()
    }

    /// Where to serve: `[cluster] listen`, else this node's interconnect
    /// address from cluster.conf.
    pub fn listen_address(&self) -> Option<String> {
        self.config
            .listen
            .clone()
            .or_else(|| cluster_nodes(&self.paths, self.node(), self.config.port).0)
    }

    pub fn views(&self) -> Vec<PeerView> {
        self.views.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The one client function of the peer protocol: `GET path` of the
    /// node cluster.conf names at `target.address`, signed with the
    /// cluster token, within `request_timeout` in all and `MAX_MESSAGE`
    /// bytes; the answer must be signed by that node for this request.
    /// Every rejection is counted. A signed answer other than 200 is an
    /// error, not a rejection.
    fn call(&self, target: &Target<'_>, path: &str) -> Result<Vec<u8>, PeerError> {
        let key = self
            .key()
            .ok_or_else(|| PeerError::unreachable("no cluster token configured"))?;
        let auth = key.sign_request("GET", path, b"", self.node())?;
        let answer = exchange(
            target.address,
            target.from,
            "GET",
            path,
            &auth.headers(),
            self.config.request_timeout,
            MAX_MESSAGE,
        );
        let result = match answer {
            Ok(answer) => key
                .verify_response(target.node, &auth.nonce, &SignedAnswer::of(&answer))
                .and_then(|()| match answer.status {
                    200 => Ok(answer.body),
                    status => Err(PeerError::unreachable(format!("answered {status}"))),
                }),
            Err(error @ ExchangeError::Timeout { .. }) => {
                Err(PeerError::rejected(Reason::Timeout, error.to_string()))
            }
            Err(error @ ExchangeError::TooLarge { .. }) => {
                Err(PeerError::rejected(Reason::TooLarge, error.to_string()))
            }
            Err(error @ ExchangeError::Malformed { .. }) => {
                Err(PeerError::rejected(Reason::Malformed, error.to_string()))
            }
            Err(error) => Err(PeerError::unreachable(error.to_string())),
        };
        if let Err(PeerError {
            reason: Some(reason),
            message,
        }) = &result
        {
            let peer = format!("{} {}", target.node, target.address);
            self.rejections
                .count(Direction::Response, *reason, &peer, message);
        }
        result
    }

    /// `call`, decoded as JSON; an answer that does not decode is counted
    /// `malformed`.
    fn call_json<T: DeserializeOwned>(
        &self,
        target: &Target<'_>,
        path: &str,
    ) -> Result<T, PeerError> {
        let body = self.call(target, path)?;
        serde_json::from_slice(&body).map_err(|e| {
            let error = PeerError::rejected(Reason::Malformed, format!("{path}: {e}"));
            let peer = format!("{} {}", target.node, target.address);
            self.rejections.count(
                Direction::Response,
                Reason::Malformed,
                &peer,
                &error.message,
            );
            error
        })
    }

    /// This node's interconnect address, to send from.
    fn local_ip(&self) -> Option<IpAddr> {
        members(&self.paths, self.node())
            .ok()
            .and_then(|(local, _)| ip_of(&local))
    }

    /// Asks every peer for its record and state at once and merges what
    /// is newer. Runs on the peer thread (and once before the engine
    /// starts), never on the engine's.
    pub fn poll_once(&self) {
        if !self.enabled() {
            return;
        }
        let from = self.local_ip();
        let (_, peers) = cluster_nodes(&self.paths, self.node(), self.config.port);
        let views = std::thread::scope(|scope| {
            let asks: Vec<_> = peers
                .iter()
                .map(|(node, address)| {
                    scope.spawn(move || {
                        let target = Target {
                            node,
                            address,
                            from,
                        };
                        let error = match self
                            .call_json::<Option<MaintenanceRecord>>(&target, MAINTENANCE_PATH)
                        {
                            Ok(Some(record)) => self
                                .maintenance
                                .merge(record, &format!("{node} {address}"))
                                .err()
                                .map(|e| e.to_string()),
                            Ok(None) => None,
                            Err(e) => Some(e.to_string()),
                        };
                        PeerView {
                            node: node.clone(),
                            address: address.clone(),
                            up: error.is_none(),
                            error,
                        }
                    })
                })
                .collect();
            asks.into_iter()
                .zip(&peers)
                .map(|(ask, (node, address))| {
                    ask.join().unwrap_or_else(|_| PeerView {
                        node: node.clone(),
                        address: address.clone(),
                        up: false,
                        error: Some("asking panicked".into()),
                    })
                })
                .collect::<Vec<_>>()
        });
        if let Ok((local, members)) = PeerAsker::members(self) {
            let answers = self.ask_states(&members);
            self.reports
                .record(local, &members, &answers, std::time::Instant::now());
        }
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
                        waited = waited.saturating_add(Duration::from_millis(100));
                    }
                }
            })
    }

    /// This node's name and its peers (name, `ip:port`) from cluster.conf.
    pub(crate) fn roster(&self) -> (String, Vec<(String, String)>) {
        let node = self.node().to_string();
        let (_, peers) = cluster_nodes(&self.paths, &node, self.config.port);
        (node, peers)
    }

    /// One signed GET to `node` at `address`, its answer verified as the
    /// poll's are (`call`): the hook the cluster view's gatherer uses
    /// (`status_route.rs`).
    pub(crate) fn get(&self, node: &str, address: &str, path: &str) -> Result<Vec<u8>, String> {
        let target = Target {
            node,
            address,
            from: self.local_ip(),
        };
        self.call(&target, path).map_err(|e| e.to_string())
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        self.config.poll_interval
    }
}

impl PeerAsker for Peers {
    fn has_token(&self) -> bool {
        self.enabled()
    }

    fn node_known(&self) -> Result<(), String> {
        Peers::node_known(self)
    }

    fn members(&self) -> Result<(u8, Vec<Member>), String> {
        let (local, peers) = members(&self.paths, self.node())?;
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

    /// Asked at once, each within `request_timeout`: the lease waits at
    /// most about one deadline per round.
    fn ask_states(&self, members: &[Member]) -> Vec<Result<NodeState, String>> {
        if !self.enabled() {
            return members
                .iter()
                .map(|_| Err("no cluster token configured".to_string()))
                .collect();
        }
        let from = self.local_ip();
        std::thread::scope(|scope| {
            let asks: Vec<_> = members
                .iter()
                .map(|m| {
                    scope.spawn(move || {
                        if m.address.is_empty() {
                            return Err("no ip_address in cluster.conf".to_string());
                        }
                        let target = Target {
                            node: &m.node,
                            address: &m.address,
                            from,
                        };
                        self.call_json(&target, STATE_PATH)
                            .map_err(|e| e.to_string())
                    })
                })
                .collect();
            asks.into_iter()
                .map(|a| a.join().unwrap_or_else(|_| Err("asking panicked".into())))
                .collect()
        })
    }
}
