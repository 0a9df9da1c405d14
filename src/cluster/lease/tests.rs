//! The lease's decisions with a fake DLM and fake peers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::consensus::NodeState;
use super::dlmfs::{DlmError, HeldLock, LockSpace};
use super::*;
use crate::actions::MountSpec;

/// Slots held by "other nodes"; a slot this node takes is held while the
/// returned lock lives.
#[derive(Default)]
struct FakeDlm {
    taken: Arc<Mutex<Vec<u32>>>,
    broken: bool,
}

struct SlotLock(Arc<Mutex<Vec<u32>>>, u32);

impl Drop for SlotLock {
    fn drop(&mut self) {
        self.0.lock().unwrap().retain(|s| *s != self.1);
    }
}

impl LockSpace for FakeDlm {
    fn try_slot(&self, slot: u32) -> Result<Option<HeldLock>, DlmError> {
        if self.broken {
            return Err(DlmError::Domain {
                path: "/dlm/ocfs2-watchdog".into(),
                source: std::io::Error::from_raw_os_error(libc::EPROTO),
            });
        }
        let mut taken = self.taken.lock().unwrap();
        if taken.contains(&slot) {
            return Ok(None);
        }
        taken.push(slot);
        Ok(Some(Box::new(SlotLock(Arc::clone(&self.taken), slot))))
    }
}

/// Peers answering from a script: round `i` answers `rounds[i]` (the last
/// one repeats).
struct FakePeers {
    token: bool,
    local: u8,
    members: Vec<Member>,
    rounds: Vec<Vec<Result<NodeState, String>>>,
    asked: AtomicUsize,
}

impl FakePeers {
    fn new(local: u8, rounds: Vec<Vec<Result<NodeState, String>>>) -> Self {
        let count = rounds.first().map_or(0, Vec::len);
        let members = (0..count)
            .map(|i| {
                let num = if i as u8 + 1 >= local {
                    i as u8 + 2
                } else {
                    i as u8 + 1
                };
                Member {
                    node: format!("n{num}"),
                    node_num: num,
                    address: format!("10.0.0.{num}:9786"),
                }
            })
            .collect();
        Self {
            token: true,
            local,
            members,
            rounds,
            asked: AtomicUsize::new(0),
        }
    }
}

impl PeerAsker for FakePeers {
    fn has_token(&self) -> bool {
        self.token
    }

    fn members(&self) -> Result<(u8, Vec<Member>), String> {
        Ok((self.local, self.members.clone()))
    }

    fn ask_states(&self, members: &[Member]) -> Vec<Result<NodeState, String>> {
        let round = self.asked.fetch_add(1, Ordering::SeqCst);
        let answers = &self.rounds[round.min(self.rounds.len() - 1)];
        assert_eq!(answers.len(), members.len());
        answers.clone()
    }
}

fn idle() -> Result<NodeState, String> {
    Ok(NodeState::default())
}

fn intending() -> Result<NodeState, String> {
    Ok(NodeState {
        intent_at: Some(1.0),
        ..NodeState::default()
    })
}

fn holding_by_peers() -> Result<NodeState, String> {
    Ok(NodeState {
        holds_lease: true,
        lease_route: Some("peers".into()),
        acting: true,
        ..NodeState::default()
    })
}

fn lease(max: u32, dlm: FakeDlm, peers: FakePeers) -> (Lease, Arc<Mutex<Vec<Duration>>>) {
    let slept = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&slept);
    let lease = Lease::new(
        max,
        Duration::from_secs(2),
        Box::new(dlm),
        Arc::new(peers),
        LocalState::new("n1"),
    )
    .with_sleep(move |d| record.lock().unwrap().push(d));
    (lease, slept)
}

fn restart() -> Plan {
    Plan::RestartO2cb {
        cluster: "c".into(),
        volumes: Vec::new(),
        stop_services: Vec::new(),
        timeouts: None,
    }
}

fn relogin() -> Plan {
    Plan::IscsiRelogin {
        session: "session1".into(),
        target: "t".into(),
        portal: "p".into(),
    }
}

fn online() -> Context {
    Context {
        stack_online: true,
        live_on_disk: Some([1, 2, 3].into_iter().collect()),
        dlm_untrusted: None,
    }
}

fn offline() -> Context {
    Context {
        stack_online: false,
        live_on_disk: None,
        dlm_untrusted: None,
    }
}

#[test]
fn which_plans_need_the_lease() {
    let remount = Plan::Remount(MountSpec::default());
    assert!(needs_lease(&restart(), false));
    assert!(needs_lease(&relogin(), false));
    assert!(needs_lease(
        &Plan::KillLeakedHeartbeat { uuid: "U".into() },
        false
    ));
    assert!(!needs_lease(&remount, false));
    assert!(needs_lease(&remount, true));
    assert!(!needs_lease(
        &Plan::Unstack {
            mountpoint: "/srv".into()
        },
        true
    ));
    assert_eq!(Route::for_plan(&relogin(), true), Route::Dlmfs);
    assert_eq!(Route::for_plan(&relogin(), false), Route::Peers);
    assert_eq!(Route::for_plan(&restart(), true), Route::Peers);
}

#[test]
fn the_dlm_lock_is_held_while_the_grant_lives_and_busy_meanwhile() {
    let dlm = FakeDlm::default();
    let taken = Arc::clone(&dlm.taken);
    let (lease, _) = lease(1, dlm, FakePeers::new(1, vec![vec![idle()]]));
    let grant = lease.acquire(&relogin(), &online()).expect("granted");
    assert_eq!(grant.route, Route::Dlmfs);
    assert!(lease.local().state().holds_lease);
    assert_eq!(lease.local().state().lease_route.as_deref(), Some("dlmfs"));
    let busy = lease.acquire(&relogin(), &online()).err().expect("busy");
    assert_eq!(busy.result, LeaseResult::Busy);
    drop(grant);
    assert!(taken.lock().unwrap().is_empty());
    assert!(!lease.local().state().holds_lease);
    assert!(lease.acquire(&relogin(), &online()).is_ok());
    let view = lease.view(Instant::now());
    let count = |result: &str| {
        view.attempts
            .iter()
            .find(|(r, res, _)| *r == "dlmfs" && *res == result)
            .map(|a| a.2)
    };
    assert_eq!(count("acquired"), Some(2));
    assert_eq!(count("busy"), Some(1));
}

#[test]
fn max_concurrent_nodes_is_the_number_of_dlm_slots() {
    let dlm = FakeDlm::default();
    dlm.taken.lock().unwrap().push(0);
    let (one, _) = lease(1, dlm, FakePeers::new(1, vec![vec![idle()]]));
    assert_eq!(
        one.acquire(&relogin(), &online()).err().map(|d| d.result),
        Some(LeaseResult::Busy)
    );
    let dlm = FakeDlm::default();
    dlm.taken.lock().unwrap().push(0);
    let (two, _) = lease(2, dlm, FakePeers::new(1, vec![vec![idle()]]));
    assert!(two.acquire(&relogin(), &online()).is_ok());
}

#[test]
fn a_dlm_holder_still_counts_a_node_holding_by_the_peers() {
    let (lease, _) = lease(
        1,
        FakeDlm::default(),
        FakePeers::new(1, vec![vec![holding_by_peers()]]),
    );
    let denied = lease.acquire(&relogin(), &online()).err().expect("busy");
    assert_eq!(denied.result, LeaseResult::Busy);
    assert!(denied.reason.contains("n2"), "{}", denied.reason);
}

#[test]
fn an_unusable_dlm_falls_back_to_the_peers() {
    let dlm = FakeDlm {
        broken: true,
        ..FakeDlm::default()
    };
    let (lease, slept) = lease(1, dlm, FakePeers::new(1, vec![vec![idle()]]));
    let grant = lease.acquire(&relogin(), &online()).expect("granted");
    assert_eq!(grant.route, Route::Peers);
    assert_eq!(slept.lock().unwrap().len(), 1, "re-checked once");
}

#[test]
fn peers_route_proceeds_after_a_jittered_recheck() {
    let (lease, slept) = lease(
        1,
        FakeDlm::default(),
        FakePeers::new(1, vec![vec![idle(), idle()]]),
    );
    let grant = lease.acquire(&restart(), &offline()).expect("granted");
    assert_eq!(grant.route, Route::Peers);
    let slept = slept.lock().unwrap();
    assert_eq!(slept.len(), 1);
    assert!(
        slept[0] >= Duration::from_secs(4) && slept[0] <= Duration::from_secs(6),
        "{slept:?}"
    );
    assert!(lease.local().state().intent_at.is_none());
    assert!(lease.local().state().holds_lease);
}

#[test]
fn the_recheck_sees_a_lower_node_that_began_asking_meanwhile() {
    // This is n2; n1 was idle at the first round and asks by the second.
    let (lease, _) = lease(
        1,
        FakeDlm::default(),
        FakePeers::new(2, vec![vec![idle()], vec![intending()]]),
    );
    let denied = lease.acquire(&restart(), &offline()).err().expect("busy");
    assert_eq!(denied.result, LeaseResult::Busy);
    assert!(
        denied.reason.contains("lower-numbered"),
        "{}",
        denied.reason
    );
    assert!(
        lease.local().state().intent_at.is_none(),
        "a node that backs off withdraws its intent"
    );
}

#[test]
fn the_lower_node_wins_the_tie() {
    let (lease, _) = lease(
        1,
        FakeDlm::default(),
        FakePeers::new(1, vec![vec![intending()]]),
    );
    assert!(lease.acquire(&restart(), &offline()).is_ok());
}

#[test]
fn an_unreachable_peer_or_no_token_fails_closed() {
    let (lease_a, slept) = lease(
        1,
        FakeDlm::default(),
        FakePeers::new(1, vec![vec![Err("connection refused".into())]]),
    );
    let denied = lease_a
        .acquire(&restart(), &online())
        .err()
        .expect("denied");
    assert_eq!(denied.result, LeaseResult::PeersUnreachable);
    assert!(denied.reason.contains("live on the heartbeat disk"));
    assert!(
        slept.lock().unwrap().is_empty(),
        "no re-check after a refusal"
    );
    assert!(lease_a.view(Instant::now()).last_denial.is_some());

    let mut peers = FakePeers::new(1, vec![vec![idle()]]);
    peers.token = false;
    let (lease_b, _) = lease(1, FakeDlm::default(), peers);
    let denied = lease_b
        .acquire(&restart(), &offline())
        .err()
        .expect("denied");
    assert_eq!(denied.result, LeaseResult::NoToken);
    assert!(lease_b.local().state().intent_at.is_none());
}

#[test]
fn a_single_node_cluster_needs_no_peers() {
    let mut peers = FakePeers::new(1, vec![Vec::new()]);
    peers.token = false;
    let (lease, _) = lease(1, FakeDlm::default(), peers);
    assert!(lease.acquire(&restart(), &offline()).is_ok());
}

#[test]
fn an_untrusted_dlm_is_not_asked_the_peers_are() {
    let dlm = FakeDlm::default();
    let taken = Arc::clone(&dlm.taken);
    let (lease, _) = lease(1, dlm, FakePeers::new(1, vec![vec![holding_by_peers()]]));
    let context = Context {
        dlm_untrusted: Some("this node does not heartbeat".into()),
        ..online()
    };
    let denied = lease.acquire(&relogin(), &context).err().expect("busy");
    assert_eq!(denied.route, Route::Peers);
    assert_eq!(denied.result, LeaseResult::Busy);
    assert!(
        denied
            .reason
            .starts_with("the DLM cannot be trusted (this node does not heartbeat)"),
        "{}",
        denied.reason
    );
    assert!(taken.lock().unwrap().is_empty(), "the DLM was asked");
}

/// A node whose name is not in cluster.conf.
struct Stranger;

impl PeerAsker for Stranger {
    fn has_token(&self) -> bool {
        true
    }

    fn members(&self) -> Result<(u8, Vec<Member>), String> {
        Err("this node (x, [cluster] node_name) is not a node of cluster.conf".into())
    }

    fn ask_states(&self, _members: &[Member]) -> Vec<Result<NodeState, String>> {
        panic!("a node unknown to cluster.conf asks nobody")
    }
}

#[test]
fn a_node_missing_from_cluster_conf_is_held_on_either_route() {
    let lease = Lease::new(
        1,
        Duration::from_secs(2),
        Box::new(FakeDlm::default()),
        Arc::new(Stranger),
        LocalState::new("x"),
    );
    for (plan, context, route) in [
        (relogin(), online(), Route::Dlmfs),
        (restart(), online(), Route::Peers),
        (relogin(), offline(), Route::Peers),
    ] {
        let denied = lease.acquire(&plan, &context).err().expect("denied");
        assert_eq!(denied.result, LeaseResult::NodeUnknown);
        assert_eq!(denied.route, route);
        assert!(denied.reason.contains("not a node of cluster.conf"));
    }
    let view = lease.view(Instant::now());
    assert!(view.attempts.contains(&("dlmfs", "node_unknown", 1)));
    assert!(view.held.is_empty());
}
