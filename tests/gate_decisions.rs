//! Which gate holds which action, decided by the engine on fixture
//! snapshots with fake peers and a fake clock: only fresh, not given-up
//! findings of other live nodes count toward `max_unhealthy_nodes`, and
//! only against disruptive actions; a live peer whose report aged holds
//! them with `peer_unknown`; local healing (unstack) never waits for another
//! node; and every gate is read again after the lease's wait, immediately
//! before the action, giving the lease back when one turned. Fixture
//! engine of tests/engine_fixture.

mod engine_fixture;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine_fixture::{count, fixture, with_section, Fixture};
use ocfs2_watchdog::actions::audit::AuditRecord;
use ocfs2_watchdog::actions::{Outcome, Plan};
use ocfs2_watchdog::cluster::lease::consensus::NodeState;
use ocfs2_watchdog::cluster::lease::dlmfs::{DlmError, HeldLock, LockSpace};
use ocfs2_watchdog::cluster::lease::reports::PeerReports;
use ocfs2_watchdog::cluster::lease::{Lease, LocalState, Member, PeerAsker};
use ocfs2_watchdog::collector::configfs::{ClusterConfig, NodeConfig};
use ocfs2_watchdog::collector::dlm::{compare_membership, DlmFacts, DlmState};
use ocfs2_watchdog::collector::heartbeat::{HeartbeatFacts, RegionHeartbeat};
use ocfs2_watchdog::collector::mounts::{Expected, ExpectedOrigin, MountFacts};
use ocfs2_watchdog::collector::net::NetFacts;
use ocfs2_watchdog::collector::nodemap::NodeSet;
use ocfs2_watchdog::collector::o2cb::O2cbFacts;
use ocfs2_watchdog::collector::storage::iscsi::{Connection, Session};
use ocfs2_watchdog::collector::storage::IscsiFacts;
use ocfs2_watchdog::collector::Facts;
use ocfs2_watchdog::config::Config;
use ocfs2_watchdog::rules::config::RuleConfig;
use ocfs2_watchdog::rules::control::Control;
use ocfs2_watchdog::snapshot::Snapshot;
use tokio::sync::watch;

fn at(t0: Instant, seconds: u64) -> Instant {
    t0 + Duration::from_secs(seconds)
}

/// Every rule acts at once (`for` 0); the iSCSI re-login and the o2cb
/// restart are on.
fn tune(c: &mut Config) {
    c.remediation.actions_per_hour = 100;
    c.remediation.storm_release_jitter = Duration::ZERO;
    let dup = c
        .remediation
        .rules
        .get_mut("duplicate_mount_layers")
        .unwrap();
    dup.r#for = Some(Duration::ZERO);
    dup.actions_per_hour = Some(100);
    for name in ["iscsi_session_failed", "o2cb_down"] {
        c.remediation.rules.insert(
            name.into(),
            RuleConfig {
                enabled: Some(true),
                r#for: Some(Duration::ZERO),
                actions_per_hour: Some(100),
                ..RuleConfig::default()
            },
        );
    }
}

fn node(num: u8, local: u8) -> NodeConfig {
    NodeConfig {
        name: format!("n{num}"),
        num: Some(num),
        local: Some(num == local),
        ..NodeConfig::default()
    }
}

/// n1 of n1..n3 with its stack up: `live` in the kernel's heartbeat, every
/// live peer connected, and a failed iSCSI session (a re-login plan,
/// disruptive) next to the fixture's three duplicate layers (unstack).
fn online(f: &Fixture, live: &[u8]) -> Snapshot {
    let mut snapshot = f.snapshot();
    let o2cb = O2cbFacts {
        cluster_name: "labclu".into(),
        online: true,
        cluster: Some(ClusterConfig {
            name: "labclu".into(),
            nodes: (1..=3).map(|n| node(n, 1)).collect(),
            ..ClusterConfig::default()
        }),
        ..O2cbFacts::default()
    };
    let live: NodeSet = live.iter().copied().collect();
    let heartbeat = HeartbeatFacts {
        cluster: "labclu".into(),
        timeout_seconds: Some(20),
        configured: (1..=3).collect(),
        live_any: live.clone(),
        regions: vec![RegionHeartbeat {
            uuid: "DEA93192F0874F53BB5290B5205C6B64".into(),
            ratio: Some(0.1),
            live: live.clone(),
            ..RegionHeartbeat::default()
        }],
        ..HeartbeatFacts::default()
    };
    let net = NetFacts {
        connected: live.iter().copied().filter(|n| *n != 1).collect(),
        idle_seconds: BTreeMap::new(),
    };
    with_section(&mut snapshot, "o2cb", Facts::O2cb(Arc::new(o2cb)));
    with_section(
        &mut snapshot,
        "heartbeat",
        Facts::Heartbeat(Arc::new(heartbeat)),
    );
    with_section(&mut snapshot, "net", Facts::Net(Arc::new(net)));
    let session = |name: &str, state: &str| Session {
        name: name.into(),
        state: Some(state.into()),
        target: Some(format!("iqn.2024-01.lab:{name}")),
        connections: vec![Connection {
            address: Some("192.0.2.1".into()),
            port: Some("3260".into()),
            ..Connection::default()
        }],
        ..Session::default()
    };
    let iscsi = IscsiFacts {
        sessions: vec![
            session("session1", "LOGGED_IN"),
            session("session2", "FAILED"),
        ],
    };
    with_section(&mut snapshot, "iscsi", Facts::Iscsi(Arc::new(iscsi)));
    snapshot
}

/// This node's o2cb is down while an OCFS2 mount is expected (an o2cb
/// restart plan, disruptive, by the peers' lease route), next to the
/// fixture's duplicate layers.
fn stack_down(f: &Fixture) -> Snapshot {
    let mut snapshot = f.snapshot();
    let o2cb = O2cbFacts {
        cluster_name: "labclu".into(),
        online: false,
        ..O2cbFacts::default()
    };
    let heartbeat = HeartbeatFacts {
        cluster: "labclu".into(),
        configured: (1..=3).collect(),
        ..HeartbeatFacts::default()
    };
    let mut mounts: MountFacts = snapshot.mounts().unwrap().clone();
    let mut expected = mounts.mounts[0].clone();
    expected.mountpoint = "/mnt/ocfs2".into();
    expected.stacked = 0;
    expected.duplicate_layers = 0;
    expected.top = None;
    expected.top_id = None;
    expected.expected = Some(Expected {
        source: "/dev/vda".into(),
        fstype: "ocfs2".into(),
        options: "_netdev".into(),
        origin: ExpectedOrigin::Config,
    });
    mounts.mounts.push(expected);
    with_section(&mut snapshot, "o2cb", Facts::O2cb(Arc::new(o2cb)));
    with_section(
        &mut snapshot,
        "heartbeat",
        Facts::Heartbeat(Arc::new(heartbeat)),
    );
    with_section(&mut snapshot, "mounts", Facts::Mounts(Arc::new(mounts)));
    snapshot
}

fn member(num: u8) -> Member {
    Member {
        node: format!("n{num}"),
        node_num: num,
        address: format!("10.0.0.{num}:9786"),
    }
}

fn trouble(finding: &str) -> NodeState {
    NodeState {
        disruptive_findings: vec![finding.into()],
        ..NodeState::default()
    }
}

/// n2 and n3 answered `n2` and `n3` at `when`, as n1's peer thread records.
fn peers_said(n2: NodeState, n3: NodeState, when: Instant) -> Arc<PeerReports> {
    let reports = Arc::new(PeerReports::new());
    reports.record(1, &[member(2), member(3)], &[Ok(n2), Ok(n3)], when);
    reports
}

fn plans(f: &Fixture, kind: fn(&Plan) -> bool) -> usize {
    f.calls.lock().unwrap().iter().filter(|p| kind(p)).count()
}

fn is_restart(plan: &Plan) -> bool {
    matches!(plan, Plan::RestartO2cb { .. })
}

fn is_relogin(plan: &Plan) -> bool {
    matches!(plan, Plan::IscsiRelogin { .. })
}

fn is_unstack(plan: &Plan) -> bool {
    matches!(plan, Plan::Unstack { .. })
}

fn audit_of(f: &Fixture, rule: &str) -> Vec<AuditRecord> {
    f.audit().into_iter().filter(|r| r.rule == rule).collect()
}

/// A DLM whose every lock is free.
struct FreeDlm;

impl LockSpace for FreeDlm {
    fn try_slot(&self, _slot: u32) -> Result<Option<HeldLock>, DlmError> {
        Ok(Some(Box::new(())))
    }
}

/// A cluster with nobody else to ask: the peer route grants at once.
struct LoneNode;

impl PeerAsker for LoneNode {
    fn has_token(&self) -> bool {
        false
    }
    fn members(&self) -> Result<(u8, Vec<Member>), String> {
        Ok((1, Vec::new()))
    }
    fn ask_states(&self, _members: &[Member]) -> Vec<Result<NodeState, String>> {
        Vec::new()
    }
}

#[test]
fn a_given_up_finding_on_a_peer_holds_neither_unstack_nor_o2cb_restart() {
    // n2: its unstacks fail and give up; what it publishes is read from its
    // lease's state, as its peer server answers it.
    let mut n2 = fixture(Outcome::Failed("umount: busy".into()), |c| {
        tune(c);
        c.remediation
            .rules
            .get_mut("duplicate_mount_layers")
            .unwrap()
            .max_attempts = Some(1);
    });
    let n2_state = LocalState::new("n2");
    n2.engine.set_lease(Arc::new(
        Lease::new(
            1,
            Duration::from_secs(1),
            Box::new(FreeDlm),
            Arc::new(LoneNode),
            Arc::clone(&n2_state),
        )
        .with_sleep(|_| {}),
    ));
    let snapshot = n2.snapshot();
    let t0 = Instant::now();
    n2.engine.tick(&snapshot, t0);
    assert_eq!(
        n2_state.state().disruptive_findings.len(),
        3,
        "firing unstacks are published while they may act"
    );
    let report = n2.engine.tick(&snapshot, at(t0, 30));
    assert_eq!(report.gave_up.len(), 3, "{:?}", report.gave_up);
    assert_eq!(
        n2_state.state().disruptive_findings,
        Vec::<String>::new(),
        "given-up findings are not published"
    );

    // n1 (stack down: an o2cb restart, and the unstacks) hears n2's state
    // and n3 in real trouble: one other node in trouble of three is not
    // more than the limit of 1.
    let mut n1 = fixture(Outcome::Success("done".into()), tune);
    n1.engine.set_peer_reports(peers_said(
        n2_state.state(),
        trouble("o2cb_down/labclu"),
        at(t0, 30),
    ));
    let report = n1.engine.tick(&stack_down(&n1), at(t0, 30));
    assert_eq!(report.unhealthy_nodes, 1);
    assert_eq!(
        plans(&n1, is_restart),
        1,
        "{:?}",
        audit_of(&n1, "o2cb_down")
    );
    assert_eq!(plans(&n1, is_unstack), 3);
}

#[test]
fn this_nodes_own_finding_does_not_count_against_itself() {
    // n1 has the o2cb restart, n2 a firing disruptive finding: with n1
    // counted that was 2 of 3 and held; n1 is not counted for its own plan.
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        tune(c);
        c.remediation.max_unhealthy_nodes = Some(1);
    });
    let t0 = Instant::now();
    f.engine.set_peer_reports(peers_said(
        trouble("iscsi_session_failed/session4"),
        NodeState::default(),
        t0,
    ));
    let report = f.engine.tick(&stack_down(&f), t0);
    assert_eq!(report.unhealthy_nodes, 1);
    assert!(
        report.storm_brake_reasons.is_empty(),
        "{:?}",
        report.storm_brake_reasons
    );
    assert_eq!(plans(&f, is_restart), 1, "{:?}", audit_of(&f, "o2cb_down"));
}

#[test]
fn an_evicted_or_powered_off_peers_last_report_does_not_count() {
    // n3 is out of the kernel's live map (powered off); its last report,
    // trouble, now long aged, neither counts nor makes it "unknown".
    let mut f = fixture(Outcome::Success("done".into()), tune);
    let t0 = Instant::now();
    let reports = peers_said(trouble("o2cb_down/labclu"), trouble("o2cb_down/labclu"), t0);
    // n2 keeps answering; n3 stopped at t0.
    reports.record(
        1,
        &[member(2), member(3)],
        &[Ok(trouble("o2cb_down/labclu")), Err("timed out".into())],
        at(t0, 100),
    );
    f.engine.set_peer_reports(reports);
    let report = f.engine.tick(&online(&f, &[1, 2]), at(t0, 100));
    assert_eq!(report.unhealthy_nodes, 1, "{:?}", report.storm_brake);
    assert!(
        report.storm_brake_reasons.is_empty(),
        "{:?}",
        report.storm_brake
    );
    assert_eq!(
        plans(&f, is_relogin),
        1,
        "{:?}",
        audit_of(&f, "iscsi_session_failed")
    );

    // n2 evicted from a DLM domain (in its recovery map), n3 live: n2's
    // fresh trouble does not count.
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        tune(c);
        c.remediation.max_unhealthy_nodes = Some(0);
    });
    f.engine.set_peer_reports(peers_said(
        trouble("o2cb_down/labclu"),
        NodeState::default(),
        t0,
    ));
    let mut snapshot = online(&f, &[1, 2, 3]);
    let mut domain = DlmState {
        domain: "DEA93192F0874F53BB5290B5205C6B64".into(),
        node: 1,
        ..DlmState::default()
    };
    domain.recovery_map.insert(2);
    let dlm = DlmFacts {
        domains: vec![compare_membership(domain, &NodeSet::new(), &NodeSet::new())],
    };
    with_section(&mut snapshot, "dlm", Facts::Dlm(Arc::new(dlm)));
    let report = f.engine.tick(&snapshot, t0);
    assert_eq!(report.unhealthy_nodes, 0);
    assert_eq!(
        plans(&f, is_relogin),
        1,
        "{:?}",
        audit_of(&f, "iscsi_session_failed")
    );
}

#[test]
fn an_aged_report_of_a_live_peer_holds_disruptive_actions_with_its_reason() {
    let mut f = fixture(Outcome::Success("done".into()), tune);
    let t0 = Instant::now();
    f.engine
        .set_peer_reports(peers_said(NodeState::default(), NodeState::default(), t0));
    // Default poll 5 s, request 2 s: fresh for 3 x 5 + 2 = 17 s.
    let report = f.engine.tick(&online(&f, &[1, 2, 3]), at(t0, 18));
    assert_eq!(plans(&f, is_relogin), 0);
    assert_eq!(report.storm_brake_reasons, ["peer_unknown"]);
    let skipped = audit_of(&f, "iscsi_session_failed");
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].outcome.as_str(), "skipped_storm");
    let detail = skipped[0].detail.as_deref().unwrap_or("");
    assert!(
        detail.starts_with(
            "peer_unknown: no fresh state from live peer(s): n2 (node 2): last state report 18s ago (max 17s)"
        ),
        "{detail}"
    );
    let text = engine_fixture::snapshot_with(report)
        .rendered_text()
        .to_string();
    assert!(text.contains("ocfs2_watchdog_storm_brake_reason{reason=\"peer_unknown\"} 1"));
    // Local healing does not wait for it.
    assert_eq!(plans(&f, is_unstack), 3);
}

#[test]
fn an_unstack_is_not_held_by_a_peers_trouble_nor_by_its_hold_down() {
    let mut f = fixture(Outcome::Success("done".into()), tune);
    let t0 = Instant::now();
    let reports = peers_said(
        trouble("o2cb_down/labclu"),
        trouble("iscsi_session_failed/session9"),
        t0,
    );
    f.engine.set_peer_reports(Arc::clone(&reports));
    let snapshot = online(&f, &[1, 2, 3]);
    let report = f.engine.tick(&snapshot, t0);
    assert_eq!(report.storm_brake_reasons, ["unhealthy_nodes"]);
    assert_eq!(report.unhealthy_nodes, 2);
    assert_eq!(plans(&f, is_unstack), 3, "unstacks ran");
    assert_eq!(plans(&f, is_relogin), 0, "the re-login is held");
    let detail = audit_of(&f, "iscsi_session_failed")[0]
        .detail
        .clone()
        .unwrap_or_default();
    assert!(
        detail.contains(
            "unhealthy_nodes: 2 of 3 nodes unhealthy (max 1, this node not counted): 2, 3"
        ),
        "{detail}"
    );

    // The peers recover: the re-login waits the hold-down (2 x 20 s); new
    // duplicate layers are unstacked at once.
    reports.record(
        1,
        &[member(2), member(3)],
        &[Ok(NodeState::default()), Ok(NodeState::default())],
        at(t0, 10),
    );
    f.set_mountinfo(concat!(
        "50 1 0:53 / /srv/d rw,relatime - tmpfs tmpfs rw\n",
        "51 50 0:53 / /srv/d rw,relatime - tmpfs tmpfs rw\n",
    ));
    let report = f.engine.tick(&online(&f, &[1, 2, 3]), at(t0, 11));
    assert_eq!(report.storm_brake_reasons, ["hold_down"]);
    assert_eq!(plans(&f, is_relogin), 0, "the re-login waits the hold-down");
    assert_eq!(plans(&f, is_unstack), 4, "local healing does not");
}

/// Peers n2 and n3 that answer "idle" to every round, counting the rounds.
struct IdlePeers(AtomicUsize);

impl PeerAsker for IdlePeers {
    fn has_token(&self) -> bool {
        true
    }
    fn members(&self) -> Result<(u8, Vec<Member>), String> {
        Ok((1, vec![member(2), member(3)]))
    }
    fn ask_states(&self, members: &[Member]) -> Vec<Result<NodeState, String>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        members.iter().map(|_| Ok(NodeState::default())).collect()
    }
}

/// What the lease's wait may change: the control (pause), the peers'
/// reports (the peer thread polls meanwhile), the newest snapshot.
struct During {
    control: Arc<Control>,
    reports: Arc<PeerReports>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    newer: Mutex<Option<Snapshot>>,
}

/// n1 with its stack down (an o2cb restart by the peers' route) whose
/// lease runs `during_wait` in the wait between its two rounds; peers n2
/// and n3 fresh and idle at `t0`; this node's lease state.
fn lease_wait(
    during_wait: impl Fn(&During) + Send + Sync + 'static,
) -> (Fixture, Arc<During>, Arc<LocalState>, Instant) {
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        tune(c);
        // Only the restart: the unstacks and remounts are not what this is
        // about.
        for name in ["duplicate_mount_layers", "missing_mount"] {
            c.remediation.rules.insert(
                name.into(),
                RuleConfig {
                    enabled: Some(false),
                    ..RuleConfig::default()
                },
            );
        }
    });
    let t0 = Instant::now();
    let reports = peers_said(NodeState::default(), NodeState::default(), t0);
    f.engine.set_peer_reports(Arc::clone(&reports));
    let (snapshots, latest) = watch::channel(Arc::new(Snapshot::empty()));
    f.engine.follow_snapshots(latest);
    let during = Arc::new(During {
        control: Arc::clone(&f.control),
        reports,
        snapshots,
        newer: Mutex::new(None),
    });
    let local = LocalState::new("n1");
    let hook = Arc::clone(&during);
    let lease = Lease::new(
        1,
        Duration::from_secs(2),
        Box::new(FreeDlm),
        Arc::new(IdlePeers(AtomicUsize::new(0))),
        Arc::clone(&local),
    )
    .with_sleep(move |_| during_wait(&hook));
    f.engine.set_lease(Arc::new(lease));
    (f, during, local, t0)
}

fn assert_refused_after_the_lease(f: &Fixture, local: &LocalState, outcome: &str, reason: &str) {
    assert_eq!(plans(f, is_restart), 0, "the restart ran");
    let audit = audit_of(f, "o2cb_down");
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].outcome.as_str(), outcome, "{audit:?}");
    let detail = audit[0].detail.as_deref().unwrap_or("");
    assert!(
        detail.starts_with("at the action, after the lease was granted (lease released): ")
            && detail.contains(reason),
        "{detail}"
    );
    assert!(local.held().is_empty(), "the lease was given back");
    let state = local.state();
    assert!(!state.holds_lease && !state.acting && state.intent_at.is_none());
    assert!(
        !audit.iter().any(|r| r.outcome.as_str() == "started"),
        "no before line: nothing was started"
    );
}

#[test]
fn maintenance_set_on_a_peer_during_the_lease_wait_stops_the_action() {
    let (mut f, _, local, t0) = lease_wait(|during| {
        // The peer thread polls while the lease waits: n2 is now in
        // maintenance.
        let maintenance = NodeState {
            maintenance: true,
            ..NodeState::default()
        };
        during.reports.record(
            1,
            &[member(2), member(3)],
            &[Ok(maintenance), Ok(NodeState::default())],
            Instant::now(),
        );
    });
    let report = f.engine.tick(&stack_down(&f), t0);
    assert_refused_after_the_lease(
        &f,
        &local,
        "skipped_maintenance",
        "maintenance: in force on n2 (node 2) as last polled",
    );
    assert_eq!(count(&report, "skipped_maintenance"), 1);
    let lease = report.lease.expect("the lease in the report");
    assert!(
        lease
            .attempts
            .iter()
            .any(|(route, result, n)| *route == "peers" && *result == "acquired" && *n == 1),
        "{:?}",
        lease.attempts
    );
    assert!(lease.held.is_empty());
}

#[test]
fn any_other_gate_turning_during_the_lease_wait_stops_the_action() {
    // A pause.
    let (mut f, _, local, t0) = lease_wait(|during| during.control.pause("test"));
    f.engine.tick(&stack_down(&f), t0);
    assert_refused_after_the_lease(&f, &local, "skipped_paused", "");

    // Two peers report trouble: the unhealthy-nodes gate.
    let (mut f, _, local, t0) = lease_wait(|during| {
        during.reports.record(
            1,
            &[member(2), member(3)],
            &[
                Ok(trouble("o2cb_down/labclu")),
                Ok(trouble("o2cb_down/labclu")),
            ],
            Instant::now(),
        );
    });
    f.engine.tick(&stack_down(&f), t0);
    assert_refused_after_the_lease(&f, &local, "skipped_storm", "unhealthy_nodes: 2 of 3");

    // The sampler publishes a snapshot with storm evidence (every iSCSI
    // session down): the gate reads the newest snapshot.
    let (mut f, during, local, t0) = lease_wait(|during| {
        if let Some(newer) = during.newer.lock().unwrap().take() {
            during.snapshots.send_replace(Arc::new(newer));
        }
    });
    let snapshot = stack_down(&f);
    let mut newer = snapshot.clone();
    newer.sequence = snapshot.sequence + 1;
    let down = IscsiFacts {
        sessions: vec![Session {
            name: "session1".into(),
            state: Some("FAILED".into()),
            ..Session::default()
        }],
    };
    with_section(&mut newer, "iscsi", Facts::Iscsi(Arc::new(down)));
    *during.newer.lock().unwrap() = Some(newer);
    f.engine.tick(&snapshot, t0);
    assert_refused_after_the_lease(
        &f,
        &local,
        "skipped_storm",
        "storm: all 1 iSCSI sessions are down",
    );
}

#[test]
fn with_no_gate_turning_the_restart_runs_under_the_lease() {
    let (mut f, _, local, t0) = lease_wait(|_| {});
    f.engine.tick(&stack_down(&f), t0);
    assert_eq!(plans(&f, is_restart), 1, "{:?}", audit_of(&f, "o2cb_down"));
    // The grant ended with the action's thread.
    assert!(local.held().is_empty());
}

#[test]
fn the_release_after_unhealthy_nodes_restarts_only_the_disruptive_targets_for() {
    // `for` 10 s for the unstacks and the re-login; a 20 s hold-down.
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        tune(c);
        c.remediation.storm_hold_down = Some(Duration::from_secs(20));
        for name in ["duplicate_mount_layers", "iscsi_session_failed"] {
            c.remediation.rules.get_mut(name).unwrap().r#for = Some(Duration::from_secs(10));
        }
    });
    let t0 = Instant::now();
    let reports = peers_said(trouble("o2cb_down/labclu"), trouble("o2cb_down/labclu"), t0);
    f.engine.set_peer_reports(Arc::clone(&reports));
    let idle = |at: Instant| {
        reports.record(
            1,
            &[member(2), member(3)],
            &[Ok(NodeState::default()), Ok(NodeState::default())],
            at,
        )
    };
    f.set_mountinfo("20 1 0:50 / /srv/a rw,relatime - tmpfs tmpfs rw\n");
    f.engine.tick(&online(&f, &[1, 2, 3]), t0);
    // The peers recover at 1 s: the hold-down runs to 20 s.
    for s in [1, 10] {
        idle(at(t0, s));
        f.engine.tick(&online(&f, &[1, 2, 3]), at(t0, s));
    }
    assert_eq!(plans(&f, is_relogin), 0, "held down");
    // A duplicate layer appears at 15 s: due at 25 s.
    f.set_mountinfo(engine_fixture::TABLE);
    idle(at(t0, 15));
    f.engine.tick(&online(&f, &[1, 2, 3]), at(t0, 15));
    // The hold-down ends at 20 s: the re-login's `for` starts again there;
    // the unstacks keep theirs.
    for s in [20, 25] {
        idle(at(t0, s));
        f.engine.tick(&online(&f, &[1, 2, 3]), at(t0, s));
    }
    assert_eq!(plans(&f, is_unstack), 3, "unstacked at 25 s");
    assert_eq!(
        plans(&f, is_relogin),
        0,
        "the re-login waits its `for` from 20 s"
    );
    idle(at(t0, 30));
    f.engine.tick(&online(&f, &[1, 2, 3]), at(t0, 30));
    assert_eq!(
        plans(&f, is_relogin),
        1,
        "{:?}",
        audit_of(&f, "iscsi_session_failed")
    );
}
