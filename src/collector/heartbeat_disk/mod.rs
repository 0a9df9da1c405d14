//! Every peer's heartbeat as the shared disk shows it: the only view of a
//! peer's liveness that does not depend on the interconnect.
//!
//! Reads the heartbeat region's slots straight from its block device: slot N
//! (one `struct o2hb_disk_heartbeat_block` per node, fs/ocfs2/cluster/
//! ocfs2_heartbeat.h) at byte `(start_block + N) × block_bytes`, with the
//! geometry from configfs `/sys/kernel/config/cluster/<cluster>/heartbeat/
//! <REGION>/{dev,start_block,block_bytes,blocks}` (interfaces.md §1.4, §5.8).
//! The device path is the caller's: `/dev/<dev>` built with `HostPaths::root`.
//!
//! A library for the heartbeat collector, not a collector of its own:
//! `block` parses and checksums one slot, `reader` reads slots with O_DIRECT,
//! `tracker` turns successive readings into ages and counters and exports
//! the `ocfs2_heartbeat_disk_*` families. Per tick the caller does:
//!
//! ```ignore
//! let request = SlotRequest { device, start_block, block_bytes, nodes: all_slots(blocks) };
//! let state = probe_slots(&prober, &region, deadline, request);
//! let tracker = SlotTracker { configured: &configured_nodes };
//! let now_state = tracker.observe(previous_state, Observation::from_probe(&state), now);
//! families.extend(heartbeat_disk::families(&now_state, &region));
//! ```

mod block;
mod reader;
mod tracker;

#[cfg(test)]
mod region_tests;

use std::path::PathBuf;
use std::time::Duration;

pub use block::{compute_crc, encode_block, parse_block, BlockError, DiskHeartbeat, HEADER_BYTES};
pub use reader::{read_slots, SlotReading, SlotReadings};
pub use tracker::{families, NodeView, Observation, SlotTracker, TrackerState};

use crate::collector::CollectError;
use crate::probe::{ProbeState, Prober};

/// What a slot-read probe yields.
pub type SlotsOutcome = Result<SlotReadings, CollectError>;

/// One region's slots to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRequest {
    pub device: PathBuf,
    pub start_block: u64,
    pub block_bytes: u32,
    pub nodes: Vec<u8>,
}

/// Every slot of a region with `blocks` slots (configfs `blocks`, 255 as the
/// tools write it): reading all of them is what finds nodes heartbeating in
/// slots the configuration does not know. 255 × 512 bytes is one 128 KiB read.
pub fn all_slots(blocks: u32) -> Vec<u8> {
    // Node 255 is O2NM_INVALID_NODE_NUM: never a slot.
    (0..blocks.min(255))
        .filter_map(|n| u8::try_from(n).ok())
        .collect()
}

/// Reads `request` on a deadline thread of `prober`, keyed by `key` (the
/// region UUID): a hung SAN costs one blocked thread per region, never the
/// sampler. A probe still running past its deadline is `Stuck` and no second
/// read starts for that region until it returns.
pub fn probe_slots(
    prober: &Prober<SlotsOutcome>,
    key: &str,
    deadline: Duration,
    request: SlotRequest,
) -> ProbeState<SlotsOutcome> {
    prober.run(key, deadline, move || {
        read_slots(
            &request.device,
            request.start_block,
            request.block_bytes,
            &request.nodes,
        )
    })
}

impl<'a> Observation<'a> {
    /// Anything but a finished, successful read is a failed observation.
    pub fn from_probe(state: &'a ProbeState<SlotsOutcome>) -> Self {
        match state {
            ProbeState::Done {
                value: Ok(readings),
                ..
            } => Observation::Slots(&readings.slots),
            _ => Observation::ReadFailed,
        }
    }
}
