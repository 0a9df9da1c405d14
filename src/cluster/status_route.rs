//! The cluster view over the peer protocol: each daemon serves its own
//! `status::cluster::NodeSummary` at `GET /cluster/v1/summary` to the other
//! nodes, and gathers theirs every `poll_interval` on its own thread, so
//! `/status/cluster` (for `status --cluster` and `check --cluster`) and the
//! `/` page read a cache and never wait on a dead peer.
//!
//! The route sits behind the peer listener's authentication
//! (`peer_server::routes`) and the asks go through the signed client
//! (`Peers::get`), as `/cluster/v1/state` does: a summary is served only to
//! a node of the cluster and believed only from the node cluster.conf names
//! for that address. A peer that does not answer, answers
//! something else or answers too much is listed with the reason, never left
//! out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::watch;

use super::peers::Peers;
use crate::snapshot::Snapshot;
use crate::status::cluster::{summary, ClusterNode, ClusterStatus, NodeSummary};
use crate::status::thresholds::CheckConfig;

pub const SUMMARY_PATH: &str = "/cluster/v1/summary";
/// A summary is a few kilobytes; anything past this is not one.
const MAX_SUMMARY_BYTES: usize = 256 * 1024;

/// This node's summary for the peers, and the peers' as last gathered.
pub struct ClusterViewSource {
    peers: Arc<Peers>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    check: Arc<CheckConfig>,
    /// The peers as last asked; empty before the first round.
    gathered: Mutex<Vec<ClusterNode>>,
}

impl ClusterViewSource {
    pub fn new(
        peers: Arc<Peers>,
        snapshots: watch::Receiver<Arc<Snapshot>>,
        check: Arc<CheckConfig>,
    ) -> Arc<Self> {
        Arc::new(Self {
            peers,
            snapshots,
            check,
            gathered: Mutex::new(Vec::new()),
        })
    }

    /// This node's summary of its latest snapshot; `None` before the first.
    pub fn local_summary(&self) -> Option<NodeSummary> {
        let snapshot = Arc::clone(&self.snapshots.borrow());
        if !snapshot.is_ready() {
            return None;
        }
        let (node, _) = self.peers.roster();
        Some(summary(&node, &snapshot, &self.check))
    }

    /// Asks every peer at once; each ask is bounded by the peer protocol's
    /// request timeout.
    pub fn gather_peers(&self) -> Vec<ClusterNode> {
        let (_, peers) = self.peers.roster();
        std::thread::scope(|scope| {
            let asks: Vec<_> = peers
                .iter()
                .map(|(node, address)| {
                    scope.spawn(move || {
                        let answer = self
                            .peers
                            .get(node, address, SUMMARY_PATH)
                            .and_then(|body| {
                                if body.len() > MAX_SUMMARY_BYTES {
                                    return Err(format!("answered {} bytes", body.len()));
                                }
                                serde_json::from_slice::<NodeSummary>(&body)
                                    .map_err(|e| format!("not a node summary: {e}"))
                            });
                        peer_node(node, address, answer)
                    })
                })
                .collect();
            asks.into_iter()
                .zip(&peers)
                .map(|(ask, (node, address))| {
                    ask.join()
                        .unwrap_or_else(|_| peer_node(node, address, Err("asking panicked".into())))
                })
                .collect()
        })
    }

    /// This node now, then every peer of cluster.conf as last gathered (a
    /// peer not asked yet says so).
    pub fn status(&self) -> ClusterStatus {
        let (node, roster) = self.peers.roster();
        let local = self.local_summary();
        let gathered = self
            .gathered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut nodes = vec![ClusterNode {
            node: node.clone(),
            address: self.peers.listen_address(),
            local: true,
            reachable: local.is_some(),
            error: local.is_none().then(|| "no snapshot taken yet".to_string()),
            summary: local.clone(),
        }];
        for (peer, address) in roster {
            let known = gathered.iter().find(|n| n.node == peer).cloned();
            nodes.push(
                known.unwrap_or_else(|| {
                    peer_node(&peer, &address, Err("not asked yet".to_string()))
                }),
            );
        }
        let cluster = local.and_then(|s| s.cluster).or_else(|| {
            nodes
                .iter()
                .find_map(|n| n.summary.as_ref()?.cluster.clone())
        });
        ClusterStatus { cluster, nodes }
    }

    /// Gathers every `poll_interval` until `stop`.
    pub fn spawn(
        self: Arc<Self>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("cluster-view".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let nodes = self.gather_peers();
                    *self.gathered.lock().unwrap_or_else(|e| e.into_inner()) = nodes;
                    let mut waited = Duration::ZERO;
                    while waited < self.peers.poll_interval() && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100));
                        waited = waited.saturating_add(Duration::from_millis(100));
                    }
                }
            })
    }
}

fn peer_node(node: &str, address: &str, answer: Result<NodeSummary, String>) -> ClusterNode {
    let (summary, error) = match answer {
        Ok(summary) => (Some(summary), None),
        Err(error) => (None, Some(error)),
    };
    ClusterNode {
        node: node.to_string(),
        address: Some(address.to_string()),
        local: false,
        reachable: summary.is_some(),
        error,
        summary,
    }
}

/// The route peers call; `peers::routes` serves it on the peer listener
/// behind the same authentication as every peer route.
pub fn routes(source: Arc<ClusterViewSource>) -> Router {
    Router::new()
        .route(SUMMARY_PATH, get(node_summary))
        .with_state(source)
}

async fn node_summary(State(source): State<Arc<ClusterViewSource>>) -> Response {
    match source.local_summary() {
        Some(summary) => Json(summary).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no snapshot taken yet\n").into_response(),
    }
}
