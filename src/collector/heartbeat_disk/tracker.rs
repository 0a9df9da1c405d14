//! Turns successive slot readings into per-node liveness as the disk shows it.
//!
//! `hb_seq` is the writer's wall clock, so comparing it with ours would mix in
//! clock skew between nodes. Like the kernel (heartbeat.c `o2hb_check_slot`),
//! we only watch whether the value *changes*: the age of a node's heartbeat is
//! the time since this daemon saw its slot's seq (or generation) change. Until
//! a change has been seen (just after start) the age counts from the first
//! sighting, so it is a lower bound. A block with a bad checksum is a missed
//! sample (the kernel does the same): the last good values stay and the age
//! keeps growing. Everything here is pure: time comes in as `now`, and the
//! state of the previous tick comes back in as `previous`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::reader::SlotReading;
use crate::metrics::{bool_value, family_table, Families, Family};

/// Dead time assumed for a slot that does not advertise one: the kernel's
/// default dead_threshold 31 × 2000 ms.
const DEFAULT_DEAD_MS: u32 = 62_000;

/// What one tick of reading a region gave.
#[derive(Debug, Clone, Copy)]
pub enum Observation<'a> {
    Slots(&'a [SlotReading]),
    /// The read failed or did not finish before its deadline.
    ReadFailed,
}

/// One slot's history as seen by this daemon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeView {
    /// In the configured node list (cluster.conf / configfs) of this tick.
    pub configured: bool,
    /// Last seq read with a good checksum; 0 = slot never written.
    pub seq: u64,
    pub generation: u64,
    pub dead_ms: u32,
    /// When the current seq/generation was first read.
    pub seq_since: SystemTime,
    /// Whether `seq_since` is a change we saw, not just a first sighting.
    pub change_seen: bool,
    pub seq_age_seconds: f64,
    /// Blocks read with a bad checksum, since the daemon started.
    pub checksum_failures: u64,
    /// Seq seen changing within the writer's dead time, generation non-zero.
    pub active: bool,
}

impl NodeView {
    fn first_sighting(configured: bool, now: SystemTime) -> Self {
        Self {
            configured,
            seq: 0,
            generation: 0,
            dead_ms: 0,
            seq_since: now,
            change_seen: false,
            seq_age_seconds: 0.0,
            checksum_failures: 0,
            active: false,
        }
    }

    /// A generation-0 block after a written one: the node left cleanly.
    pub fn stopped(&self) -> bool {
        self.seq != 0 && self.generation == 0
    }

    fn refresh(&mut self, now: SystemTime) {
        self.seq_age_seconds = now
            .duration_since(self.seq_since)
            .map(|age| age.as_secs_f64())
            // A clock stepped backwards: no age rather than a negative one.
            .unwrap_or(0.0);
        let dead_ms = if self.dead_ms == 0 {
            DEFAULT_DEAD_MS
        } else {
            self.dead_ms
        };
        self.active = self.change_seen
            && self.seq != 0
            && self.generation != 0
            && self.seq_age_seconds * 1000.0 < f64::from(dead_ms);
    }
}

/// The tracker's whole state, carried from tick to tick (in the heartbeat
/// collector's facts).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrackerState {
    pub observed_at: Option<SystemTime>,
    pub nodes: BTreeMap<u8, NodeView>,
    /// Ticks whose read failed, timed out or came back short.
    pub read_errors: u64,
    /// The latest observation was a failed read: the ages above are how
    /// long this node has not been able to look, not what the peers did.
    pub last_read_failed: bool,
}

impl TrackerState {
    pub fn node(&self, node_num: u8) -> Option<&NodeView> {
        self.nodes.get(&node_num)
    }
}

/// Derives per-node heartbeat state from readings; `configured` is the node
/// list of this tick.
#[derive(Debug, Clone, Copy)]
pub struct SlotTracker<'a> {
    pub configured: &'a [u8],
}

impl SlotTracker<'_> {
    pub fn observe(
        &self,
        previous: Option<&TrackerState>,
        observation: Observation<'_>,
        now: SystemTime,
    ) -> TrackerState {
        let mut state = previous.cloned().unwrap_or_default();
        state.observed_at = Some(now);
        for (node_num, view) in state.nodes.iter_mut() {
            view.configured = self.configured.contains(node_num);
        }
        let mut read_failed = false;
        match observation {
            Observation::ReadFailed => read_failed = true,
            Observation::Slots(slots) => {
                for (node_num, reading) in slots {
                    let configured = self.configured.contains(node_num);
                    match reading {
                        Err(_) => read_failed = true,
                        Ok(block) if !block.crc_ok => {
                            state
                                .nodes
                                .entry(*node_num)
                                .or_insert_with(|| NodeView::first_sighting(configured, now))
                                .checksum_failures += 1;
                        }
                        Ok(block) => match state.nodes.get_mut(node_num) {
                            Some(view) => {
                                if view.seq != block.seq || view.generation != block.generation {
                                    view.change_seen = view.seq != 0;
                                    view.seq_since = now;
                                }
                                view.seq = block.seq;
                                view.generation = block.generation;
                                view.dead_ms = block.dead_ms;
                            }
                            // Slots nobody wrote are only worth a series for
                            // configured nodes.
                            None if block.is_empty() && !configured => {}
                            None => {
                                let mut view = NodeView::first_sighting(configured, now);
                                view.seq = block.seq;
                                view.generation = block.generation;
                                view.dead_ms = block.dead_ms;
                                state.nodes.insert(*node_num, view);
                            }
                        },
                    }
                }
            }
        }
        if read_failed {
            state.read_errors += 1;
        }
        state.last_read_failed = read_failed;
        for view in state.nodes.values_mut() {
            view.refresh(now);
        }
        state
    }
}

family_table! {
    /// The `ocfs2_heartbeat_disk_*` families (part of the heartbeat collector).
    pub enum DiskFamily {
        SeqAge = gauge(
            "ocfs2_heartbeat_disk_seq_age_seconds",
            "Seconds since this daemon saw the node's on-disk heartbeat sequence change (a lower bound until one change was seen).",
        ),
        SeqTimestamp = gauge(
            "ocfs2_heartbeat_disk_seq_timestamp_seconds",
            "The node's last on-disk heartbeat sequence: its own wall clock when it wrote the slot.",
        ),
        Generation = gauge(
            "ocfs2_heartbeat_disk_generation",
            "The node's on-disk heartbeat generation (random per heartbeat start, 0 after a clean stop).",
        ),
        Stopped = gauge(
            "ocfs2_heartbeat_disk_stopped",
            "1 when the node's slot holds a clean-stop block (generation 0).",
        ),
        Active = gauge(
            "ocfs2_heartbeat_disk_active",
            "1 when the node's on-disk sequence changed within its advertised dead time and its generation is non-zero.",
        ),
        DeadSeconds = gauge(
            "ocfs2_heartbeat_disk_dead_seconds",
            "The dead time the node advertises in its slot (dead_threshold x 2 s).",
        ),
        ChecksumFailures = counter(
            "ocfs2_heartbeat_disk_checksum_failures",
            "Heartbeat slot reads whose block checksum did not match.",
        ),
        UnknownNode = gauge(
            "ocfs2_heartbeat_disk_unknown_node",
            "1 when a slot outside the configured node list is actively heartbeating.",
        ),
        ReadErrors = counter(
            "ocfs2_heartbeat_disk_read_errors",
            "Ticks whose read of the heartbeat slots failed, timed out or came back short.",
        ),
    }
}

/// The on-disk heartbeat families of one region alone (`hb_region` = its UUID).
pub fn families(state: &TrackerState, region: &str) -> Vec<Family> {
    let mut families = Families::new();
    push_families(state, region, &mut families);
    families.into_vec()
}

/// Adds one region's samples to the on-disk heartbeat families, which
/// gather every region's.
pub fn push_families(state: &TrackerState, region: &str, f: &mut Families<DiskFamily>) {
    use DiskFamily as F;
    for (node_num, view) in &state.nodes {
        let node_num = node_num.to_string();
        let labels = [("hb_region", region), ("node_num", node_num.as_str())];
        if view.seq != 0 {
            f[F::SeqAge].push(&labels, view.seq_age_seconds);
            // Exact up to 2^53 s, far beyond any wall clock.
            f[F::SeqTimestamp].push(&labels, view.seq as f64);
            f[F::DeadSeconds].push(&labels, f64::from(view.dead_ms) / 1000.0);
        }
        // An identifier: only its changes matter, so f64 rounding is harmless.
        f[F::Generation].push(&labels, view.generation as f64);
        f[F::Stopped].push(&labels, bool_value(view.stopped()));
        f[F::Active].push(&labels, bool_value(view.active));
        f[F::ChecksumFailures].push(&labels, view.checksum_failures as f64);
        if !view.configured {
            f[F::UnknownNode].push(&labels, bool_value(view.active));
        }
    }
    f[F::ReadErrors].push(&[("hb_region", region)], state.read_errors as f64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::heartbeat_disk::block::{encode_block, parse_block, BlockError};
    use std::time::Duration;

    const T0: u64 = 1_700_000_000;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + seconds)
    }

    fn slot(node: u8, seq: u64, generation: u64) -> SlotReading {
        let block = encode_block(512, seq, node, generation, 14_000);
        (node, parse_block(&block))
    }

    fn corrupt(node: u8, seq: u64) -> SlotReading {
        let mut block = encode_block(512, seq, node, 7, 14_000);
        block[100] = 1;
        (node, parse_block(&block))
    }

    #[test]
    fn live_node_stays_young_and_stopped_one_ages() {
        let tracker = SlotTracker {
            configured: &[1, 2],
        };
        let tick0 = [slot(1, T0, 11), slot(2, T0, 22)];
        let s0 = tracker.observe(None, Observation::Slots(&tick0), at(0));
        assert!(!s0.node(1).unwrap().active, "no change seen yet");
        let tick1 = [slot(1, T0 + 2, 11), slot(2, T0 + 2, 22)];
        let s1 = tracker.observe(Some(&s0), Observation::Slots(&tick1), at(2));
        assert!(s1.node(1).unwrap().active);
        assert_eq!(s1.node(2).unwrap().seq_age_seconds, 0.0);
        // Node 2 stops writing; node 1 carries on.
        let tick2 = [slot(1, T0 + 20, 11), slot(2, T0 + 2, 22)];
        let s2 = tracker.observe(Some(&s1), Observation::Slots(&tick2), at(20));
        let (one, two) = (s2.node(1).unwrap(), s2.node(2).unwrap());
        assert_eq!(one.seq_age_seconds, 0.0);
        assert!(one.active);
        assert_eq!(two.seq_age_seconds, 18.0);
        assert!(!two.active, "18 s > the advertised 14 s dead time");
        assert_eq!(s2.read_errors, 0);
    }

    #[test]
    fn bad_checksum_is_a_missed_sample_and_counted() {
        let tracker = SlotTracker { configured: &[3] };
        let s0 = tracker.observe(None, Observation::Slots(&[slot(3, T0, 5)]), at(0));
        let s1 = tracker.observe(Some(&s0), Observation::Slots(&[corrupt(3, T0 + 4)]), at(4));
        let s2 = tracker.observe(Some(&s1), Observation::Slots(&[corrupt(3, T0 + 6)]), at(6));
        let view = s2.node(3).unwrap();
        assert_eq!(view.checksum_failures, 2);
        assert_eq!(view.seq, T0, "a bad block never replaces the last good one");
        assert_eq!(view.seq_age_seconds, 6.0);
    }

    #[test]
    fn clean_stop_and_empty_and_unknown_slots() {
        let tracker = SlotTracker {
            configured: &[1, 4],
        };
        let empty = (4u8, parse_block(&[0; 512]));
        let tick0 = [
            slot(1, T0, 0),
            empty.clone(),
            slot(9, T0, 99),
            (10, parse_block(&[0; 512])),
        ];
        let s0 = tracker.observe(None, Observation::Slots(&tick0), at(0));
        let tick1 = [
            slot(1, T0, 0),
            empty,
            slot(9, T0 + 2, 99),
            (10, parse_block(&[0; 512])),
        ];
        let s1 = tracker.observe(Some(&s0), Observation::Slots(&tick1), at(2));
        assert!(s1.node(1).unwrap().stopped());
        assert!(
            !s1.node(4).unwrap().stopped(),
            "never written is not stopped"
        );
        assert!(s1.node(9).unwrap().active && !s1.node(9).unwrap().configured);
        assert!(s1.node(10).is_none(), "empty unknown slots are not tracked");
        let text = crate::metrics::encode(crate::metrics::normalize(families(&s1, "R")));
        assert!(
            text.contains("ocfs2_heartbeat_disk_unknown_node{hb_region=\"R\",node_num=\"9\"} 1")
        );
        assert!(text.contains("ocfs2_heartbeat_disk_stopped{hb_region=\"R\",node_num=\"1\"} 1"));
        assert!(
            !text.contains("ocfs2_heartbeat_disk_seq_age_seconds{hb_region=\"R\",node_num=\"4\"}")
        );
        assert!(!text.contains("unknown_node{hb_region=\"R\",node_num=\"1\"}"));
    }

    #[test]
    fn failed_reads_count_and_keep_aging() {
        let tracker = SlotTracker { configured: &[1] };
        let s0 = tracker.observe(None, Observation::ReadFailed, at(0));
        assert_eq!(s0.read_errors, 1);
        assert!(s0.nodes.is_empty());
        assert!(s0.last_read_failed);
        let s1 = tracker.observe(Some(&s0), Observation::Slots(&[slot(1, T0, 1)]), at(2));
        assert!(!s1.last_read_failed);
        let s2 = tracker.observe(Some(&s1), Observation::ReadFailed, at(32));
        let truncated = [(1u8, Err(BlockError::Truncated { len: 0 }))];
        let s3 = tracker.observe(Some(&s2), Observation::Slots(&truncated), at(40));
        assert_eq!(s3.read_errors, 3);
        assert!(s3.last_read_failed);
        assert_eq!(s3.node(1).unwrap().seq_age_seconds, 38.0);
        let fams = families(&s3, "R");
        let errors = fams
            .iter()
            .find(|f| f.name == "ocfs2_heartbeat_disk_read_errors")
            .unwrap();
        assert_eq!(errors.samples[0].value, 3.0);
    }

    #[test]
    fn clock_stepping_back_gives_zero_age() {
        let tracker = SlotTracker { configured: &[1] };
        let s0 = tracker.observe(None, Observation::Slots(&[slot(1, T0, 1)]), at(10));
        let s1 = tracker.observe(Some(&s0), Observation::Slots(&[slot(1, T0, 1)]), at(5));
        assert_eq!(s1.node(1).unwrap().seq_age_seconds, 0.0);
    }
}
