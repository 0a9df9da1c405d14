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
//! partition (unmount and o2cb restart), and more than
//! `max_unhealthy_nodes` of the cluster's nodes in trouble. The engine
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

pub use evidence::{disk_view, is_destructive, unhealthy_nodes};

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
    /// More than `max_unhealthy_nodes` nodes show a disruptive problem.
    UnhealthyNodes,
    /// The evidence cleared less than the hold-down ago.
    HoldDown,
}

impl BrakeReason {
    pub const ALL: [BrakeReason; 5] = [
        BrakeReason::Storm,
        BrakeReason::MissingEvidence,
        BrakeReason::Partition,
        BrakeReason::UnhealthyNodes,
        BrakeReason::HoldDown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BrakeReason::Storm => "storm",
            BrakeReason::MissingEvidence => "missing_evidence",
            BrakeReason::Partition => "partition",
            BrakeReason::UnhealthyNodes => "unhealthy_nodes",
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
/// signals, missing collectors and heartbeat-disk reads, a partition, and
/// the unhealthy-nodes gate counting this node as unhealthy when
/// `local_trouble` (it has a firing destructive finding), and the peers
/// that `reported` one over the peer protocol.
pub fn cluster_wide(
    snapshot: &Snapshot,
    config: &RemediationConfig,
    local_trouble: bool,
    reported: &crate::collector::nodemap::NodeSet,
) -> Vec<Engaged> {
    let mut engaged = Vec::new();
    if let Some(why) = signals::evaluate(snapshot, config) {
        engaged.push(Engaged::new(BrakeReason::Storm, why));
    }
    engaged.extend(evidence::missing_collectors(snapshot));
    engaged.extend(evidence::heartbeat_disk_unreadable(snapshot));
    engaged.extend(evidence::partition(snapshot));
    engaged.extend(evidence::too_many_unhealthy(
        snapshot,
        config,
        local_trouble,
        reported,
    ));
    engaged
}

/// The brake's memory across ticks: the hold-down after the last
/// cluster-wide storm evidence, and whether it just released.
#[derive(Debug, Default)]
pub struct Brake {
    last_evidence: Option<Instant>,
    /// What engaged it last, shown through the hold-down.
    last_reason: Option<Engaged>,
    engaged: bool,
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

    /// Notes this tick's cluster-wide evidence; true on the tick the brake
    /// releases after storm evidence (it cleared and the hold-down passed).
    /// Only storm, partition (once it lasted `PARTITION_SETTLE`) and
    /// unhealthy-nodes evidence start a hold-down and restart the targets'
    /// `for` on release: missing evidence brakes
    /// for as long as it is missing, and a collector that is slow now and
    /// then must not keep every target pending forever.
    pub fn observe(&mut self, engaged: &[Engaged], hold_down: Duration, now: Instant) -> bool {
        let partition = engaged.iter().any(|e| e.reason == BrakeReason::Partition);
        self.partition_since = partition.then(|| self.partition_since.unwrap_or(now));
        let partition_settled = self
            .partition_since
            .is_some_and(|since| now.duration_since(since) >= PARTITION_SETTLE);
        if let Some(storm) = engaged.iter().find(|e| match e.reason {
            BrakeReason::Storm | BrakeReason::UnhealthyNodes => true,
            BrakeReason::Partition => partition_settled,
            _ => false,
        }) {
            self.last_evidence = Some(now);
            self.last_reason = Some(storm.clone());
        }
        let holding = self.hold_down_left(hold_down, now).is_some()
            || engaged
                .iter()
                .any(|e| e.reason != BrakeReason::MissingEvidence);
        let released = self.engaged && !holding;
        self.engaged = holding;
        released
    }

    /// Time left of the hold-down after the last storm evidence.
    pub fn hold_down_left(&self, hold_down: Duration, now: Instant) -> Option<Duration> {
        let until = self.last_evidence? + hold_down;
        until
            .checked_duration_since(now)
            .filter(|left| !left.is_zero())
    }

    /// The reason the brake holds `plan` now, if any: storm evidence holds
    /// every action, the rest only destructive ones; `plan_targets` is the
    /// plan-specific evidence (`target_evidence`).
    pub fn hold(
        &self,
        cluster_wide: &[Engaged],
        plan: &Plan,
        snapshot: &Snapshot,
        hold_down: Duration,
        now: Instant,
    ) -> Option<Engaged> {
        let destructive = is_destructive(plan);
        let applies = |e: &&Engaged| match e.reason {
            BrakeReason::Storm => true,
            BrakeReason::Partition => evidence::partition_applies(plan),
            _ => destructive,
        };
        if let Some(found) = cluster_wide.iter().find(applies) {
            return Some(found.clone());
        }
        if destructive {
            if let Some(found) = evidence::target_evidence(snapshot, plan) {
                return Some(found);
            }
            if let Some(left) = self.hold_down_left(hold_down, now) {
                let after = self
                    .last_reason
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
        "1 for each reason the storm brake is engaged now (storm, missing_evidence, partition, unhealthy_nodes, hold_down).",
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
