//! `o2cb_down` on a failed global heartbeat region fails closed (issue #12
//! item 4): no restart plan unless only this node lost the region, and the
//! finding says why; even then the engine restarts only while it holds the
//! cluster lease. The facts are the collectors' own structs as the lab's three-
//! region global heartbeat pair fills them (tests/lab `global_region_loss`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ocfs2_watchdog::actions::audit::AuditRecord;
use ocfs2_watchdog::actions::{Executor, Outcome, Plan};
use ocfs2_watchdog::cluster::lease::consensus::NodeState;
use ocfs2_watchdog::cluster::lease::dlmfs::{DlmError, HeldLock, LockSpace};
use ocfs2_watchdog::cluster::lease::{Lease, LocalState, Member, PeerAsker};
use ocfs2_watchdog::collector::configfs::{ClusterConfig, HeartbeatMode, NodeConfig};
use ocfs2_watchdog::collector::heartbeat::{HeartbeatFacts, RegionHeartbeat};
use ocfs2_watchdog::collector::heartbeat_disk::{NodeView, TrackerState};
use ocfs2_watchdog::collector::mounts::mountinfo::MountEntry;
use ocfs2_watchdog::collector::mounts::{Expected, ExpectedOrigin, MountFacts, MountPoint};
use ocfs2_watchdog::collector::o2cb::O2cbFacts;
use ocfs2_watchdog::collector::Facts;
use ocfs2_watchdog::config::{Config, StateDir};
use ocfs2_watchdog::rules::config::{Mode, RuleConfig};
use ocfs2_watchdog::rules::control::Control;
use ocfs2_watchdog::rules::o2cb_region::{classify, RegionLoss};
use ocfs2_watchdog::rules::{Engine, Finding, RULES};
use ocfs2_watchdog::snapshot::Snapshot;

const REGIONS: [&str; 3] = [
    "60DCA4CC1C5B4048B42B793197783EF8",
    "5463774C65E14ADC9DD4E83B56214226",
    "EB11AF6A311341CABA40C6C42FBCC12E",
];

fn view(active: bool) -> NodeView {
    NodeView {
        configured: true,
        seq: 100,
        generation: 7,
        dead_ms: 14000,
        seq_since: SystemTime::now(),
        change_seen: true,
        seq_age_seconds: if active { 1.0 } else { 30.0 },
        checksum_failures: 0,
        active,
    }
}

/// This node is n1; `fresh[n]` says whether peer n's slot on the failed
/// region (num 1) is fresh as n1 reads it; `None` = slots not read.
fn heartbeat(failed: &[u8], fresh: Option<&[(u8, bool)]>) -> HeartbeatFacts {
    let regions = REGIONS
        .iter()
        .enumerate()
        .map(|(num, uuid)| {
            let disk = match (num, fresh) {
                (_, None) => None,
                (1, Some(peers)) => Some(TrackerState {
                    observed_at: Some(SystemTime::now()),
                    nodes: [(1, view(false))]
                        .into_iter()
                        .chain(peers.iter().map(|(n, a)| (*n, view(*a))))
                        .collect::<BTreeMap<_, _>>(),
                    read_errors: 0,
                    last_read_failed: false,
                }),
                (_, Some(_)) => Some(TrackerState {
                    observed_at: Some(SystemTime::now()),
                    nodes: (1..=3).map(|n| (n, view(true))).collect(),
                    read_errors: 0,
                    last_read_failed: false,
                }),
            };
            RegionHeartbeat {
                uuid: uuid.to_string(),
                device: format!("/dev/sd{}", (b'a' + num as u8) as char),
                num: num as u32,
                live: (1..=3).collect(),
                disk,
                ..RegionHeartbeat::default()
            }
        })
        .collect();
    HeartbeatFacts {
        cluster: "labclu".into(),
        mode: Some(HeartbeatMode::Global),
        timeout_seconds: Some(12),
        configured: (1..=3).collect(),
        live_any: (1..=3).collect(),
        regions,
        live_regions: (0..3).filter(|n| !failed.contains(n)).collect(),
        quorum_regions: (0..3).collect(),
        failed_regions: failed.iter().copied().collect(),
    }
}

fn o2cb(online: bool) -> O2cbFacts {
    let node = |num: u8| NodeConfig {
        name: format!("n{num}"),
        num: Some(num),
        address: None,
        port: Some(7777),
        local: Some(num == 1),
    };
    O2cbFacts {
        cluster_name: "labclu".into(),
        cluster: online.then(|| ClusterConfig {
            name: "labclu".into(),
            heartbeat_mode: Some(HeartbeatMode::Global),
            nodes: (1..=3).map(node).collect(),
            ..ClusterConfig::default()
        }),
        online,
        ..O2cbFacts::default()
    }
}

/// /mnt/ocfs2 expected; mounted unless `missing`.
fn mounts(missing: bool) -> MountFacts {
    let top = MountEntry {
        id: 40,
        parent: 1,
        major: 254,
        minor: 0,
        root: "/".into(),
        mount_point: "/mnt/ocfs2".into(),
        mount_options: "rw,relatime".into(),
        optional: Vec::new(),
        fstype: "ocfs2".into(),
        source: "/dev/vda".into(),
        super_options: "rw,_netdev,heartbeat=global".into(),
    };
    MountFacts {
        mounts: vec![MountPoint {
            mountpoint: "/mnt/ocfs2".into(),
            stacked: usize::from(!missing),
            duplicate_layers: 0,
            shadowed: false,
            top: (!missing).then_some(top),
            top_id: (!missing).then_some(40),
            shared: false,
            uuid: String::new(),
            last_uuid: String::new(),
            detailed: true,
            label: "labvol".into(),
            readonly: false,
            error_readonly: false,
            device_missing: false,
            mountpoint_deleted: false,
            expected: Some(Expected {
                source: "/dev/vda".into(),
                fstype: "ocfs2".into(),
                options: "_netdev".into(),
                origin: ExpectedOrigin::Config,
            }),
            unstable_device_name: None,
            probe: Default::default(),
        }],
        ..MountFacts::default()
    }
}

fn snapshot(heartbeat: HeartbeatFacts, o2cb: O2cbFacts, mounts: MountFacts) -> Snapshot {
    let mut snapshot = Snapshot::empty();
    for (name, facts) in [
        ("heartbeat", Facts::Heartbeat(Arc::new(heartbeat))),
        ("o2cb", Facts::O2cb(Arc::new(o2cb))),
        ("mounts", Facts::Mounts(Arc::new(mounts))),
    ] {
        snapshot.insert_facts(name, facts);
    }
    snapshot
}

fn o2cb_down(snapshot: &Snapshot) -> Vec<Finding> {
    let rule = RULES
        .iter()
        .find(|r| r.name() == "o2cb_down")
        .expect("o2cb_down is a rule");
    rule.evaluate(snapshot, &Config::default())
}

#[test]
fn a_region_failed_for_every_node_is_alert_only() {
    // The SAN lost the LUN: n1 reads both peers stale on region 1. This is
    // the case that restarted o2cb on every node at once before.
    let hb = heartbeat(&[1], Some(&[(2, false), (3, false)]));
    let findings = o2cb_down(&snapshot(hb, o2cb(true), mounts(false)));
    assert_eq!(findings.len(), 1);
    let finding = &findings[0];
    assert_eq!(finding.target, "labclu");
    assert_eq!(finding.plan, None);
    assert!(
        finding.evidence.starts_with("1 heartbeat regions failed; alert only: region 5463774C65E14ADC9DD4E83B56214226 is stale on disk for live peer(s) 2, 3 too"),
        "{}",
        finding.evidence
    );
}

#[test]
fn only_this_node_lost_the_region_plans_a_restart_under_the_lease() {
    let hb = heartbeat(&[1], Some(&[(2, true), (3, true)]));
    assert_eq!(
        classify(&hb, Some(1)),
        Some(RegionLoss::OnlyThisNode {
            regions: vec![REGIONS[1].to_string()]
        })
    );
    let findings = o2cb_down(&snapshot(hb, o2cb(true), mounts(false)));
    assert!(
        matches!(findings[0].plan, Some(Plan::RestartO2cb { .. })),
        "{:?}",
        findings[0]
    );
    assert!(
        findings[0]
            .evidence
            .contains("only this node lost region 5463774C65E14ADC9DD4E83B56214226")
            && findings[0]
                .evidence
                .contains("restart under the cluster lease"),
        "{}",
        findings[0].evidence
    );
}

#[test]
fn one_stale_peer_is_enough_to_hold() {
    let hb = heartbeat(&[1], Some(&[(2, true), (3, false)]));
    match classify(&hb, Some(1)) {
        Some(RegionLoss::NotOnlyThisNode { stale_peers, .. }) => {
            assert_eq!(stale_peers.into_iter().collect::<Vec<_>>(), vec![3]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_peer_never_seen_on_the_region_counts_as_stale() {
    // n3 is live in another region but has no slot reading on region 1.
    let hb = heartbeat(&[1], Some(&[(2, true)]));
    match classify(&hb, Some(1)) {
        Some(RegionLoss::NotOnlyThisNode { stale_peers, .. }) => {
            assert_eq!(stale_peers.into_iter().collect::<Vec<_>>(), vec![3]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_region_this_node_cannot_read_is_alert_only() {
    // What the lab's global_region_loss shows: n2's path to the region's
    // disk is offline, so its reads fail (ENXIO) as its writes did.
    let mut hb = heartbeat(&[1], Some(&[(2, false), (3, false)]));
    if let Some(disk) = hb.regions[1].disk.as_mut() {
        disk.read_errors = 5;
        disk.last_read_failed = true;
    }
    assert_eq!(
        classify(&hb, Some(1)),
        Some(RegionLoss::Unreadable {
            regions: vec![REGIONS[1].to_string()]
        })
    );
    let findings = o2cb_down(&snapshot(hb, o2cb(true), mounts(false)));
    assert_eq!(findings[0].plan, None);
    assert!(
        findings[0]
            .evidence
            .contains("this node cannot read region 5463774C65E14ADC9DD4E83B56214226"),
        "{}",
        findings[0].evidence
    );
}

#[test]
fn unread_slots_or_an_unknown_region_number_fail_closed() {
    let unread = heartbeat(&[1], None);
    assert!(matches!(
        classify(&unread, Some(1)),
        Some(RegionLoss::Unknown { .. })
    ));
    let findings = o2cb_down(&snapshot(unread, o2cb(true), mounts(false)));
    assert_eq!(findings[0].plan, None);
    assert!(findings[0].evidence.contains("heartbeat.read_disk"));

    let stray = heartbeat(&[9], Some(&[(2, true), (3, true)]));
    match classify(&stray, Some(1)) {
        Some(RegionLoss::Unknown { regions, why }) => {
            assert_eq!(regions, vec!["#9".to_string()]);
            assert!(why.contains("number 9"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    let no_local = heartbeat(&[1], Some(&[(2, true), (3, true)]));
    assert!(matches!(
        classify(&no_local, None),
        Some(RegionLoss::Unknown { .. })
    ));
}

#[test]
fn without_a_mounted_volume_a_failed_region_still_restarts_nothing() {
    // Before: no volumes meant "nothing to lose", and a restart was planned
    // for a region the whole cluster lost.
    let hb = heartbeat(&[1], Some(&[(2, false), (3, false)]));
    let mut none = mounts(false);
    none.mounts.clear();
    let findings = o2cb_down(&snapshot(hb, o2cb(true), none));
    assert_eq!(findings[0].plan, None);
    assert!(
        findings[0]
            .evidence
            .starts_with("1 heartbeat regions failed; alert only:"),
        "{}",
        findings[0].evidence
    );
}

#[test]
fn healthy_regions_raise_nothing_and_an_offline_stack_still_restarts() {
    let healthy = heartbeat(&[], Some(&[(2, true), (3, true)]));
    assert_eq!(classify(&healthy, Some(1)), None);
    assert!(o2cb_down(&snapshot(healthy, o2cb(true), mounts(false))).is_empty());
    // o2cb offline (the unrelated half of the rule) keeps its restart.
    let mut offline = heartbeat(&[], None);
    offline.live_any = (1..=3).collect();
    let findings = o2cb_down(&snapshot(offline, o2cb(false), mounts(true)));
    assert_eq!(findings.len(), 1);
    assert!(
        matches!(findings[0].plan, Some(Plan::RestartO2cb { .. })),
        "{:?}",
        findings[0]
    );
}

struct Recorder(Arc<Mutex<Vec<Plan>>>);

impl Executor for Recorder {
    fn mode(&self) -> Mode {
        Mode::Enforce
    }
    fn execute(&self, plan: &Plan) -> Outcome {
        self.0.lock().unwrap().push(plan.clone());
        Outcome::Success("restarted".into())
    }
}

/// An enforcing engine acting on `o2cb_down` after 2 s, recording what it
/// executes.
fn enforcing_engine(
    dir: &Path,
    adjust: impl FnOnce(&mut Config),
) -> (Engine, Arc<Config>, Arc<Mutex<Vec<Plan>>>) {
    let mut config = Config {
        state_dir: StateDir(dir.join("state")),
        ..Config::default()
    };
    config.remediation.mode = Mode::Enforce;
    config.remediation.rules.insert(
        "o2cb_down".into(),
        RuleConfig {
            r#for: Some(Duration::from_secs(2)),
            ..RuleConfig::default()
        },
    );
    adjust(&mut config);
    let config = Arc::new(config);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let control = Arc::new(Control::new(&config.state_dir.0, None));
    let engine = Engine::new(
        Arc::clone(&config),
        Box::new(Recorder(Arc::clone(&calls))),
        control,
    );
    (engine, config, calls)
}

#[test]
fn the_engine_enforcing_audits_alert_only_and_executes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut engine, config, calls) = enforcing_engine(dir.path(), |_| {});
    // Every node sees the same failed region: the whole-cluster outage case.
    let snapshot = snapshot(
        heartbeat(&[1], Some(&[(2, false), (3, false)])),
        o2cb(true),
        mounts(false),
    );
    let t0 = Instant::now();
    let mut report = engine.tick(&snapshot, t0);
    for tick in 1..=10 {
        report = engine.tick(&snapshot, t0 + Duration::from_secs(tick * 3));
    }
    assert!(
        calls.lock().unwrap().is_empty(),
        "an o2cb restart was executed"
    );
    let target = report
        .targets
        .iter()
        .find(|t| t.rule == "o2cb_down")
        .expect("o2cb_down target in the report");
    assert_eq!(target.state, "firing");
    assert!(target.alert_only);
    assert_eq!(target.action, None);
    assert!(report.actions.iter().all(|(rule, ..)| *rule != "o2cb_down"));
    let audit: Vec<AuditRecord> = std::fs::read_to_string(config.state_dir.0.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes: Vec<&str> = audit
        .iter()
        .filter(|r| r.rule == "o2cb_down")
        .map(|r| r.outcome.as_str())
        .collect();
    assert_eq!(outcomes, vec!["alert_only"]);
    assert!(audit[0]
        .evidence
        .contains("stale on disk for live peer(s) 2, 3"));
}

/// A DLM whose every slot is free (the restart goes by the peers anyway).
struct FreeDlm;

impl LockSpace for FreeDlm {
    fn try_slot(&self, _slot: u32) -> Result<Option<HeldLock>, DlmError> {
        Ok(Some(Box::new(())))
    }
}

/// Peers n2 and n3 answering `states` (an `Err` is a peer that does not
/// answer).
struct ScriptedPeers(Vec<Result<NodeState, String>>);

impl PeerAsker for ScriptedPeers {
    fn has_token(&self) -> bool {
        true
    }
    fn members(&self) -> Result<(u8, Vec<Member>), String> {
        Ok((
            1,
            (2..=3)
                .map(|n| Member {
                    node: format!("n{n}"),
                    node_num: n,
                    address: format!("10.0.0.{n}:9786"),
                })
                .collect(),
        ))
    }
    fn ask_states(&self, _members: &[Member]) -> Vec<Result<NodeState, String>> {
        self.0.clone()
    }
}

/// Runs the enforcing engine with a lease over `hb` for a while; the
/// executed plans and the `o2cb_down` audit outcomes.
fn run_with_lease(
    hb: HeartbeatFacts,
    peers: Vec<Result<NodeState, String>>,
) -> (Vec<Plan>, Vec<AuditRecord>) {
    let dir = tempfile::tempdir().unwrap();
    let (mut engine, config, calls) = enforcing_engine(dir.path(), |config| {
        config.remediation.startup_grace = Duration::ZERO;
        config.remediation.max_unhealthy_nodes = Some(3);
    });
    let lease = Lease::new(
        1,
        Duration::from_secs(2),
        Box::new(FreeDlm),
        Arc::new(ScriptedPeers(peers)),
        LocalState::new("n1"),
    )
    .with_sleep(|_| {});
    engine.set_lease(Arc::new(lease));
    let snapshot = snapshot(hb, o2cb(true), mounts(false));
    let t0 = Instant::now();
    for tick in 0..=4 {
        engine.tick(&snapshot, t0 + Duration::from_secs(tick * 3));
    }
    let audit = std::fs::read_to_string(config.state_dir.0.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<AuditRecord>(l).unwrap())
        .filter(|r| r.rule == "o2cb_down")
        .collect();
    let plans = calls.lock().unwrap().clone();
    (plans, audit)
}

fn idle_peer() -> Result<NodeState, String> {
    Ok(NodeState::default())
}

#[test]
fn only_this_node_lost_the_region_and_the_lease_is_held_restarts() {
    let hb = heartbeat(&[1], Some(&[(2, true), (3, true)]));
    let (plans, audit) = run_with_lease(hb, vec![idle_peer(), idle_peer()]);
    assert_eq!(plans.len(), 1, "{audit:?}");
    assert!(matches!(plans[0], Plan::RestartO2cb { .. }));
    let outcomes: Vec<&str> = audit.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        vec!["started", "success", "skipped_cooldown"],
        "{audit:?}"
    );
}

#[test]
fn only_this_node_lost_the_region_but_the_lease_is_busy_or_a_peer_silent_waits() {
    let hb = heartbeat(&[1], Some(&[(2, true), (3, true)]));
    let holder = Ok(NodeState {
        holds_lease: true,
        lease_route: Some("peers".into()),
        acting: true,
        ..NodeState::default()
    });
    let (plans, audit) = run_with_lease(hb.clone(), vec![holder, idle_peer()]);
    assert!(plans.is_empty(), "restarted while n2 held the lease");
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].outcome.as_str(), "skipped_lease");
    let detail = audit[0].detail.as_deref().unwrap_or("");
    assert!(
        detail.starts_with("lease busy by peers: held by n2 (node 2)"),
        "{detail}"
    );

    let (plans, audit) = run_with_lease(hb, vec![idle_peer(), Err("timed out".into())]);
    assert!(plans.is_empty(), "restarted while n3 did not answer");
    assert_eq!(audit[0].outcome.as_str(), "skipped_lease");
    let detail = audit[0].detail.as_deref().unwrap_or("");
    assert!(
        detail.contains("peers_unreachable")
            && detail.contains("n3 (node 3) is live on the heartbeat disk"),
        "{detail}"
    );
}

#[test]
fn a_region_lost_by_others_too_stays_alert_only_even_with_the_lease_free() {
    let hb = heartbeat(&[1], Some(&[(2, false), (3, true)]));
    let (plans, audit) = run_with_lease(hb, vec![idle_peer(), idle_peer()]);
    assert!(plans.is_empty());
    let outcomes: Vec<&str> = audit.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["alert_only"]);
}
