//! Reads heartbeat slots from the region's block device with O_DIRECT.
//!
//! The page cache would hand back what this node read earlier, not what the
//! peers wrote since, so the read must bypass it (as the kernel's bios and
//! libocfs2 do). O_DIRECT wants the buffer, offset and length aligned to the
//! device's logical sector size, which configfs `block_bytes` equals (the
//! kernel checks it when the region starts). One read covers the span from
//! the lowest to the highest requested slot: one I/O per tick, not one per
//! node. A read can block for as long as the SAN hangs: call it through
//! `probe_slots` (a deadline probe), never directly on the sampler thread.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use serde::Serialize;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::block::{parse_block, BlockError, DiskHeartbeat};
use crate::collector::CollectError;

/// Page alignment satisfies every logical sector size (512–4096).
const PAGE_BYTES: usize = 4096;
const MIN_BLOCK_BYTES: u32 = 512;
const MAX_BLOCK_BYTES: u32 = 4096;

/// One slot's reading, by node number (= slot index).
pub type SlotReading = (u8, Result<DiskHeartbeat, BlockError>);

/// What one read of a region returned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotReadings {
    /// Requested slots in ascending node order, duplicates removed.
    pub slots: Vec<SlotReading>,
    /// False when the file system refused O_DIRECT (EINVAL at open, e.g.
    /// ramfs) and the slots came through the page cache: never on a real
    /// block device, where the data could then be stale.
    pub direct_io: bool,
}

/// Reads slot N at byte `(start_block + N) × block_bytes` for every N in
/// `nodes`. Errors are whole-read failures (open, I/O, bad geometry); a slot
/// past the end of the device is a per-slot `BlockError::Truncated`.
pub fn read_slots(
    device: &Path,
    start_block: u64,
    block_bytes: u32,
    nodes: &[u8],
) -> Result<SlotReadings, CollectError> {
    if !block_bytes.is_power_of_two() || !(MIN_BLOCK_BYTES..=MAX_BLOCK_BYTES).contains(&block_bytes)
    {
        return Err(CollectError::parse(
            device,
            format!("block_bytes {block_bytes} is not a power of two from 512 to 4096"),
        ));
    }
    let mut wanted: Vec<u8> = nodes.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let (Some(&lowest), Some(&highest)) = (wanted.first(), wanted.last()) else {
        return Ok(SlotReadings {
            slots: Vec::new(),
            direct_io: true,
        });
    };
    let slot_bytes = block_bytes as usize;
    let span_bytes = (usize::from(highest - lowest) + 1) * slot_bytes;
    let offset = start_block
        .checked_add(u64::from(lowest))
        .and_then(|block| block.checked_mul(u64::from(block_bytes)))
        .ok_or_else(|| {
            CollectError::parse(device, format!("start_block {start_block} is out of range"))
        })?;

    let (file, direct_io) = open_for_read(device)?;
    let mut buffer = AlignedBlocks::zeroed(span_bytes);
    let filled = read_fully(&file, buffer.as_mut_bytes(), offset)
        .map_err(|e| CollectError::io(device, &e))?;
    let data = &buffer.as_bytes()[..filled];

    let slots = wanted
        .iter()
        .map(|&node| {
            let start = usize::from(node - lowest) * slot_bytes;
            let end = (start + slot_bytes).min(data.len());
            let block = data.get(start..end).unwrap_or(&[]);
            (node, parse_block(block))
        })
        .collect();
    Ok(SlotReadings { slots, direct_io })
}

/// Opens with O_DIRECT; only a file system that refuses it outright (EINVAL
/// at open, e.g. ramfs) gets a buffered open instead.
pub(crate) fn open_for_read(device: &Path) -> Result<(File, bool), CollectError> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(device)
    {
        Ok(file) => Ok((file, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::warn!(
                device = %device.display(),
                error = %e,
                "O_DIRECT refused; reading through the page cache."
            );
            let file = File::open(device).map_err(|e| CollectError::io(device, &e))?;
            Ok((file, false))
        }
        Err(e) => Err(CollectError::io(device, &e)),
    }
}

/// Reads until `buffer` is full or the device ends; returns the bytes read.
/// Partial reads keep the offset aligned because they end on sector bounds.
pub(crate) fn read_fully(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// One page, aligned for O_DIRECT on any logical sector size (512–4096).
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(4096))]
struct Page([u8; PAGE_BYTES]);

/// A zeroed buffer of `len` bytes at the start of whole pages: its address is
/// page-aligned because its pages are, so O_DIRECT accepts it, and the byte
/// view comes from zerocopy, not from pointer arithmetic of our own.
pub(crate) struct AlignedBlocks {
    pages: Vec<Page>,
    len: usize,
}

impl AlignedBlocks {
    pub(crate) fn zeroed(len: usize) -> Self {
        Self {
            pages: vec![Page([0; PAGE_BYTES]); len.div_ceil(PAGE_BYTES)],
            len,
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.pages.as_bytes()[..self.len]
    }

    pub(crate) fn as_mut_bytes(&mut self) -> &mut [u8] {
        &mut self.pages.as_mut_bytes()[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::ErrorKind;

    #[test]
    fn aligned_buffer_is_aligned_and_zeroed() {
        for len in [512, 4096, 8192, 255 * 4096, 3 * 512] {
            let mut buffer = AlignedBlocks::zeroed(len);
            assert_eq!(buffer.as_bytes().len(), len);
            assert_eq!(buffer.as_bytes().as_ptr() as usize % PAGE_BYTES, 0);
            assert!(buffer.as_bytes().iter().all(|&b| b == 0));
            buffer.as_mut_bytes()[len - 1] = 7;
            assert_eq!(buffer.as_bytes()[len - 1], 7);
        }
        assert!(AlignedBlocks::zeroed(0).as_bytes().is_empty());
    }

    #[test]
    fn bad_geometry_and_missing_device_are_errors() {
        let missing = Path::new("/nonexistent/ocfs2-watchdog-hb");
        for block_bytes in [0, 256, 1000, 8192] {
            let error = read_slots(missing, 1, block_bytes, &[0]).unwrap_err();
            assert_eq!(error.kind, ErrorKind::Parse, "{block_bytes}");
        }
        let error = read_slots(missing, u64::MAX, 512, &[1]).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Parse);
        let error = read_slots(missing, 1, 512, &[1]).unwrap_err();
        assert_eq!(error.kind, ErrorKind::NotFound);
        let none = read_slots(missing, 1, 512, &[]).unwrap();
        assert!(none.slots.is_empty());
    }
}
