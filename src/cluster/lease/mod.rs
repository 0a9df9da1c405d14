//! The cluster lease (issue #12): before an action that can disturb other
//! nodes or take this node's volumes away, the engine takes a cluster-wide
//! lease, and at most `[cluster] max_concurrent_nodes` nodes of one o2cb
//! cluster hold it at once. The grant lives in the action's thread, like
//! the engine's volume locks: released when the thread ends, even past its
//! deadline, and with the process when the daemon is killed.
//!
//! Two routes (docs/rules.md, "The cluster lease"). With the local stack
//! online: an o2dlm EX trylock through dlmfs (`dlmfs.rs`), slots `lease-0`
//! .. `lease-(N-1)`. With the stack down, for an o2cb restart (which takes
//! the stack and the DLM domain away mid-action), or when the DLM cannot be
//! used: the peers (`consensus.rs`), asked twice with a jittered delay
//! between. `local.rs` is what this node tells the peers; `reports.rs` what
//! the peers last told this node, and when; `view.rs` the metrics. `needs_lease` says which plans need it.

pub mod consensus;
pub mod dlmfs;
pub mod local;
pub mod reports;
mod view;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::actions::Plan;
use consensus::{decide, NodeState, PeerAnswer, Verdict};
use dlmfs::{HeldLock, LockSpace};
pub use local::LocalState;
pub use view::LeaseView;

/// Plans that need the lease: an o2cb restart (unmounts every volume), an
/// iSCSI logout/login (a path of every volume on it), a leaked-heartbeat
/// kill (the peers see this node's heartbeat stop there), and a remount
/// when `[remediation] serialize_remounts` is on. `unstack` never needs it:
/// it unmounts a duplicate layer, never a volume's last one.
pub fn needs_lease(plan: &Plan, serialize_remounts: bool) -> bool {
    plan.action().needs_lease(serialize_remounts)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Dlmfs,
    Peers,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Dlmfs => "dlmfs",
            Route::Peers => "peers",
        }
    }

    /// An o2cb restart takes the DLM domain down mid-action, and with the
    /// stack down there is no DLM: both go by the peers.
    pub fn for_plan(plan: &Plan, stack_online: bool) -> Self {
        if stack_online && !matches!(plan, Plan::RestartO2cb { .. }) {
            Route::Dlmfs
        } else {
            Route::Peers
        }
    }
}

/// How one attempt ended (`result` label, a fixed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LeaseResult {
    Acquired,
    Busy,
    PeersUnreachable,
    NoToken,
    /// This node's name is not a node of cluster.conf (or cluster.conf
    /// cannot be read): nobody knows who it is, it holds.
    NodeUnknown,
    Error,
}

impl LeaseResult {
    pub const ALL: [LeaseResult; 6] = [
        LeaseResult::Acquired,
        LeaseResult::Busy,
        LeaseResult::PeersUnreachable,
        LeaseResult::NoToken,
        LeaseResult::NodeUnknown,
        LeaseResult::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LeaseResult::Acquired => "acquired",
            LeaseResult::Busy => "busy",
            LeaseResult::PeersUnreachable => "peers_unreachable",
            LeaseResult::NoToken => "no_token",
            LeaseResult::NodeUnknown => "node_unknown",
            LeaseResult::Error => "error",
        }
    }
}

/// Why the lease was not granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub route: Route,
    pub result: LeaseResult,
    pub reason: String,
}

/// A configured peer of this node's cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub node: String,
    pub node_num: u8,
    pub address: String,
}

/// The peer protocol as the lease needs it (`cluster::peers::Peers`; a
/// fake in tests).
pub trait PeerAsker: Send + Sync {
    /// A cluster token is configured.
    fn has_token(&self) -> bool;
    /// This node's number and its peers, from cluster.conf.
    fn members(&self) -> Result<(u8, Vec<Member>), String>;
    /// `Ok` when this node's name is a node of cluster.conf; else why not.
    fn node_known(&self) -> Result<(), String> {
        self.members().map(|_| ())
    }
    /// Each member's `GET /cluster/v1/state`, in order, asked at once.
    fn ask_states(&self, members: &[Member]) -> Vec<Result<NodeState, String>>;
}

/// What the engine knows of the moment it asks.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub stack_online: bool,
    /// Node numbers live on the heartbeat disk; `None` when no slot was read.
    pub live_on_disk: Option<crate::collector::nodemap::NodeSet>,
    /// Why the DLM's answer cannot be trusted now, if so: a node that does
    /// not heartbeat keeps its old domain as a one-node island that grants
    /// every lock, and a domain missing a live node (a resumed zombie) does
    /// the same (lab findings, docs/design.md).
    pub dlm_untrusted: Option<String>,
}

/// The lease held by one action: dropping it releases the DLM lock and
/// tells the peers.
pub struct Grant {
    pub route: Route,
    _lock: Option<HeldLock>,
    id: u64,
    local: Arc<LocalState>,
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.local.release(self.id);
    }
}

#[derive(Debug, Default)]
struct Stats {
    attempts: BTreeMap<(Route, LeaseResult), u64>,
    wait_seconds: f64,
    /// Since when every attempt has been denied.
    contended_since: Option<Instant>,
    last_attempt: Option<Instant>,
    last_denial: Option<String>,
}

type Sleeper = Box<dyn Fn(Duration) + Send + Sync>;

pub struct Lease {
    max_concurrent_nodes: u32,
    /// The pause before the peer route's second round.
    recheck_delay: Duration,
    recheck_jitter: Duration,
    lockspace: Box<dyn LockSpace>,
    peers: Arc<dyn PeerAsker>,
    local: Arc<LocalState>,
    stats: Mutex<Stats>,
    sleep: Sleeper,
}

impl Lease {
    /// `request_timeout` is one peer request's: the re-check waits two of
    /// them plus up to one more of jitter, so a peer that began asking
    /// right after this node's first round has announced its intent (or
    /// taken the lease) by the second.
    pub fn new(
        max_concurrent_nodes: u32,
        request_timeout: Duration,
        lockspace: Box<dyn LockSpace>,
        peers: Arc<dyn PeerAsker>,
        local: Arc<LocalState>,
    ) -> Self {
        Self {
            max_concurrent_nodes: max_concurrent_nodes.max(1),
            recheck_delay: request_timeout * 2,
            recheck_jitter: request_timeout,
            lockspace,
            peers,
            local,
            stats: Mutex::new(Stats::default()),
            sleep: Box::new(std::thread::sleep),
        }
    }

    /// Tests: replaces the real sleep of the re-check.
    pub fn with_sleep(mut self, sleep: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        self.sleep = Box::new(sleep);
        self
    }

    pub fn local(&self) -> &Arc<LocalState> {
        &self.local
    }

    /// Takes the lease for `plan`, or says why not. Blocks for the peer
    /// route's re-check (a few seconds), never longer.
    pub fn acquire(&self, plan: &Plan, context: &Context) -> Result<Grant, Denied> {
        let started = Instant::now();
        let route = Route::for_plan(plan, context.stack_online);
        // Fail closed before either route: a node that is not itself in
        // cluster.conf cannot be told apart by its peers.
        let result = match (route, &context.dlm_untrusted, self.peers.node_known()) {
            (_, _, Err(why)) => Err(Denied {
                route,
                result: LeaseResult::NodeUnknown,
                reason: why,
            }),
            (Route::Dlmfs, None, Ok(())) => self.by_dlmfs(context),
            (Route::Dlmfs, Some(why), Ok(())) => {
                self.by_peers(context, Some(format!("the DLM cannot be trusted ({why})")))
            }
            (Route::Peers, _, Ok(())) => self.by_peers(context, None),
        };
        self.account(&result, route, started.elapsed());
        result
    }

    fn by_dlmfs(&self, context: &Context) -> Result<Grant, Denied> {
        let mut busy = false;
        for slot in 0..self.max_concurrent_nodes {
            match self.lockspace.try_slot(slot) {
                Ok(Some(lock)) => return self.check_peer_holders(lock),
                Ok(None) => busy = true,
                Err(error) => {
                    let why = format!("the DLM cannot be used ({error}); asking the peers");
                    tracing::warn!(error = %error, "The cluster lease falls back to the peers.");
                    return self.by_peers(context, Some(why));
                }
            }
        }
        debug_assert!(busy);
        Err(Denied {
            route: Route::Dlmfs,
            result: LeaseResult::Busy,
            reason: format!(
                "every DLM lease slot is held by other nodes (max_concurrent_nodes {})",
                self.max_concurrent_nodes
            ),
        })
    }

    /// A node that holds the lease by the peers (its stack down) has no
    /// DLM lock: a DLM holder still counts it, from the peers that answer.
    fn check_peer_holders(&self, lock: HeldLock) -> Result<Grant, Denied> {
        if self.peers.has_token() {
            if let Ok((_, members)) = self.peers.members() {
                let holders: Vec<String> = members
                    .iter()
                    .zip(self.peers.ask_states(&members))
                    .filter_map(|(m, s)| {
                        s.ok()
                            .filter(|s| s.holds_lease && s.lease_route.as_deref() == Some("peers"))
                            .map(|_| m.node.clone())
                    })
                    .collect();
                if holders.len() + 1 > self.max_concurrent_nodes as usize {
                    return Err(Denied {
                        route: Route::Dlmfs,
                        result: LeaseResult::Busy,
                        reason: format!(
                            "held by the peers' route on {} (max_concurrent_nodes {})",
                            holders.join(", "),
                            self.max_concurrent_nodes
                        ),
                    });
                }
            }
        }
        Ok(self.grant(Route::Dlmfs, Some(lock)))
    }

    fn grant(&self, route: Route, lock: Option<HeldLock>) -> Grant {
        let id = self.local.hold(route);
        Grant {
            route,
            _lock: lock,
            id,
            local: Arc::clone(&self.local),
        }
    }

    fn by_peers(&self, context: &Context, prefix: Option<String>) -> Result<Grant, Denied> {
        let deny = |result, reason: String| Denied {
            route: Route::Peers,
            result,
            reason: match &prefix {
                Some(p) => format!("{p}: {reason}"),
                None => reason,
            },
        };
        let (local, members) = self
            .peers
            .members()
            .map_err(|why| deny(LeaseResult::Error, why))?;
        if members.is_empty() {
            return Ok(self.grant(Route::Peers, None));
        }
        if !self.peers.has_token() {
            return Err(deny(
                LeaseResult::NoToken,
                "no [cluster] token_file: the peers cannot be asked whether they act".into(),
            ));
        }
        self.local.set_intent(true);
        let first = self.round(local, &members, context);
        let verdict = match first {
            Verdict::Proceed => {
                let fraction = crate::rules::storm::jitter_fraction(Some(local), "") * 0.5
                    + f64::from(subsec_noise()) * 0.5;
                (self.sleep)(
                    self.recheck_delay
                        .saturating_add(crate::input::fraction_of(self.recheck_jitter, fraction)),
                );
                self.round(local, &members, context)
            }
            other => other,
        };
        match verdict {
            Verdict::Proceed => Ok(self.grant(Route::Peers, None)),
            Verdict::Busy(why) => {
                self.local.set_intent(false);
                Err(deny(LeaseResult::Busy, why))
            }
            Verdict::Unreachable(why) => {
                self.local.set_intent(false);
                Err(deny(LeaseResult::PeersUnreachable, why))
            }
        }
    }

    fn round(&self, local: u8, members: &[Member], context: &Context) -> Verdict {
        let answers: Vec<PeerAnswer> = members
            .iter()
            .zip(self.peers.ask_states(members))
            .map(|(m, answer)| PeerAnswer {
                node: m.node.clone(),
                node_num: m.node_num,
                answer,
                live_on_disk: context
                    .live_on_disk
                    .as_ref()
                    .map(|live| live.contains(&m.node_num)),
            })
            .collect();
        decide(local, self.max_concurrent_nodes, &answers)
    }

    fn account(&self, result: &Result<Grant, Denied>, asked: Route, took: Duration) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.wait_seconds += took.as_secs_f64();
        let (route, outcome) = match result {
            Ok(grant) => (grant.route, LeaseResult::Acquired),
            Err(denied) => (denied.route, denied.result),
        };
        *stats.attempts.entry((route, outcome)).or_default() += 1;
        stats.last_attempt = Some(Instant::now());
        match result {
            Ok(grant) => {
                stats.contended_since = None;
                stats.last_denial = None;
                tracing::info!(
                    route = grant.route.as_str(),
                    asked = asked.as_str(),
                    seconds = took.as_secs_f64(),
                    "Cluster lease acquired."
                );
            }
            Err(denied) => {
                stats.contended_since.get_or_insert_with(Instant::now);
                stats.last_denial = Some(denied.reason.clone());
                tracing::info!(route = denied.route.as_str(), result = denied.result.as_str(), reason = %crate::logtext::Escaped(&denied.reason), "Cluster lease not granted; the action waits.");
            }
        }
    }
}

/// A little per-call noise, so two nodes with close jitter fractions do not
/// re-check in lockstep.
fn subsec_noise() -> f32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos % 1000) as f32 / 1000.0
}

#[cfg(test)]
mod tests;
