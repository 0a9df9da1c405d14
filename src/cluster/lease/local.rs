//! This node's side of the peer protocol's `GET /cluster/v1/state`: whether
//! it holds the lease, acts, intends to act, and which disruptive findings
//! fire here. Written by the lease (`Grant` while it lives) and the engine
//! (each tick), read by the peer route on the other nodes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::consensus::NodeState;
use super::Route;

#[derive(Debug, Default)]
struct Inner {
    node_num: Option<u8>,
    /// Live grants: id and route.
    holding: Vec<(u64, Route)>,
    intent_at: Option<f64>,
    maintenance: bool,
    disruptive_findings: Vec<String>,
}

/// What this node tells its peers.
#[derive(Debug)]
pub struct LocalState {
    node: String,
    next_id: AtomicU64,
    inner: Mutex<Inner>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl LocalState {
    pub fn new(node: &str) -> Arc<Self> {
        Arc::new(Self {
            node: node.to_string(),
            next_id: AtomicU64::new(1),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The engine, each tick: this node's number, maintenance and firing
    /// disruptive findings.
    pub fn observe(&self, node_num: Option<u8>, maintenance: bool, findings: Vec<String>) {
        let mut inner = self.inner();
        if node_num.is_some() {
            inner.node_num = node_num;
        }
        inner.maintenance = maintenance;
        inner.disruptive_findings = findings;
    }

    pub(super) fn set_intent(&self, on: bool) {
        self.inner().intent_at = on.then(unix_now);
    }

    /// Records a grant; `release(id)` when it ends.
    pub(super) fn hold(&self, route: Route) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.inner();
        inner.holding.push((id, route));
        inner.intent_at = None;
        id
    }

    pub(super) fn release(&self, id: u64) {
        self.inner().holding.retain(|(held, _)| *held != id);
    }

    /// Routes of the grants alive now.
    pub fn held(&self) -> Vec<Route> {
        self.inner().holding.iter().map(|(_, r)| *r).collect()
    }

    /// The answer to `GET /cluster/v1/state`.
    pub fn state(&self) -> NodeState {
        let inner = self.inner();
        NodeState {
            node: self.node.clone(),
            node_num: inner.node_num,
            holds_lease: !inner.holding.is_empty(),
            lease_route: inner.holding.first().map(|(_, r)| r.as_str().to_string()),
            acting: !inner.holding.is_empty(),
            intent_at: inner.intent_at,
            maintenance: inner.maintenance,
            disruptive_findings: inner.disruptive_findings.clone(),
        }
    }
}
