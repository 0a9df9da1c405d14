//! Every peer's heartbeat as the shared disk shows it: the only view of a
//! peer's liveness that does not depend on the interconnect.
//!
//! Reads the heartbeat region's slots straight from its block device: slot N
//! (one `struct o2hb_disk_heartbeat_block` per node, fs/ocfs2/cluster/
//! ocfs2_heartbeat.h) at byte `(start_block + N) × block_bytes`, with the
//! geometry from configfs `/sys/kernel/config/cluster/<cluster>/heartbeat/
//! <REGION>/{dev,start_block,block_bytes,blocks}` (docs/interfaces.md §1.4, §5.8).
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
//! heartbeat_disk::push_families(&now_state, &region, &mut disk_families);
//! ```

mod block;
#[cfg(test)]
mod block_props;
mod reader;
mod tracker;

#[cfg(test)]
mod region_tests;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

pub use block::{compute_crc, encode_block, parse_block, BlockError, DiskHeartbeat, HEADER_BYTES};
pub(crate) use reader::{open_for_read, read_fully, AlignedBlocks};
pub use reader::{read_slots, SlotReading, SlotReadings};
pub use tracker::{
    families, push_families, DiskFamily, NodeView, Observation, SlotTracker, TrackerState,
};

use crate::collector::configfs::RegionConfig;
use crate::collector::{CollectError, Context};
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

/// One tick of the disk view of `region`, as the heartbeat collector calls it.
///
/// Returns `None` when the region's geometry is not in configfs yet (heartbeat
/// not started). The read is waited for at most `wait`: a read still running
/// within its deadline leaves the previous state as it was (no observation
/// this tick), one past its deadline counts as a failed read, and the
/// debugfs view of the same tick is never delayed by a slow SAN.
pub fn observe_region(
    ctx: &Context,
    region: &RegionConfig,
    configured: &[u8],
    previous: Option<&TrackerState>,
    wait: Duration,
) -> Option<TrackerState> {
    let (Some(dev), Some(start_block), Some(block_bytes), Some(blocks)) = (
        region.dev.as_deref(),
        region.start_block,
        region.block_bytes,
        region.blocks,
    ) else {
        return None;
    };
    let deadline = ctx.config.heartbeat.disk_probe_timeout;
    let device = ctx.paths.root("/dev").join(dev);
    let nodes = all_slots(blocks);
    let started = Instant::now();
    let probes = &ctx.heartbeat_disk_probes;
    if !probes.start(&region.uuid, deadline, move || {
        read_slots(&device, start_block, block_bytes, &nodes)
    }) {
        tracing::warn!(hb_region = %region.uuid, "No probe thread available; heartbeat slots not read.");
    }
    let state = probes.wait(
        &region.uuid,
        crate::input::saturating_instant(started, wait.min(deadline)),
    );
    if matches!(state, ProbeState::Pending { .. }) {
        return Some(previous.cloned().unwrap_or_default());
    }
    if let ProbeState::Done {
        value: Err(error), ..
    } = &state
    {
        tracing::warn!(hb_region = %region.uuid, error = %error, "Cannot read the heartbeat slots.");
    }
    let tracker = SlotTracker { configured };
    Some(tracker.observe(previous, Observation::from_probe(&state), SystemTime::now()))
}
