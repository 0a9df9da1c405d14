//! The storm brake fails closed: missing evidence, a stuck
//! probe on the target, unreadable heartbeat disks and a network partition
//! hold destructive actions (too many unhealthy nodes and unknown peers,
//! only disruptive ones: tests/gate_decisions.rs); a hold-down follows
//! the last storm evidence, and when the brake releases every target waits
//! its `for` again. Fixture engine of tests/engine_fixture.

mod engine_fixture;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_fixture::{count, fixture, with_section, Fixture};
use ocfs2_watchdog::actions::Outcome;
use ocfs2_watchdog::collector::configfs::{ClusterConfig, NodeConfig};
use ocfs2_watchdog::collector::heartbeat::{HeartbeatFacts, RegionHeartbeat};
use ocfs2_watchdog::collector::heartbeat_disk::TrackerState;
use ocfs2_watchdog::collector::mounts::MountFacts;
use ocfs2_watchdog::collector::net::NetFacts;
use ocfs2_watchdog::collector::o2cb::O2cbFacts;
use ocfs2_watchdog::collector::ErrorKind;
use ocfs2_watchdog::collector::Facts;
use ocfs2_watchdog::rules::storm::jitter_fraction;
use ocfs2_watchdog::snapshot::Snapshot;

fn at(t0: Instant, seconds: u64) -> Instant {
    t0 + Duration::from_secs(seconds)
}

/// `for = 10s` on the fixture's duplicate layers (unstack: destructive).
fn brake_fixture(tune: impl FnOnce(&mut ocfs2_watchdog::config::Config)) -> Fixture {
    fixture(Outcome::Success("done".into()), |c| {
        c.remediation.actions_per_hour = 100;
        let rule = c
            .remediation
            .rules
            .get_mut("duplicate_mount_layers")
            .unwrap();
        rule.actions_per_hour = Some(100);
        tune(c);
    })
}

fn fail_collector(snapshot: &mut Snapshot, name: &str, stale: bool) {
    let (report, _) = snapshot.collectors.get_mut(name).expect("collector ran");
    if stale {
        report.stale = true;
    } else {
        report.success = false;
        report.error_kind = Some(ErrorKind::Timeout);
        report.error = Some("deadline passed".into());
    }
}

fn reasons(f: &Fixture) -> Vec<String> {
    f.audit()
        .into_iter()
        .filter(|r| r.outcome.as_str() == "skipped_storm")
        .filter_map(|r| r.detail)
        .collect()
}

#[test]
fn a_failed_or_stale_collector_brakes_destructive_actions_until_it_reads_again() {
    for (collector, stale) in [("heartbeat", false), ("iscsi", true), ("storage", false)] {
        let mut f = brake_fixture(|_| {});
        let mut snapshot = f.snapshot();
        fail_collector(&mut snapshot, collector, stale);
        let t0 = Instant::now();
        f.engine.tick(&snapshot, t0);
        let report = f.engine.tick(&snapshot, at(t0, 10));
        assert_eq!(f.calls(), 0, "{collector}: no unstack without evidence");
        assert_eq!(count(&report, "skipped_storm"), 3, "{collector}");
        assert_eq!(report.storm_brake_reasons, ["missing_evidence"]);
        let why = reasons(&f);
        assert!(
            why.iter()
                .all(|d| d.starts_with("missing_evidence: ") && d.contains(collector)),
            "{why:?}"
        );
        // Evidence back: no hold-down for missing evidence and no fresh
        // `for` (a collector slow now and then must not starve the rules).
        let report = f.engine.tick(&f.snapshot(), at(t0, 11));
        assert_eq!(report.storm_brake, None);
        assert_eq!(f.calls(), 3, "{collector}");
    }
}

#[test]
fn a_stuck_probe_brakes_only_its_own_volume() {
    let mut f = brake_fixture(|_| {});
    let mut snapshot = f.snapshot();
    let mut mounts: MountFacts = snapshot.mounts().unwrap().clone();
    for m in mounts
        .mounts
        .iter_mut()
        .filter(|m| m.mountpoint == "/srv/b")
    {
        m.probe.stuck = true;
    }
    with_section(&mut snapshot, "mounts", Facts::Mounts(Arc::new(mounts)));
    let t0 = Instant::now();
    f.engine.tick(&snapshot, t0);
    f.engine.tick(&snapshot, at(t0, 10));
    assert_eq!(f.calls(), 2, "/srv/a and /srv/c");
    assert_eq!(f.outcomes("/srv/b"), ["skipped_storm"]);
    assert!(reasons(&f)[0].contains("mount probe on /srv/b is stuck"));
}

fn cluster(local: u8, nodes: &[u8]) -> O2cbFacts {
    O2cbFacts {
        cluster_name: "labclu".into(),
        online: true,
        cluster: Some(ClusterConfig {
            name: "labclu".into(),
            nodes: nodes
                .iter()
                .map(|n| NodeConfig {
                    name: format!("n{n}"),
                    num: Some(*n),
                    local: Some(*n == local),
                    ..NodeConfig::default()
                })
                .collect(),
            ..ClusterConfig::default()
        }),
        ..O2cbFacts::default()
    }
}

fn heartbeat(configured: &[u8], live: &[u8], disk: Option<TrackerState>) -> HeartbeatFacts {
    HeartbeatFacts {
        cluster: "labclu".into(),
        timeout_seconds: Some(20),
        configured: configured.iter().copied().collect(),
        live_any: live.iter().copied().collect(),
        regions: vec![RegionHeartbeat {
            uuid: "DEA93192F0874F53BB5290B5205C6B64".into(),
            ratio: Some(0.1),
            live: live.iter().copied().collect(),
            disk,
            ..RegionHeartbeat::default()
        }],
        ..HeartbeatFacts::default()
    }
}

fn with_cluster(snapshot: &mut Snapshot, o2cb: O2cbFacts, hb: HeartbeatFacts, connected: &[u8]) {
    with_section(snapshot, "o2cb", Facts::O2cb(Arc::new(o2cb)));
    with_section(snapshot, "heartbeat", Facts::Heartbeat(Arc::new(hb)));
    let net = NetFacts {
        connected: connected.iter().copied().collect(),
        idle_seconds: BTreeMap::new(),
    };
    with_section(snapshot, "net", Facts::Net(Arc::new(net)));
}

#[test]
fn unreadable_heartbeat_disk_brakes() {
    let mut f = brake_fixture(|_| {});
    let mut snapshot = f.snapshot();
    let disk = TrackerState {
        last_read_failed: true,
        read_errors: 3,
        ..TrackerState::default()
    };
    with_cluster(
        &mut snapshot,
        cluster(1, &[1, 2]),
        heartbeat(&[1, 2], &[1, 2], Some(disk)),
        &[2],
    );
    let t0 = Instant::now();
    f.engine.tick(&snapshot, t0);
    f.engine.tick(&snapshot, at(t0, 10));
    assert_eq!(f.calls(), 0);
    assert!(
        reasons(&f)[0].contains("heartbeat disk reads failing"),
        "{:?}",
        reasons(&f)
    );
}

/// No release jitter; two node snapshots: n2 live on the heartbeat but not
/// connected over o2net, and the same pair connected again.
fn partition_pair() -> (Fixture, Snapshot, Snapshot) {
    let f = brake_fixture(|c| {
        c.remediation.storm_release_jitter = Duration::ZERO;
    });
    let mut split = f.snapshot();
    with_cluster(
        &mut split,
        cluster(1, &[1, 2]),
        heartbeat(&[1, 2], &[1, 2], None),
        &[],
    );
    let mut healed = f.snapshot();
    with_cluster(
        &mut healed,
        cluster(1, &[1, 2]),
        heartbeat(&[1, 2], &[1, 2], None),
        &[2],
    );
    (f, split, healed)
}

/// A peer's clean heartbeat stop (its last unmount in local mode) shows for
/// one heartbeat interval as live but not connected: the brake holds that
/// tick, but no hold-down follows it. (Connected again on the next tick; a
/// peer that left cleanly is out of both views the same way.)
#[test]
fn a_partition_of_one_moment_starts_no_hold_down() {
    let (mut f, split, after) = partition_pair();
    let t0 = Instant::now();
    let report = f.engine.tick(&split, t0);
    assert_eq!(report.storm_brake_reasons, ["partition"]);
    let report = f.engine.tick(&after, at(t0, 2));
    assert!(
        report.storm_brake_reasons.is_empty(),
        "no hold-down after a 2 s partition: {:?}",
        report.storm_brake_reasons
    );
    assert_eq!(report.storm_hold_down_seconds, 0.0);
    // The release restarted every target's 10 s `for`.
    f.engine.tick(&after, at(t0, 11));
    assert_eq!(f.calls(), 0);
    let report = f.engine.tick(&after, at(t0, 12));
    assert_eq!(f.calls(), 3, "{:?}", report.storm_brake_reasons);
}

#[test]
fn a_partition_brakes_unmounts_then_holds_down_then_for_restarts() {
    let (mut f, split, healed) = partition_pair();
    let t0 = Instant::now();
    f.engine.tick(&split, t0);
    let report = f.engine.tick(&split, at(t0, 10));
    assert_eq!(f.calls(), 0);
    assert_eq!(report.storm_brake_reasons, ["partition"]);
    assert!(reasons(&f)[0].contains("node(s) 2 live on the heartbeat but not connected"));
    // Healed at 11 s: hold-down of 2 × the 20 s heartbeat timeout.
    let report = f.engine.tick(&healed, at(t0, 11));
    assert_eq!(f.calls(), 0);
    assert_eq!(report.storm_brake_reasons, ["hold_down"]);
    assert!(report.storm_hold_down_seconds > 38.0);
    f.engine.tick(&healed, at(t0, 50));
    assert_eq!(f.calls(), 0, "hold-down until 10 + 40 s");
    // Released at 51 s: every target waits its 10 s `for` again.
    let report = f.engine.tick(&healed, at(t0, 51));
    assert_eq!(f.calls(), 0, "the `for` starts again on release");
    assert!(report.targets.iter().all(|t| t.state == "pending"));
    f.engine.tick(&healed, at(t0, 61));
    assert_eq!(f.calls(), 3);
}

#[test]
fn release_jitter_is_a_fixed_share_per_node() {
    let shares: Vec<f64> = (1..=8).map(|n| jitter_fraction(Some(n), "")).collect();
    assert!(shares.iter().all(|s| (0.0..1.0).contains(s)), "{shares:?}");
    let mut distinct = shares.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), shares.len(), "{shares:?}");
    assert_eq!(jitter_fraction(Some(3), "a"), jitter_fraction(Some(3), "b"));
    assert_ne!(jitter_fraction(None, "n1"), jitter_fraction(None, "n2"));

    // Node 2's release waits its share of 100 s on top of `for`.
    let share = jitter_fraction(Some(2), "n2");
    let mut f = brake_fixture(|c| {
        c.remediation.storm_release_jitter = Duration::from_secs(100);
        c.remediation.storm_hold_down = Some(Duration::from_secs(5));
    });
    let mut split = f.snapshot();
    with_cluster(
        &mut split,
        cluster(2, &[1, 2]),
        heartbeat(&[1, 2], &[1, 2], None),
        &[],
    );
    let mut healed = f.snapshot();
    with_cluster(
        &mut healed,
        cluster(2, &[1, 2]),
        heartbeat(&[1, 2], &[1, 2], None),
        &[1],
    );
    let t0 = Instant::now();
    f.engine.tick(&split, t0);
    f.engine.tick(&healed, at(t0, 6));
    let ready = 6 + 10 + (100.0 * share).ceil() as u64;
    f.engine.tick(&healed, at(t0, ready - 2));
    assert_eq!(f.calls(), 0, "share {share}");
    f.engine.tick(&healed, at(t0, ready));
    assert_eq!(f.calls(), 3, "share {share}");
}

/// Dead peers are not trouble: powered off or evicted, they are no part of
/// the cluster this node's action could disturb (tests/gate_decisions.rs
/// has the peers' reports). With nothing reported, nothing is unhealthy.
#[test]
fn dead_peers_do_not_count_as_unhealthy() {
    let mut f = brake_fixture(|c| c.remediation.max_unhealthy_nodes = Some(0));
    let mut snapshot = f.snapshot();
    // Node 1 has the findings; 2 and 3 are not live in the kernel heartbeat.
    with_cluster(
        &mut snapshot,
        cluster(1, &[1, 2, 3]),
        heartbeat(&[1, 2, 3], &[1], None),
        &[],
    );
    let t0 = Instant::now();
    f.engine.tick(&snapshot, t0);
    let report = f.engine.tick(&snapshot, at(t0, 10));
    assert_eq!(f.calls(), 3);
    assert_eq!(report.unhealthy_nodes, 0);
    assert!(report.storm_brake_reasons.is_empty());
    let text = engine_fixture::snapshot_with(report)
        .rendered_text()
        .to_string();
    assert!(text.contains("ocfs2_watchdog_storm_brake_reason{reason=\"unhealthy_nodes\"} 0"));
    assert!(text.contains("ocfs2_watchdog_storm_brake_reason{reason=\"peer_unknown\"} 0"));
    assert!(text.contains("ocfs2_watchdog_unhealthy_nodes 0"));
}
