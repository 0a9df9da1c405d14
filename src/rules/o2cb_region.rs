//! When `o2cb_down` may restart o2cb for a failed global heartbeat region:
//! the decision half of the rule for that evidence, kept apart from how the
//! restart plan is built (`o2cb_down.rs`).
//!
//! Global heartbeat is designed to ride out fewer than half of its regions
//! failing (fs/ocfs2/cluster/heartbeat.c `o2hb_write_timeout`: the node
//! fences only when failed regions reach half of the quorum regions), and a
//! restart cannot fix a dead LUN. Worse, a LUN that failed for everybody
//! shows as a failed region on every node at once: restarting there is a
//! whole-cluster outage made by the watchdog. A restart can only help when
//! this node alone lost the region (every live peer still heartbeats on it,
//! as the on-disk slots this daemon reads show): only that verdict
//! (`OnlyThisNode`) keeps the plan, and the engine then runs it only while
//! holding the cluster lease (`cluster::lease`, peer route: the restart
//! takes the DLM domain away), so one node restarts at a time. Every other
//! verdict is alert-only, with its reason in the audit log and `/status`.

use std::collections::BTreeSet;

use crate::collector::heartbeat::HeartbeatFacts;

/// What the on-disk slots say about the failed regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionLoss {
    /// Every live peer's slot on every failed region is fresh: only this
    /// node lost them.
    OnlyThisNode { regions: Vec<String> },
    /// Some live peer is stale (or was never seen) on a failed region, as
    /// read on this node: the region failed for other nodes too.
    NotOnlyThisNode {
        regions: Vec<String>,
        stale_peers: BTreeSet<u8>,
    },
    /// This node's last read of a failed region's slots failed: its own
    /// path to the device is gone, and what the peers do there is unknown.
    Unreadable { regions: Vec<String> },
    /// The slots were not read (`heartbeat.read_disk` off, or no reading
    /// yet), or a failed region number is not among the configured regions.
    Unknown { regions: Vec<String>, why: String },
}

impl RegionLoss {
    /// Only this verdict allows a restart (under the cluster lease).
    pub fn allows_restart(&self) -> bool {
        matches!(self, RegionLoss::OnlyThisNode { .. })
    }

    /// What the verdict means for the restart, appended to the finding's
    /// evidence: the reason it is alert-only, or the lease it waits for.
    pub fn evidence_note(&self) -> String {
        match self {
            RegionLoss::OnlyThisNode { regions } => format!(
                "only this node lost region {} (every live peer's slot on it is fresh): \
                 restart under the cluster lease",
                regions.join(", ")
            ),
            RegionLoss::NotOnlyThisNode {
                regions,
                stale_peers,
            } => format!(
                "alert only: region {} is stale on disk for live peer(s) {} too: \
                 a restart cannot fix a failed heartbeat device and would take the volumes down",
                regions.join(", "),
                join_nodes(stale_peers)
            ),
            RegionLoss::Unreadable { regions } => format!(
                "alert only: this node cannot read region {}, so whether the peers still heartbeat \
                 on it is unknown; global heartbeat rides out fewer than half of its regions failing",
                regions.join(", ")
            ),
            RegionLoss::Unknown { regions, why } => format!(
                "alert only: whether only this node lost region {} is unknown ({why})",
                regions.join(", ")
            ),
        }
    }
}

/// Classifies the failed regions of `heartbeat`; `local` is this node's
/// number (configfs `local`), `None` when configfs does not say. `None`
/// when no region failed.
pub fn classify(heartbeat: &HeartbeatFacts, local: Option<u8>) -> Option<RegionLoss> {
    if heartbeat.failed_regions.is_empty() {
        return None;
    }
    let failed: Vec<_> = heartbeat
        .failed_regions
        .iter()
        .map(|num| {
            (
                num,
                heartbeat.regions.iter().find(|r| r.num == u32::from(*num)),
            )
        })
        .collect();
    let names: Vec<String> = failed
        .iter()
        .map(|(num, region)| region.map_or_else(|| format!("#{num}"), |r| r.uuid.clone()))
        .collect();
    let Some(local) = local else {
        return Some(RegionLoss::Unknown {
            regions: names,
            why: "this node's number is not in configfs".into(),
        });
    };
    let peers: BTreeSet<u8> = heartbeat
        .live_any
        .iter()
        .copied()
        .filter(|n| *n != local)
        .collect();
    let mut stale_peers = BTreeSet::new();
    for (num, region) in &failed {
        let Some(region) = region else {
            return Some(RegionLoss::Unknown {
                regions: names,
                why: format!("failed region number {num} is not a configured region"),
            });
        };
        let Some(disk) = region.disk.as_ref().filter(|d| d.observed_at.is_some()) else {
            return Some(RegionLoss::Unknown {
                regions: names,
                why: "its heartbeat slots are not read (heartbeat.read_disk)".into(),
            });
        };
        if disk.last_read_failed {
            return Some(RegionLoss::Unreadable { regions: names });
        }
        stale_peers.extend(
            peers
                .iter()
                .filter(|peer| !disk.node(**peer).is_some_and(|view| view.active)),
        );
    }
    Some(if stale_peers.is_empty() {
        RegionLoss::OnlyThisNode { regions: names }
    } else {
        RegionLoss::NotOnlyThisNode {
            regions: names,
            stale_peers,
        }
    })
}

fn join_nodes(nodes: &BTreeSet<u8>) -> String {
    nodes
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
