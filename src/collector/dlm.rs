//! The `dlm` collector: o2dlm domain membership and recovery, and whether this
//! node's domain map agrees with heartbeat and o2net.
//!
//! Reads debugfs `/sys/kernel/debug/o2dlm/<DOMAIN>/dlm_state` for every domain
//! (domain = volume UUID; fs/ocfs2/dlm/dlmdebug.c `debug_state_print`,
//! docs/interfaces.md §3.2), plus `o2hb/<REGION>/livenodes` (else the global
//! `o2hb/livenodes`) and `o2net/connected_nodes` to cross-check membership.
//! Node maps print `%d ` per node; 255 means "none" for the dead node,
//! joining node and recovery master (exported as -1).
//!
//! The lab's zombie (captures/*03a*: a paused node resumed after the survivor
//! evicted it) shows on the survivor as a peer live in heartbeat and connected
//! by o2net but missing from the domain map (`kind="missing_from_domain"`).
//! The zombie's own local files look healthy (its map still lists both), so
//! on that node the state is only visible through the kernel log (DLM -22
//! errors) and the on-disk slot map, not here. `ocfs2/<UUID>/fs_state` is
//! never read: polling it oopsed a lab kernel after a recovery.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::configfs::{self, ClusterConfig};
use super::net::read_parsed;
use super::nodemap::{parse_node_list, parse_node_map_file, NodeSet};
use super::parse_error::ParseError;
use super::{list_dirs, CollectError, Collector, Context, ErrorKind};
use crate::collector::{Facts, Section};
use crate::metrics::{bool_value, family_table, Families, Family};

pub struct Dlm;

/// 255 in dlm_state: no node.
const NO_NODE: u8 = 255;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DlmState {
    pub domain: String,
    pub node: u8,
    pub state: String,
    pub joining_node: Option<u8>,
    pub domain_map: NodeSet,
    pub exit_domain_map: NodeSet,
    pub live_map: NodeSet,
    pub lock_resources: u64,
    pub dead_node: Option<u8>,
    pub recovery_master: Option<u8>,
    pub recovery_state: String,
    pub recovery_map: NodeSet,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainView {
    pub state: DlmState,
    /// False when heartbeat or o2net could not be read: no mismatch verdict.
    pub cross_checked: bool,
    /// Peers live in heartbeat and connected by o2net but not in the map.
    pub missing_from_domain: NodeSet,
    /// Peers in the map that are not live in heartbeat.
    pub not_heartbeating: NodeSet,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DlmFacts {
    pub domains: Vec<DomainView>,
}

impl Collector for Dlm {
    fn name(&self) -> &'static str {
        "dlm"
    }

    fn collect(&self, ctx: &Context, _: Option<&Section>) -> Result<Section, CollectError> {
        let Some(cluster) = configfs::read_cluster(&ctx.paths)? else {
            return Ok(Section {
                absent: Some("no o2cb cluster registered in configfs".into()),
                ..Section::default()
            });
        };
        let debug = ctx.paths.sys("kernel/debug");
        let base = debug.join("o2dlm");
        let names = list_dirs(&base)?.ok_or_else(|| {
            CollectError::new(
                ErrorKind::NotFound,
                &base,
                "o2dlm debugfs directory missing",
            )
        })?;
        let mut facts = DlmFacts::default();
        if !names.is_empty() {
            // The cross-check inputs belong to the heartbeat and net
            // collectors, which report their own failures: when one cannot be
            // read here the mismatch is left out rather than failing dlm.
            let map = |path: PathBuf| read_parsed(&path, parse_node_map_file).ok();
            let connected = map(debug.join("o2net/connected_nodes"));
            let global_live = map(debug.join("o2hb/livenodes"));
            for name in names {
                let state = read_parsed(&base.join(&name).join("dlm_state"), parse_dlm_state)?;
                let region_live = debug.join("o2hb").join(&name).join("livenodes");
                let live = if region_live.exists() {
                    map(region_live)
                } else {
                    global_live.clone()
                };
                facts.domains.push(match (live, &connected) {
                    (Some(live), Some(connected)) => compare_membership(state, &live, connected),
                    _ => DomainView {
                        state,
                        cross_checked: false,
                        missing_from_domain: NodeSet::new(),
                        not_heartbeating: NodeSet::new(),
                    },
                });
            }
        }
        Ok(Section {
            families: families(&cluster, &facts),
            facts: Facts::Dlm(Arc::new(facts)),
            absent: None,
        })
    }
}

/// The local membership check of one domain.
pub fn compare_membership(state: DlmState, hb_live: &NodeSet, connected: &NodeSet) -> DomainView {
    let local = state.node;
    let missing_from_domain = hb_live
        .intersection(connected)
        .filter(|n| **n != local && !state.domain_map.contains(n))
        .copied()
        .collect();
    let not_heartbeating = state
        .domain_map
        .iter()
        .filter(|n| **n != local && !hb_live.contains(n))
        .copied()
        .collect();
    DomainView {
        state,
        cross_checked: true,
        missing_from_domain,
        not_heartbeating,
    }
}

/// `dlm_state`: lines of `Key: value` pairs separated by two spaces. The
/// first key names the line, since `State:` appears on two of them.
pub fn parse_dlm_state(text: &str) -> Result<DlmState, ParseError> {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let mut pairs = line.split("  ").filter(|p| !p.trim().is_empty());
        let Some(first) = pairs.next() else { continue };
        let Some((line_key, value)) = first.split_once(':') else {
            continue;
        };
        let line_key = line_key.trim().to_string();
        fields.insert(line_key.clone(), value.trim().to_string());
        for pair in pairs {
            if let Some((key, value)) = pair.split_once(':') {
                fields.insert(
                    format!("{line_key}/{}", key.trim()),
                    value.trim().to_string(),
                );
            }
        }
    }
    let get = |key: &'static str| {
        fields
            .get(key)
            .map(String::as_str)
            .ok_or(ParseError::MissingField(key))
    };
    let number = |key: &'static str| -> Result<u64, ParseError> {
        let value = get(key)?;
        let digits = value.split_whitespace().next().unwrap_or_default();
        digits.parse().map_err(|_| ParseError::BadField {
            field: key,
            value: value.to_string(),
        })
    };
    let node = |key: &'static str| -> Result<Option<u8>, ParseError> {
        let value = number(key)?;
        match u8::try_from(value) {
            Ok(NO_NODE) => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(ParseError::NotANodeNumber(value.to_string())),
        }
    };
    let map = |key: &'static str| get(key).and_then(parse_node_list);
    let domain = get("Domain")?.to_string();
    if domain.is_empty() {
        return Err(ParseError::MissingField("Domain"));
    }
    Ok(DlmState {
        domain,
        node: node("Thread Pid/Node")?.ok_or(ParseError::MissingField("Thread Pid/Node"))?,
        state: get("Thread Pid/State")?.to_string(),
        joining_node: node("Number of Joins/Joining Node")?,
        domain_map: map("Domain Map")?,
        exit_domain_map: map("Exit Domain Map")?,
        live_map: map("Live Map")?,
        lock_resources: number("Lock Resources")?,
        dead_node: node("Dead Node")?,
        recovery_master: node("Recovery Pid/Master")?,
        recovery_state: get("Recovery Pid/State")?.to_string(),
        recovery_map: map("Recovery Map")?,
    })
}

const DOMAIN_STATES: [&str; 4] = ["NEW", "JOINED", "SHUTDOWN", "LEAVING"];

fn node_value(node: Option<u8>) -> f64 {
    node.map_or(-1.0, f64::from)
}

family_table! {
    /// The dlm collector's families.
    enum DlmFamily {
        DomainMember = gauge(
            "ocfs2_dlm_domain_member",
            "1 when the node is in this DLM domain's map, as this node sees it (every configured node).",
        ),
        DomainState = gauge(
            "ocfs2_dlm_domain_state",
            "1 for the domain's current state (NEW, JOINED, SHUTDOWN, LEAVING).",
        ),
        RecoveryActive = gauge(
            "ocfs2_dlm_recovery_active",
            "1 while DLM recovery runs in the domain (Recovery State ACTIVE).",
        ),
        RecoveryMaster = gauge(
            "ocfs2_dlm_recovery_master",
            "Node number of the recovery master; -1 when none.",
        ),
        DeadNode = gauge(
            "ocfs2_dlm_dead_node",
            "Node number the domain is recovering from; -1 when none.",
        ),
        RecoveryMapNodes = gauge(
            "ocfs2_dlm_recovery_map_nodes",
            "Nodes in the domain's recovery map (waiting to be recovered).",
        ),
        LockResources = gauge(
            "ocfs2_dlm_lock_resources",
            "Lock resources currently in the domain.",
        ),
        MembershipMismatch = gauge(
            "ocfs2_dlm_membership_mismatch",
            "1 when a peer is live in heartbeat and connected but not in the domain map (missing_from_domain), or in the map but not heartbeating (not_heartbeating).",
        ),
        Domains = gauge(
            "ocfs2_dlm_domains",
            "DLM domains (mounted volumes) on this node.",
        ),
    }
}

fn families(cluster: &ClusterConfig, facts: &DlmFacts) -> Vec<Family> {
    use DlmFamily as F;
    let mut f = Families::<DlmFamily>::new();
    let configured: NodeSet = cluster.numbered_nodes().iter().map(|(n, _)| *n).collect();
    for view in &facts.domains {
        let s = &view.state;
        let uuid = s.domain.as_str();
        for node in configured.union(&s.domain_map) {
            let num = node.to_string();
            f[F::DomainMember].push(
                &[("uuid", uuid), ("node_num", num.as_str())],
                bool_value(s.domain_map.contains(node)),
            );
        }
        for name in DOMAIN_STATES {
            f[F::DomainState].push(
                &[("uuid", uuid), ("state", name)],
                bool_value(s.state == name),
            );
        }
        if !DOMAIN_STATES.contains(&s.state.as_str()) {
            f[F::DomainState].push(&[("uuid", uuid), ("state", "unknown")], 1.0);
        }
        f[F::RecoveryActive].push(&[("uuid", uuid)], bool_value(s.recovery_state == "ACTIVE"));
        f[F::RecoveryMaster].push(&[("uuid", uuid)], node_value(s.recovery_master));
        f[F::DeadNode].push(&[("uuid", uuid)], node_value(s.dead_node));
        f[F::RecoveryMapNodes].push(&[("uuid", uuid)], s.recovery_map.len() as f64);
        f[F::LockResources].push(&[("uuid", uuid)], s.lock_resources as f64);
        let peers = configured.iter().filter(|n| **n != s.node);
        for node in peers.filter(|_| view.cross_checked) {
            let num = node.to_string();
            for (kind, set) in [
                ("missing_from_domain", &view.missing_from_domain),
                ("not_heartbeating", &view.not_heartbeating),
            ] {
                f[F::MembershipMismatch].push(
                    &[("uuid", uuid), ("node_num", num.as_str()), ("kind", kind)],
                    bool_value(set.contains(node)),
                );
            }
        }
    }
    f[F::Domains].push(&[], facts.domains.len() as f64);
    f.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// captures/n1-03a-after-resume-state.txt: the survivor after the zombie resumed.
    const N1_ZOMBIE: &str = "Domain: DEA93192F0874F53BB5290B5205C6B64  Key: 0x1c95b96c  Protocol: 1.3\nThread Pid: 524  Node: 1  State: JOINED\nNumber of Joins: 1  Joining Node: 255\nDomain Map: 1 \nExit Domain Map: \nLive Map: 1 2 \nLock Resources: 21 (22)\nMLEs: 0 (28)\n  Blocking: 0 (7)\n  Mastery: 0 (21)\n  Migration: 0 (0)\nLists: Dirty=Empty  Purge=Empty  PendingASTs=Empty  PendingBASTs=Empty\nPurge Count: 0  Refs: 1\nDead Node: 255\nRecovery Pid: 525  Master: 255  State: INACTIVE\nRecovery Map: \nRecovery Node State:\n";

    #[test]
    fn dlm_state_from_the_capture() {
        let state = parse_dlm_state(N1_ZOMBIE).unwrap();
        assert_eq!(state.domain, "DEA93192F0874F53BB5290B5205C6B64");
        assert_eq!(state.node, 1);
        assert_eq!(state.state, "JOINED");
        assert_eq!(state.joining_node, None);
        assert_eq!(state.domain_map, NodeSet::from([1]));
        assert_eq!(state.live_map, NodeSet::from([1, 2]));
        assert_eq!(state.lock_resources, 21);
        assert_eq!(state.dead_node, None);
        assert_eq!(state.recovery_master, None);
        assert_eq!(state.recovery_state, "INACTIVE");
        assert!(state.recovery_map.is_empty());
    }

    #[test]
    fn recovery_in_progress_and_node_states() {
        let text = N1_ZOMBIE
            .replace("Dead Node: 255", "Dead Node: 2")
            .replace("Master: 255  State: INACTIVE", "Master: 1  State: ACTIVE")
            .replace(
                "Recovery Map: \nRecovery Node State:\n",
                "Recovery Map: 2 \nRecovery Node State:\n\t2 - DEAD\n",
            );
        let state = parse_dlm_state(&text).unwrap();
        assert_eq!(state.dead_node, Some(2));
        assert_eq!(state.recovery_master, Some(1));
        assert_eq!(state.recovery_state, "ACTIVE");
        assert_eq!(state.recovery_map, NodeSet::from([2]));
    }

    #[test]
    fn truncated_and_garbage_dlm_state() {
        let cut = &N1_ZOMBIE[..N1_ZOMBIE.find("Lock Resources").unwrap()];
        assert_eq!(
            parse_dlm_state(cut).unwrap_err(),
            ParseError::MissingField("Lock Resources")
        );
        assert!(parse_dlm_state("").is_err());
        assert!(parse_dlm_state("garbage\n").is_err());
        assert!(parse_dlm_state(&N1_ZOMBIE.replace("Domain Map: 1 ", "Domain Map: x ")).is_err());
        assert!(parse_dlm_state(&N1_ZOMBIE.replace("Node: 1 ", "Node: 999 ")).is_err());
    }

    #[test]
    fn the_zombie_pair_as_each_node_sees_it() {
        let both = NodeSet::from([1, 2]);
        let survivor = compare_membership(
            parse_dlm_state(N1_ZOMBIE).unwrap(),
            &both,
            &NodeSet::from([2]),
        );
        assert_eq!(survivor.missing_from_domain, NodeSet::from([2]));
        assert!(survivor.not_heartbeating.is_empty());
        // A peer in the map whose heartbeat stopped.
        let dead = compare_membership(
            parse_dlm_state(&N1_ZOMBIE.replace("Domain Map: 1 ", "Domain Map: 1 2 ")).unwrap(),
            &NodeSet::from([1]),
            &NodeSet::new(),
        );
        assert_eq!(dead.not_heartbeating, NodeSet::from([2]));
        assert!(dead.missing_from_domain.is_empty());
    }
}
