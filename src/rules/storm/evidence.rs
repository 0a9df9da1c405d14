//! What brakes destructive actions besides storm signals: evidence that is
//! missing (a failed, stale or timed-out collector the brake reads, a stuck
//! mount probe on the target, heartbeat-disk reads failing), a network
//! partition, and too many unhealthy nodes (the NHC-style gate). Unknown
//! counts as "brake": a collector that cannot say whether the SAN is fine
//! does not get to say that it is.

use crate::actions::Plan;
use crate::collector::nodemap::NodeSet;
use crate::rules::config::RemediationConfig;
use crate::snapshot::Snapshot;

use super::{BrakeReason, Engaged};

/// Collectors whose facts the brake reads. A collector that is not in the
/// snapshot was turned off by the operator; one whose source does not
/// exist on this host reports success with `absent` and is fine.
const BRAKE_SOURCES: &[&str] = &["heartbeat", "iscsi", "storage", "kernel_log"];

/// Actions that take volumes away or disturb other nodes: held on missing
/// evidence, unhealthy nodes and the hold-down.
pub fn is_destructive(plan: &Plan) -> bool {
    plan.action().destructive()
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

/// Nodes showing a disruptive problem in this node's view: this node when
/// `local_trouble`; a configured peer not live on the heartbeat disk (when
/// it could be read) or, with the stack up, not live in the kernel's
/// heartbeat; a node in a DLM domain's recovery or missing from a domain;
/// a peer that reported a firing disruptive finding over the peer protocol
/// (`reported`). A peer this node knows nothing about is not counted.
pub fn unhealthy_nodes(snapshot: &Snapshot, local_trouble: bool, reported: &NodeSet) -> NodeSet {
    let local = local_node(snapshot);
    let mut unhealthy = NodeSet::new();
    if local_trouble {
        unhealthy.extend(local);
    }
    unhealthy.extend(reported.iter().copied().filter(|n| Some(*n) != local));
    if let Some(heartbeat) = snapshot.heartbeat() {
        let disk_read = heartbeat
            .regions
            .iter()
            .any(|r| r.disk.as_ref().is_some_and(|d| !d.last_read_failed));
        let on_disk = live_on_disk(snapshot);
        let stack_up = snapshot.o2cb().is_some_and(|o| o.online) && !heartbeat.regions.is_empty();
        for node in heartbeat.configured.iter().filter(|n| Some(**n) != local) {
            if (disk_read && !on_disk.contains(node))
                || (!disk_read && stack_up && !heartbeat.live_any.contains(node))
            {
                unhealthy.insert(*node);
            }
        }
    }
    if let Some(dlm) = snapshot.dlm() {
        for domain in &dlm.domains {
            unhealthy.extend(domain.state.recovery_map.iter().copied());
            unhealthy.extend(domain.missing_from_domain.iter().copied());
            unhealthy.extend(domain.state.dead_node);
        }
    }
    unhealthy
}

/// The NHC-style gate: more than `max_unhealthy_nodes` (default half the
/// configured nodes, at least 1) unhealthy: act nowhere.
pub(super) fn too_many_unhealthy(
    snapshot: &Snapshot,
    config: &RemediationConfig,
    local_trouble: bool,
    reported: &NodeSet,
) -> Option<Engaged> {
    let configured = snapshot.heartbeat().map_or(0, |h| h.configured.len());
    if configured == 0 {
        return None;
    }
    let max = config
        .max_unhealthy_nodes
        .map_or((configured / 2).max(1), |m| m as usize);
    let unhealthy = unhealthy_nodes(snapshot, local_trouble, reported);
    (unhealthy.len() > max).then(|| {
        let nodes: Vec<String> = unhealthy.iter().map(u8::to_string).collect();
        Engaged::new(
            BrakeReason::UnhealthyNodes,
            format!(
                "{} of {configured} nodes unhealthy (max {max}): {}",
                unhealthy.len(),
                nodes.join(", ")
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

    use super::*;
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

    #[test]
    fn peers_reporting_a_disruptive_finding_count_as_unhealthy() {
        let snapshot = healthy_cluster();
        assert!(unhealthy_nodes(&snapshot, false, &NodeSet::new()).is_empty());
        let reported: NodeSet = [1, 3].into_iter().collect();
        // This node's own report is its local trouble, not a peer's.
        assert_eq!(
            unhealthy_nodes(&snapshot, false, &reported),
            [3].into_iter().collect()
        );
        let config = RemediationConfig::default();
        assert!(too_many_unhealthy(&snapshot, &config, false, &reported).is_none());
        let engaged = too_many_unhealthy(&snapshot, &config, true, &reported)
            .expect("2 of 3 unhealthy is more than half");
        assert!(
            engaged
                .describe()
                .contains("2 of 3 nodes unhealthy (max 1): 1, 3"),
            "{}",
            engaged.describe()
        );
    }
}
