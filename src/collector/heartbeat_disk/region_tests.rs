//! A heartbeat region laid out as the kernel lays it out, written by a test
//! writer that follows the on-disk format (seq = wall-clock seconds, correct
//! CRC), read back through `read_slots`: in a plain file, on ramfs (no
//! O_DIRECT) and, as root, on a loop device with real O_DIRECT reads.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::reader::AlignedBlocks;
use super::*;
use crate::probe::{ProbePool, Prober};

/// The lab's geometry (n1-02 configfs: start_block 2184, 512-byte sectors).
const START_BLOCK: u64 = 2184;
const BLOCK_BYTES: u32 = 512;
const BLOCKS: u32 = 255;
const DEAD_MS: u32 = 14_000;
const CONFIGURED: &[u8] = &[1, 2, 3, 4];
const LIVE: u8 = 1;
const STOPS_WRITING: u8 = 2;
const BAD_CRC: u8 = 3;
const CLEAN_STOP: u8 = 4;
const UNKNOWN: u8 = 7;

/// Writes slots the way `o2hb_prepare_block` + a bio to the bdev do.
struct TestWriter {
    file: File,
}

impl TestWriter {
    fn create(path: &Path) -> Self {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let region_end = (START_BLOCK + u64::from(BLOCKS)) * u64::from(BLOCK_BYTES);
        if file.metadata().unwrap().len() < region_end {
            file.set_len(region_end).unwrap();
        }
        Self { file }
    }

    /// Writes through O_DIRECT when the target allows it (a block device).
    fn open_device(path: &Path) -> Self {
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .unwrap();
        Self { file }
    }

    fn write_block(&self, node: u8, block: &[u8]) {
        let mut aligned = AlignedBlocks::zeroed(block.len());
        aligned.as_mut_bytes().copy_from_slice(block);
        let offset = (START_BLOCK + u64::from(node)) * u64::from(BLOCK_BYTES);
        self.file.write_all_at(aligned.as_bytes(), offset).unwrap();
    }

    fn heartbeat(&self, node: u8, seq: u64, generation: u64) {
        let block = encode_block(BLOCK_BYTES as usize, seq, node, generation, DEAD_MS);
        self.write_block(node, &block);
    }

    fn corrupt(&self, node: u8, seq: u64) {
        let mut block = encode_block(BLOCK_BYTES as usize, seq, node, 0xbad, DEAD_MS);
        block[12] ^= 0xff;
        self.write_block(node, &block);
    }
}

fn wall_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn read(device: &Path) -> SlotReadings {
    read_slots(device, START_BLOCK, BLOCK_BYTES, &all_slots(BLOCKS)).unwrap()
}

/// Drives the writer through three ticks with explicit clocks (no sleeping)
/// and checks what the tracker makes of the region read back from `device`.
fn run_scenario(writer: &TestWriter, device: &Path, expect_direct: bool) {
    let start = SystemTime::now();
    let tick = |seconds: u64| start + Duration::from_secs(seconds);
    let tracker = SlotTracker {
        configured: CONFIGURED,
    };
    let seq0 = wall_seconds(start);

    writer.heartbeat(LIVE, seq0, 0x1e87_d3af_a515_340e);
    writer.heartbeat(STOPS_WRITING, seq0, 0x2804_b6c0_b007_28fe);
    writer.heartbeat(BAD_CRC, seq0, 0x33);
    writer.heartbeat(CLEAN_STOP, seq0, 0x44);
    writer.heartbeat(UNKNOWN, seq0, 0x77);
    let first = read(device);
    assert_eq!(first.direct_io, expect_direct);
    assert_eq!(first.slots.len(), 255);
    let s0 = tracker.observe(None, Observation::Slots(&first.slots), tick(0));

    // Two seconds on: everybody writes, node 3's block is torn, node 4 leaves.
    writer.heartbeat(LIVE, seq0 + 2, 0x1e87_d3af_a515_340e);
    writer.heartbeat(STOPS_WRITING, seq0 + 2, 0x2804_b6c0_b007_28fe);
    writer.corrupt(BAD_CRC, seq0 + 2);
    writer.heartbeat(CLEAN_STOP, seq0 + 2, 0);
    writer.heartbeat(UNKNOWN, seq0 + 2, 0x77);
    let s1 = tracker.observe(Some(&s0), Observation::Slots(&read(device).slots), tick(2));
    assert!(s1.node(STOPS_WRITING).unwrap().active);
    assert!(s1.node(UNKNOWN).unwrap().active);

    // Thirty seconds on: node 2 stopped writing, node 3 still torn.
    writer.heartbeat(LIVE, seq0 + 30, 0x1e87_d3af_a515_340e);
    writer.heartbeat(UNKNOWN, seq0 + 30, 0x77);
    let s2 = tracker.observe(Some(&s1), Observation::Slots(&read(device).slots), tick(30));

    let live = s2.node(LIVE).unwrap();
    assert_eq!(
        (live.seq, live.seq_age_seconds, live.active),
        (seq0 + 30, 0.0, true)
    );
    let stopped_writing = s2.node(STOPS_WRITING).unwrap();
    assert_eq!(stopped_writing.seq, seq0 + 2);
    assert_eq!(stopped_writing.seq_age_seconds, 28.0);
    assert!(!stopped_writing.active);
    let bad = s2.node(BAD_CRC).unwrap();
    assert_eq!(bad.checksum_failures, 2);
    assert_eq!(bad.seq_age_seconds, 30.0);
    let clean = s2.node(CLEAN_STOP).unwrap();
    assert!(clean.stopped() && !clean.active);
    assert_eq!(s2.read_errors, 0);

    let text = crate::metrics::encode(crate::metrics::normalize(families(&s2, "REGION")));
    for line in [
        "ocfs2_heartbeat_disk_seq_age_seconds{hb_region=\"REGION\",node_num=\"2\"} 28.0",
        "ocfs2_heartbeat_disk_checksum_failures_total{hb_region=\"REGION\",node_num=\"3\"} 2",
        "ocfs2_heartbeat_disk_stopped{hb_region=\"REGION\",node_num=\"4\"} 1.0",
        "ocfs2_heartbeat_disk_generation{hb_region=\"REGION\",node_num=\"4\"} 0.0",
        "ocfs2_heartbeat_disk_unknown_node{hb_region=\"REGION\",node_num=\"7\"} 1.0",
        "ocfs2_heartbeat_disk_read_errors_total{hb_region=\"REGION\"} 0",
        "ocfs2_heartbeat_disk_dead_seconds{hb_region=\"REGION\",node_num=\"1\"} 14.0",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(
        !text.contains("node_num=\"0\""),
        "untouched slots stay silent"
    );
}

#[test]
fn region_in_a_plain_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hb.img");
    let writer = TestWriter::create(&path);
    // ext4/xfs honour O_DIRECT on files; other file systems fall back.
    let direct = super::reader::open_for_read(&path).unwrap().1;
    run_scenario(&writer, &path, direct);
}

/// ramfs has no direct I/O (tmpfs has had it since Linux 6.6): opening with
/// O_DIRECT fails with EINVAL and the reader must fall back to buffered
/// reads. The ramfs is mounted in a mount namespace of this test's own
/// thread, so it disappears with the thread whatever happens.
#[test]
fn ramfs_refuses_o_direct_and_falls_back() {
    use nix::mount::{mount, MsFlags};
    if !crate::test_ci::require(
        nix::unistd::geteuid().is_root(),
        "root (a ramfs mount in a private mount namespace)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mountpoint = dir.path().to_path_buf();
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .expect("making / private in the test's namespace");
        mount(
            Some("ramfs"),
            &mountpoint,
            Some("ramfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .expect("mounting ramfs");
        let path = mountpoint.join("hb.img");
        let writer = TestWriter::create(&path);
        assert!(
            !super::reader::open_for_read(&path).unwrap().1,
            "ramfs accepted O_DIRECT"
        );
        run_scenario(&writer, &path, false);
    })
    .join()
    .expect("the ramfs scenario failed");
}

#[test]
fn file_systems_refusing_o_direct_get_a_buffered_read() {
    // procfs has no direct I/O: the kernel refuses O_DIRECT at open (EINVAL).
    let (_, direct) = super::reader::open_for_read(Path::new("/proc/version")).unwrap();
    assert!(!direct);
}

#[test]
fn slots_past_the_device_end_are_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.img");
    // Room for slots 0..=2 only.
    File::create(&path)
        .unwrap()
        .set_len((START_BLOCK + 3) * u64::from(BLOCK_BYTES))
        .unwrap();
    let readings = read_slots(&path, START_BLOCK, BLOCK_BYTES, &[5, 2, 2]).unwrap();
    assert_eq!(readings.slots.len(), 2);
    assert_eq!(readings.slots[0].0, 2);
    assert!(readings.slots[0].1.as_ref().unwrap().is_empty());
    assert_eq!(
        readings.slots[1],
        (5, Err(BlockError::Truncated { len: 0 }))
    );
}

#[test]
fn probe_slots_reads_on_a_deadline_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hb.img");
    let writer = TestWriter::create(&path);
    writer.heartbeat(1, 1_700_000_000, 9);
    let prober: Prober<SlotsOutcome> = Prober::new("heartbeat-disk", ProbePool::new(2));
    let request = SlotRequest {
        device: path.clone(),
        start_block: START_BLOCK,
        block_bytes: BLOCK_BYTES,
        nodes: vec![0, 1],
    };
    let state = probe_slots(&prober, "REGION", Duration::from_secs(10), request.clone());
    let Observation::Slots(slots) = Observation::from_probe(&state) else {
        panic!("{state:?}");
    };
    assert_eq!(slots[1].1.as_ref().unwrap().seq, 1_700_000_000);
    let missing = SlotRequest {
        device: dir.path().join("gone"),
        ..request
    };
    let state = probe_slots(&prober, "REGION", Duration::from_secs(10), missing);
    assert!(matches!(
        Observation::from_probe(&state),
        Observation::ReadFailed
    ));
}

/// A loop device detached on drop, so a failing assertion never leaks it.
struct LoopDevice(PathBuf);

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

#[test]
fn region_on_a_loop_device_with_o_direct() {
    if !crate::test_ci::require(nix::unistd::geteuid().is_root(), "root (a loop device)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("hb.img");
    TestWriter::create(&image);
    let attached = match Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&image)
        .output()
    {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            let reason = String::from_utf8_lossy(&out.stderr).into_owned();
            crate::test_ci::require(false, &format!("losetup working ({reason})"));
            return;
        }
        Err(e) => {
            crate::test_ci::require(false, &format!("losetup ({e})"));
            return;
        }
    };
    let device = LoopDevice(PathBuf::from(
        String::from_utf8_lossy(&attached.stdout).trim(),
    ));
    let writer = TestWriter::open_device(&device.0);
    run_scenario(&writer, &device.0, true);
    // Cost of one tick's read, printed for the record (`-- --nocapture`).
    let started = std::time::Instant::now();
    read(&device.0);
    let read_and_parse = started.elapsed();
    let started = std::time::Instant::now();
    let zero = [0u8; BLOCK_BYTES as usize];
    let crc_sum: u32 = (0..BLOCKS).map(|_| compute_crc(&zero)).sum();
    println!(
        "255 slots via O_DIRECT from {}: {read_and_parse:?} read+parse, {:?} of it CRC ({crc_sum})",
        device.0.display(),
        started.elapsed()
    );
}
