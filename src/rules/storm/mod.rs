//! The storm brake: when the evidence says the SAN or the whole cluster is
//! failing, or when the evidence needed to tell is missing, no single node's
//! remediation helps, and unmounting or restarting during it makes the day
//! worse. The brake fails closed.
//!
//! `signals.rs` reads storm evidence proper (every heartbeat region hung,
//! every iSCSI session down, an `hb write hung` negotiation): it holds every
//! action. `evidence.rs` reads what holds only the destructive ones (an
//! o2cb restart, an iSCSI re-login, a heartbeat kill, an unmount): a failed,
//! stale or timed-out heartbeat, storage or kernel-log collector, a stuck
//! mount probe on the target, failing heartbeat-disk reads, a network
//! partition (unmount and o2cb restart). Other nodes' trouble holds only the
//! disruptive actions (o2cb restart, iSCSI re-login, heartbeat kill), never
//! local healing: more than `max_unhealthy_nodes` other live nodes
//! reporting a fresh firing disruptive finding, or a live peer whose report
//! has aged (`peer_unknown`), and the hold-down after the former. The engine
//! (`decision.rs`) asks `Brake::hold` just before each action; `Brake`
//! keeps the hold-down after the last cluster-wide evidence and, when it
//! releases, restarts every target's `for` with a per-node jitter
//! (`engine.rs`), so the nodes do not all act on the tick the SAN returns.

mod evidence;
mod signals;

use std::time::{Duration, Instant};

use crate::actions::Plan;
use crate::metrics::{bool_value, Family};
use crate::rules::config::RemediationConfig;
use crate::snapshot::Snapshot;

pub use evidence::{
    disk_view, is_destructive, is_disruptive, peer_health, presence, PeerHealth, Presence,
};

/// Hold-down when the heartbeat timeout is unknown: 2 × o2cb's default
/// 60 s (threshold 31 × 2 s).
const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the brake holds an action; a fixed set, the `reason` label of
/// `ocfs2_watchdog_storm_brake_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BrakeReason {
    /// Every heartbeat region hung, every iSCSI session down, or the
    /// kernel's `hb write hung` negotiation.
    Storm,
    /// A collector the brake reads failed, is stale or timed out; the
    /// target's mount probe is stuck; the heartbeat disk cannot be read.
    MissingEvidence,
    /// A peer live on the heartbeat disk is not connected over o2net.
    Partition,
    /// More than `max_unhealthy_nodes` other live nodes report a fresh
    /// firing disruptive finding.
    UnhealthyNodes,
    /// A live peer's state report is missing or older than the bound: its
    /// trouble is unknown.
    PeerUnknown,
    /// The evidence cleared less than the hold-down ago.
    HoldDown,
}

impl BrakeReason {
    pub const ALL: [BrakeReason; 6] = [
        BrakeReason::Storm,
        BrakeReason::MissingEvidence,
        BrakeReason::Partition,
        BrakeReason::UnhealthyNodes,
        BrakeReason::PeerUnknown,
        BrakeReason::HoldDown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BrakeReason::Storm => "storm",
            BrakeReason::MissingEvidence => "missing_evidence",
            BrakeReason::Partition => "partition",
            BrakeReason::UnhealthyNodes => "unhealthy_nodes",
            BrakeReason::PeerUnknown => "peer_unknown",
            BrakeReason::HoldDown => "hold_down",
        }
    }
}

/// One reason the brake is engaged, with what showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engaged {
    pub reason: BrakeReason,
    pub detail: String,
}

impl Engaged {
    fn new(reason: BrakeReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    /// `reason: detail`, as audited and shown in `/status`.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.reason.as_str(), self.detail)
    }
}

/// `Some(reason)` when storm evidence proper is on this snapshot (holds
/// every action).
pub fn evaluate(snapshot: &Snapshot, config: &RemediationConfig) -> Option<String> {
    signals::evaluate(snapshot, config)
}

/// Every cluster-wide reason on this snapshot, regardless of target: storm
/// signals, missing collectors and heartbeat-disk reads, a partition, and,
/// from the peers' reports (`peers`; `None`: no peer protocol), the
/// unhealthy-nodes gate and unknown peers.
pub fn cluster_wide(
    snapshot: &Snapshot,
    config: &RemediationConfig,
    peers: Option<&PeerHealth>,
) -> Vec<Engaged> {
    let mut engaged = Vec::new();
    if let Some(why) = signals::evaluate(snapshot, config) {
        engaged.push(Engaged::new(BrakeReason::Storm, why));
    }
    engaged.extend(evidence::missing_collectors(snapshot));
    engaged.extend(evidence::heartbeat_disk_unreadable(snapshot));
    engaged.extend(evidence::partition(snapshot));
    if let Some(peers) = peers {
        engaged.extend(evidence::too_many_unhealthy(config, peers));
        engaged.extend(evidence::peers_unknown(peers));
    }
    engaged
}

/// The brake's memory across ticks: the hold-down after the last
/// cluster-wide storm evidence, and whether it just released.
#[derive(Debug, Default)]
pub struct Brake {
    /// The last evidence of any kind that starts a hold-down: it holds the
    /// disruptive actions.
    last_evidence: Option<Instant>,
    /// What engaged it last, shown through the hold-down.
    last_reason: Option<Engaged>,
    /// The last storm or partition evidence: its hold-down holds every
    /// destructive action (other nodes' trouble does not hold local
    /// healing, nor does the hold-down after it).
    last_local_evidence: Option<Instant>,
    last_local_reason: Option<Engaged>,
    engaged: bool,
    /// Engaged by storm or partition evidence or their hold-down.
    engaged_local: bool,
    /// Since when a partition has been seen without a break.
    partition_since: Option<Instant>,
}

/// How long a partition must last before it starts a hold-down. A peer
/// that stops its heartbeat cleanly (the last unmount in local mode)
/// closes its o2net sockets first and writes its clear generation after
/// (fs/ocfs2/cluster/heartbeat.c `o2hb_thread`: `o2hb_shutdown_slot`, then
/// `o2hb_prepare_block(reg, 0)`); this node's kernel marks it down at its
/// next slot read, within one 2 s heartbeat interval. For that moment the
/// peer is live but not connected: the brake holds then, but a hold-down
/// of 2 x the heartbeat timeout after it would hold every destructive
/// action for half a minute after each clean unmount. A real partition
/// lasts at least the network idle timeout (10 s and more).
pub const PARTITION_SETTLE: Duration = Duration::from_secs(4);

impl Brake {
    /// The hold-down: `storm_hold_down`, else 2 × the heartbeat timeout.
    pub fn hold_down(snapshot: &Snapshot, config: &RemediationConfig) -> Duration {
        config.storm_hold_down.unwrap_or_else(|| {
            let timeout = snapshot
                .heartbeat()
                .and_then(|h| h.timeout_seconds)
                .map_or(DEFAULT_HEARTBEAT_TIMEOUT, |s| {
                    Duration::from_secs(u64::from(s))
                });
            timeout * 2
        })
    }

    /// Notes this tick's cluster-wide evidence and says which targets the
    /// brake just released (it cleared and the hold-down passed). Only
    /// storm, partition (once it lasted `PARTITION_SETTLE`) and
    /// unhealthy-nodes evidence start a hold-down and restart the targets'
    /// `for` on release: missing evidence and unknown peers brake for as
    /// long as they last, and a collector or a peer that is slow now and
    /// then must not keep every target pending forever. Unhealthy nodes
    /// held only the disruptive actions, so their release restarts only
    /// those.
    pub fn observe(&mut self, engaged: &[Engaged], hold_down: Duration, now: Instant) -> Release {
        let partition = engaged.iter().any(|e| e.reason == BrakeReason::Partition);
        self.partition_since = partition.then(|| self.partition_since.unwrap_or(now));
        let partition_settled = self
            .partition_since
            .is_some_and(|since| now.duration_since(since) >= PARTITION_SETTLE);
        let starts_local = |e: &&Engaged| match e.reason {
            BrakeReason::Storm => true,
            BrakeReason::Partition => partition_settled,
            _ => false,
        };
        if let Some(storm) = engaged.iter().find(starts_local) {
            self.last_local_evidence = Some(now);
            self.last_local_reason = Some(storm.clone());
        }
        if let Some(storm) = engaged
            .iter()
            .find(|e| starts_local(e) || e.reason == BrakeReason::UnhealthyNodes)
        {
            self.last_evidence = Some(now);
            self.last_reason = Some(storm.clone());
        }
        let holding_local = self.local_hold_down_left(hold_down, now).is_some()
            || engaged
                .iter()
                .any(|e| matches!(e.reason, BrakeReason::Storm | BrakeReason::Partition));
        let holding = self.hold_down_left(hold_down, now).is_some()
            || engaged.iter().any(|e| {
                !matches!(
                    e.reason,
                    BrakeReason::MissingEvidence | BrakeReason::PeerUnknown
                )
            });
        let release = if self.engaged_local && !holding_local {
            Release::All
        } else if self.engaged && !holding {
            Release::Disruptive
        } else {
            Release::None
        };
        self.engaged = holding;
        self.engaged_local = holding_local;
        release
    }

    /// Time left of the hold-down after the last evidence that starts one
    /// (what holds the disruptive actions).
    pub fn hold_down_left(&self, hold_down: Duration, now: Instant) -> Option<Duration> {
        left(self.last_evidence, hold_down, now)
    }

    /// Time left of the hold-down after the last storm or partition
    /// evidence (what holds every destructive action).
    fn local_hold_down_left(&self, hold_down: Duration, now: Instant) -> Option<Duration> {
        left(self.last_local_evidence, hold_down, now)
    }

    /// The reason the brake holds `plan` now, if any: storm evidence holds
    /// every action, a partition what it applies to, other nodes' trouble
    /// (unhealthy nodes, an unknown peer, the hold-down after unhealthy
    /// nodes) only disruptive ones, the rest every destructive one;
    /// `plan_targets` is the plan-specific evidence (`target_evidence`).
    pub fn hold(
        &self,
        cluster_wide: &[Engaged],
        plan: &Plan,
        snapshot: &Snapshot,
        hold_down: Duration,
        now: Instant,
    ) -> Option<Engaged> {
        let destructive = is_destructive(plan);
        let disruptive = is_disruptive(plan);
        let applies = |e: &&Engaged| match e.reason {
            BrakeReason::Storm => true,
            BrakeReason::Partition => evidence::partition_applies(plan),
            BrakeReason::UnhealthyNodes | BrakeReason::PeerUnknown => disruptive,
            BrakeReason::MissingEvidence | BrakeReason::HoldDown => destructive,
        };
        if let Some(found) = cluster_wide.iter().find(applies) {
            return Some(found.clone());
        }
        if destructive {
            if let Some(found) = evidence::target_evidence(snapshot, plan) {
                return Some(found);
            }
            let (left, reason) = if disruptive {
                (self.hold_down_left(hold_down, now), &self.last_reason)
            } else {
                (
                    self.local_hold_down_left(hold_down, now),
                    &self.last_local_reason,
                )
            };
            if let Some(left) = left {
                let after = reason
                    .as_ref()
                    .map_or_else(String::new, |r| format!(" after {}", r.describe()));
                return Some(Engaged::new(
                    BrakeReason::HoldDown,
                    format!(
                        "{} left{after}",
                        humantime::format_duration(Duration::from_secs(left.as_secs().max(1)))
                    ),
                ));
            }
        }
        None
    }
}

fn left(last: Option<Instant>, hold_down: Duration, now: Instant) -> Option<Duration> {
    let until = crate::input::saturating_instant(last?, hold_down);
    until
        .checked_duration_since(now)
        .filter(|left| !left.is_zero())
}

/// Which targets the brake released this tick: they wait their `for`
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    None,
    /// The unhealthy-nodes hold-down ended: the disruptive targets.
    Disruptive,
    /// Storm or partition evidence and its hold-down ended: every target.
    All,
}

/// This node's share of the release jitter: a fraction in [0, 1) fixed by
/// its node number (else its hostname), so nodes spread out, reproducibly.
pub fn jitter_fraction(node: Option<u8>, hostname: &str) -> f64 {
    let seed = node.map_or_else(
        || {
            hostname
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        },
        u64::from,
    );
    // Knuth's multiplicative hash spreads consecutive node numbers apart.
    (seed.wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0
}

/// `ocfs2_watchdog_storm_brake_reason{reason}`: 1 for each reason engaged.
pub fn reason_family(engaged: &[&'static str]) -> Family {
    let mut family = Family::gauge(
        "ocfs2_watchdog_storm_brake_reason",
        "1 for each reason the storm brake is engaged now (storm, missing_evidence, partition, unhealthy_nodes, peer_unknown, hold_down).",
    );
    for reason in BrakeReason::ALL {
        family.push(
            &[("reason", reason.as_str())],
            bool_value(engaged.contains(&reason.as_str())),
        );
    }
    family
}

/// What the report shows of the brake.
#[derive(Debug, Clone, Default)]
pub struct BrakeView {
    pub summary: Option<String>,
    pub reasons: Vec<&'static str>,
    pub hold_down_seconds: f64,
    pub unhealthy_nodes: u32,
}
