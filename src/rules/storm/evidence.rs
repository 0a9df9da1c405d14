//! What brakes destructive actions besides storm signals: evidence that is
//! missing (a failed, stale or timed-out collector the brake reads, a stuck
//! mount probe on the target, heartbeat-disk reads failing), a network
//! partition, too many unhealthy nodes (the NHC-style gate: only fresh,
//! not given-up findings of other live nodes count) and a live peer whose
//! report has aged. Unknown counts as "brake": a collector that cannot say
//! whether the SAN is fine does not get to say that it is, and a peer that
//! cannot say whether it is in trouble does not count as healthy.

use std::time::Duration;

use crate::actions::Plan;
use crate::cluster::lease::reports::{Heard, PeerStates};
use crate::collector::nodemap::NodeSet;
use crate::rules::config::RemediationConfig;
use crate::snapshot::Snapshot;

use super::{BrakeReason, Engaged};

/// Collectors whose facts the brake reads. A collector that is not in the
/// snapshot was turned off by the operator; one whose source does not
/// exist on this host reports success with `absent` and is fine.
const BRAKE_SOURCES: &[&str] = &["heartbeat", "iscsi", "storage", "kernel_log"];

/// Actions that take volumes away or disturb other nodes: held on missing
/// evidence and the hold-down.
pub fn is_destructive(plan: &Plan) -> bool {
    plan.action().destructive()
}

/// Actions that take something away from running work (o2cb restart,
/// iSCSI re-login, heartbeat kill): the only ones other nodes' trouble
/// holds (unhealthy nodes, an unknown peer, their hold-down). Local
/// healing (unstack, remount) never waits for another node.
pub fn is_disruptive(plan: &Plan) -> bool {
    plan.action().disruptive()
}

/// A partition brakes what unmounts or restarts the stack.
pub(super) fn partition_applies(plan: &Plan) -> bool {
    plan.action().held_by_partition()
}

pub(super) fn missing_collectors(snapshot: &Snapshot) -> Vec<Engaged> {
    BRAKE_SOURCES
        .iter()
        .filter_map(|name| {
            let (report, _) = snapshot.collectors.get(name)?;
            let why = if !report.success {
                let kind = report.error_kind.map_or("error", |k| k.as_str());
                format!(
                    "{name} collector failed ({kind}): {}",
                    report.error.as_deref().unwrap_or("no detail")
                )
            } else if report.stale {
                format!("{name} collector is stale (its last run has not finished)")
            } else {
                return None;
            };
            Some(Engaged::new(BrakeReason::MissingEvidence, why))
        })
        .collect()
}

pub(super) fn heartbeat_disk_unreadable(snapshot: &Snapshot) -> Option<Engaged> {
    let heartbeat = snapshot.heartbeat()?;
    let failing: Vec<&str> = heartbeat
        .regions
        .iter()
        .filter(|r| r.disk.as_ref().is_some_and(|d| d.last_read_failed))
        .map(|r| r.uuid.as_str())
        .collect();
    (!failing.is_empty()).then(|| {
        Engaged::new(
            BrakeReason::MissingEvidence,
            format!("heartbeat disk reads failing on {}", failing.join(", ")),
        )
    })
}

fn local_node(snapshot: &Snapshot) -> Option<u8> {
    snapshot.o2cb()?.cluster.as_ref()?.local_node()?.num
}

/// Nodes the on-disk heartbeat slots show writing, over every region read.
fn live_on_disk(snapshot: &Snapshot) -> NodeSet {
    disk_view(snapshot).unwrap_or_default()
}

/// Nodes the on-disk heartbeat slots show writing, over every region
/// read; `None` when no region's slots were read (nothing is known).
pub fn disk_view(snapshot: &Snapshot) -> Option<NodeSet> {
    let read: Vec<_> = snapshot
        .heartbeat()
        .into_iter()
        .flat_map(|h| h.regions.iter())
        .filter_map(|r| r.disk.as_ref())
        .filter(|d| !d.last_read_failed && d.observed_at.is_some())
        .collect();
    (!read.is_empty()).then(|| {
        read.iter()
            .flat_map(|d| d.nodes.iter().filter(|(_, v)| v.active).map(|(n, _)| *n))
            .collect()
    })
}

/// A peer the heartbeat (kernel or disk) shows live but o2net has no
/// connection to, while this node's stack is up and heartbeating: the
/// cluster is split, and the side that unmounts or restarts may be the one
/// the other fences.
pub(super) fn partition(snapshot: &Snapshot) -> Option<Engaged> {
    let o2cb = snapshot.o2cb()?;
    let heartbeat = snapshot.heartbeat()?;
    let net = snapshot.net()?;
    let local = local_node(snapshot)?;
    if !o2cb.online || !heartbeat.live_any.contains(&local) {
        return None;
    }
    let mut live: NodeSet = heartbeat.live_any.clone();
    live.extend(live_on_disk(snapshot));
    let cut: Vec<String> = live
        .iter()
        .filter(|n| **n != local && !net.connected.contains(n))
        .map(u8::to_string)
        .collect();
    (!cut.is_empty()).then(|| {
        Engaged::new(
            BrakeReason::Partition,
            format!(
                "node(s) {} live on the heartbeat but not connected over o2net",
                cut.join(", ")
            ),
        )
    })
}

/// Dead time assumed for a slot that advertises none: the kernel's default
/// dead_threshold 31 x 2000 ms (as the heartbeat-disk tracker assumes).
const DEFAULT_DEAD_MS: f64 = 62_000.0;

/// Whether a peer is part of the running cluster, from this snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    Live,
    /// Evicted by o2cb or powered off: why this snapshot says so.
    Gone(String),
    /// The snapshot cannot tell (this node's stack down, the disk not read
    /// or just after start): treated as live.
    Unknown,
}

/// A peer's presence: evicted in a DLM domain (in its recovery map, its
/// dead node, or missing from its map) is gone; with this node's stack up
/// and heartbeating, the kernel's o2hb live map decides, else the on-disk
/// slots do (dead: never written, cleanly stopped, or unchanged for the
/// dead time the node advertises; just after start a slot that has not
/// changed yet is unknown, not dead).
pub fn presence(snapshot: &Snapshot, node: u8) -> Presence {
    if let Some(dlm) = snapshot.dlm() {
        if let Some(domain) = dlm.domains.iter().find(|d| {
            d.state.recovery_map.contains(&node)
                || d.state.dead_node == Some(node)
                || d.missing_from_domain.contains(&node)
        }) {
            return Presence::Gone(format!("evicted from DLM domain {}", domain.state.domain));
        }
    }
    let Some(heartbeat) = snapshot.heartbeat() else {
        return Presence::Unknown;
    };
    let disk = disk_presence(snapshot, node);
    if disk == Some(true) {
        return Presence::Live;
    }
    let local = local_node(snapshot);
    let kernel_map = snapshot.o2cb().is_some_and(|o| o.online)
        && !heartbeat.regions.is_empty()
        && local.is_some_and(|l| heartbeat.live_any.contains(&l));
    if kernel_map {
        return if heartbeat.live_any.contains(&node) {
            Presence::Live
        } else {
            Presence::Gone("not in the o2hb live map".into())
        };
    }
    match disk {
        Some(false) => Presence::Gone("not live on the heartbeat disk".into()),
        _ => Presence::Unknown,
    }
}

/// `Some(true)`: active in a region read this tick; `Some(false)`: dead in
/// every region read; `None`: not read, or unknown in one.
fn disk_presence(snapshot: &Snapshot, node: u8) -> Option<bool> {
    let read: Vec<_> = snapshot
        .heartbeat()?
        .regions
        .iter()
        .filter_map(|r| r.disk.as_ref())
        .filter(|d| !d.last_read_failed && d.observed_at.is_some())
        .collect();
    if read.is_empty() {
        return None;
    }
    let views: Vec<_> = read.iter().map(|d| d.node(node)).collect();
    if views.iter().flatten().any(|v| v.active) {
        return Some(true);
    }
    views
        .iter()
        .all(|v| {
            v.is_some_and(|v| {
                let dead_ms = if v.dead_ms == 0 {
                    DEFAULT_DEAD_MS
                } else {
                    f64::from(v.dead_ms)
                };
                v.seq == 0 || v.generation == 0 || v.seq_age_seconds * 1000.0 >= dead_ms
            })
        })
        .then_some(false)
}

/// The peers as the unhealthy-nodes gate counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerHealth {
    /// Other nodes of the cluster (this node excluded), gone ones included.
    pub peers: usize,
    /// Live (or unknown) peers whose fresh report has a firing disruptive
    /// finding that is not given up.
    pub troubled: NodeSet,
    /// Live (or unknown) peers without a fresh report: `name (node N)`
    /// and why.
    pub unknown: Vec<String>,
}

/// The peers of this snapshot's cluster and of the last poll, this node
/// excluded (the acting node never counts against its own plan): nodes
/// gone from the cluster (`presence`) do not count; a fresh report with a
/// disruptive finding counts as trouble; a live peer without a fresh
/// report is unknown.
pub fn peer_health(snapshot: &Snapshot, reports: &PeerStates) -> PeerHealth {
    let local = local_node(snapshot).or(reports.local);
    let mut peers: NodeSet = reports.peers.keys().copied().collect();
    // Without this node's number the snapshot's list cannot leave it out:
    // only the poll's peers (cluster.conf without this node) are known.
    if let Some(local) = local {
        if let Some(heartbeat) = snapshot.heartbeat() {
            peers.extend(heartbeat.configured.iter().copied());
        }
        if let Some(cluster) = snapshot.o2cb().and_then(|o| o.cluster.as_ref()) {
            peers.extend(cluster.nodes.iter().filter_map(|n| n.num));
        }
        peers.remove(&local);
    }
    let mut health = PeerHealth {
        peers: peers.len(),
        ..PeerHealth::default()
    };
    for node in peers {
        if let Presence::Gone(_) = presence(snapshot, node) {
            continue;
        }
        match reports.heard(node) {
            Heard::Fresh(state) => {
                if !state.disruptive_findings.is_empty() {
                    health.troubled.insert(node);
                }
            }
            Heard::Stale { last, error } => {
                let mut why = match last {
                    Some((age, _)) => format!(
                        "last state report {} ago (max {})",
                        humantime::format_duration(Duration::from_secs(age.as_secs())),
                        humantime::format_duration(reports.max_age)
                    ),
                    None => "no state report received".to_string(),
                };
                if let Some(error) = error {
                    why.push_str(&format!(", last ask: {error}"));
                }
                health
                    .unknown
                    .push(format!("{}: {why}", reports.label(node)));
            }
        }
    }
    health
}

/// The NHC-style gate: more than `max_unhealthy_nodes` (default half the
/// cluster's nodes, at least 1) other live nodes report trouble: act
/// nowhere.
pub(super) fn too_many_unhealthy(
    config: &RemediationConfig,
    health: &PeerHealth,
) -> Option<Engaged> {
    let nodes = health.peers + 1;
    let max = config
        .max_unhealthy_nodes
        .map_or((nodes / 2).max(1), |m| m as usize);
    (health.troubled.len() > max).then(|| {
        let list: Vec<String> = health.troubled.iter().map(u8::to_string).collect();
        Engaged::new(
            BrakeReason::UnhealthyNodes,
            format!(
                "{} of {nodes} nodes unhealthy (max {max}, this node not counted): {}",
                health.troubled.len(),
                list.join(", ")
            ),
        )
    })
}

/// A live peer whose trouble is unknown (no fresh report) holds, failing
/// closed, rather than counting as healthy.
pub(super) fn peers_unknown(health: &PeerHealth) -> Option<Engaged> {
    (!health.unknown.is_empty()).then(|| {
        Engaged::new(
            BrakeReason::PeerUnknown,
            format!(
                "no fresh state from live peer(s): {}",
                health.unknown.join("; ")
            ),
        )
    })
}

/// Evidence about the plan's own volumes: a stuck mount probe on one of
/// them, or no fresh mount table to tell.
pub(super) fn target_evidence(snapshot: &Snapshot, plan: &Plan) -> Option<Engaged> {
    let mountpoints = plan.action().takes_down(plan)?;
    if !crate::rules::source_fresh(snapshot, "mounts") {
        return Some(Engaged::new(
            BrakeReason::MissingEvidence,
            "mounts collector failed or is stale",
        ));
    }
    let mounts = snapshot.mounts()?;
    mounts
        .mounts
        .iter()
        .find(|m| m.probe.stuck && mountpoints.contains(&m.mountpoint.as_str()))
        .map(|m| {
            Engaged::new(
                BrakeReason::MissingEvidence,
                format!("mount probe on {} is stuck", m.mountpoint),
            )
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use std::time::{Duration, Instant};

    use super::*;
    use crate::cluster::lease::consensus::NodeState;
    use crate::cluster::lease::reports::PeerReports;
    use crate::collector::configfs::{ClusterConfig, NodeConfig};
    use crate::collector::heartbeat::{HeartbeatFacts, RegionHeartbeat};
    use crate::collector::o2cb::O2cbFacts;
    use crate::collector::Facts;

    /// n1 of three, stack up, every node live in the kernel's heartbeat.
    fn healthy_cluster() -> Snapshot {
        let node = |num: u8| NodeConfig {
            name: format!("n{num}"),
            num: Some(num),
            local: Some(num == 1),
            ..NodeConfig::default()
        };
        let o2cb = O2cbFacts {
            cluster_name: "c".into(),
            cluster: Some(ClusterConfig {
                name: "c".into(),
                nodes: (1..=3).map(node).collect(),
                ..ClusterConfig::default()
            }),
            online: true,
            ..O2cbFacts::default()
        };
        let heartbeat = HeartbeatFacts {
            cluster: "c".into(),
            configured: (1..=3).collect(),
            live_any: (1..=3).collect(),
            regions: vec![RegionHeartbeat {
                uuid: "R".into(),
                live: (1..=3).collect(),
                ..RegionHeartbeat::default()
            }],
            ..HeartbeatFacts::default()
        };
        let mut snapshot = Snapshot::empty();
        snapshot.insert_facts("o2cb", Facts::O2cb(Arc::new(o2cb)));
        snapshot.insert_facts("heartbeat", Facts::Heartbeat(Arc::new(heartbeat)));
        snapshot
    }

    fn member(num: u8) -> crate::cluster::lease::Member {
        crate::cluster::lease::Member {
            node: format!("n{num}"),
            node_num: num,
            address: String::new(),
        }
    }

    fn trouble() -> NodeState {
        NodeState {
            disruptive_findings: vec!["o2cb_down/c".into()],
            ..NodeState::default()
        }
    }

    /// n2 and n3 answered `answers` at `t0`, read at `t0 + after`.
    fn reports(answers: [NodeState; 2], after: u64) -> PeerStates {
        let reports = PeerReports::new();
        let t0 = Instant::now();
        let answers = answers.map(Ok);
        reports.record(1, &[member(2), member(3)], &answers, t0);
        reports.read(t0 + Duration::from_secs(after), Duration::from_secs(17))
    }

    #[test]
    fn only_fresh_reports_of_other_live_nodes_count() {
        let snapshot = healthy_cluster();
        let config = RemediationConfig::default();
        let quiet = peer_health(&snapshot, &reports([NodeState::default(), trouble()], 0));
        assert_eq!(quiet.troubled, [3].into_iter().collect());
        assert_eq!(quiet.peers, 2, "this node is not its own peer");
        // One other node in trouble of three: 1 > 1 is false.
        assert!(too_many_unhealthy(&config, &quiet).is_none());
        let both = peer_health(&snapshot, &reports([trouble(), trouble()], 0));
        let engaged = too_many_unhealthy(&config, &both).expect("2 of 3 is more than 1");
        assert!(
            engaged
                .describe()
                .contains("2 of 3 nodes unhealthy (max 1, this node not counted): 2, 3"),
            "{}",
            engaged.describe()
        );
        assert!(peers_unknown(&both).is_none());
    }

    #[test]
    fn an_aged_report_of_a_live_peer_is_unknown_and_named() {
        let snapshot = healthy_cluster();
        let aged = peer_health(&snapshot, &reports([trouble(), NodeState::default()], 18));
        assert!(aged.troubled.is_empty(), "an aged report is not trouble");
        let engaged = peers_unknown(&aged).expect("unknown peers hold");
        assert_eq!(engaged.reason, BrakeReason::PeerUnknown);
        assert!(
            engaged.describe().starts_with(
                "peer_unknown: no fresh state from live peer(s): n2 (node 2): last state report 18s ago (max 17s)"
            ),
            "{}",
            engaged.describe()
        );
        // A configured peer never heard from is unknown too.
        let none = peer_health(&snapshot, &PeerStates::default());
        assert_eq!(none.unknown.len(), 2, "{:?}", none.unknown);
        assert!(none.unknown[0].contains("node 2: no state report received"));
    }

    #[test]
    fn evicted_or_powered_off_peers_do_not_count() {
        // n3 left the kernel's live map: its last report, fresh or aged,
        // counts for nothing.
        let mut snapshot = healthy_cluster();
        let mut heartbeat = snapshot.heartbeat().unwrap().clone();
        heartbeat.live_any.remove(&3);
        snapshot.insert_facts("heartbeat", Facts::Heartbeat(Arc::new(heartbeat)));
        assert_eq!(
            presence(&snapshot, 3),
            Presence::Gone("not in the o2hb live map".into())
        );
        let health = peer_health(&snapshot, &reports([trouble(), trouble()], 60));
        assert_eq!(health.unknown.len(), 1, "{:?}", health.unknown);
        assert!(health.unknown[0].starts_with("n2 (node 2)"));
        let health = peer_health(&snapshot, &reports([NodeState::default(), trouble()], 0));
        assert!(health.troubled.is_empty());

        // n2 in a DLM domain's recovery map: evicted.
        let mut snapshot = healthy_cluster();
        let mut domain = crate::collector::dlm::DlmState {
            domain: "D".into(),
            node: 1,
            ..Default::default()
        };
        domain.recovery_map.insert(2);
        let dlm = crate::collector::dlm::DlmFacts {
            domains: vec![crate::collector::dlm::compare_membership(
                domain,
                &NodeSet::new(),
                &NodeSet::new(),
            )],
        };
        snapshot.insert_facts("dlm", Facts::Dlm(Arc::new(dlm)));
        assert!(
            matches!(presence(&snapshot, 2), Presence::Gone(why) if why.contains("evicted from DLM domain D"))
        );
        let health = peer_health(&snapshot, &reports([trouble(), trouble()], 0));
        assert_eq!(health.troubled, [3].into_iter().collect());
    }

    #[test]
    fn the_disk_tells_dead_from_not_yet_known() {
        use crate::collector::heartbeat_disk::{NodeView, TrackerState};
        let view = |change_seen: bool, generation: u64, age: f64| NodeView {
            configured: true,
            seq: 5,
            generation,
            dead_ms: 62_000,
            seq_since: std::time::SystemTime::now(),
            change_seen,
            seq_age_seconds: age,
            checksum_failures: 0,
            active: change_seen && generation != 0 && age < 62.0,
        };
        // This node's stack is down: only the disk can tell.
        let with_disk = |peer: NodeView| {
            let mut snapshot = healthy_cluster();
            let mut heartbeat = snapshot.heartbeat().unwrap().clone();
            heartbeat.live_any.clear();
            heartbeat.regions[0].disk = Some(TrackerState {
                observed_at: Some(std::time::SystemTime::now()),
                nodes: [(2, peer)].into_iter().collect(),
                read_errors: 0,
                last_read_failed: false,
            });
            snapshot.insert_facts("heartbeat", Facts::Heartbeat(Arc::new(heartbeat)));
            presence(&snapshot, 2)
        };
        assert_eq!(with_disk(view(true, 7, 1.0)), Presence::Live);
        // Just after start: no change seen yet, not dead either.
        assert_eq!(with_disk(view(false, 7, 1.0)), Presence::Unknown);
        // Unchanged for the dead time, or cleanly stopped: powered off.
        assert!(matches!(with_disk(view(false, 7, 70.0)), Presence::Gone(_)));
        assert!(matches!(with_disk(view(true, 0, 1.0)), Presence::Gone(_)));
    }
}
