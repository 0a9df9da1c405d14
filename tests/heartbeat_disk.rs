//! The heartbeat collector's disk view across ticks, on a copy of the
//! `cluster-mounted-n1` fixture whose `dev/vda` holds the captured slots:
//! a node whose on-disk sequence advances is active, one whose slot stops
//! changing ages, and a torn block is counted, not trusted.

mod support;

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ocfs2_watchdog::collector::heartbeat_disk::encode_block;
use ocfs2_watchdog::collector::Context;
use ocfs2_watchdog::config::Config;
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::sampler::Sampler;

const START_BLOCK: u64 = 2184;
const BLOCK_BYTES: u64 = 512;
const SEQ: u64 = 0x6b01_7fb3;

fn write_slot(device: &Path, slot: u64, block: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(device)
        .unwrap();
    file.seek(SeekFrom::Start((START_BLOCK + slot) * BLOCK_BYTES))
        .unwrap();
    file.write_all(block).unwrap();
    file.sync_all().unwrap();
}

#[test]
fn advancing_and_stopped_writers_are_told_apart() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster-mounted-n1");
    let dir = tempfile::tempdir().unwrap();
    support::copy_tree(&fixture, dir.path());
    let root = dir.path().join("rootfs");
    let device = root.join("dev/vda");
    let config = Arc::new(Config::default());
    let ctx = Context::new(
        HostPaths::new(root.clone(), None, None),
        Arc::clone(&config),
    );
    let mut sampler = Sampler::new(Arc::new(ctx));
    let region = "DEA93192F0874F53BB5290B5205C6B64";
    let series =
        |family: &str, node: u8| format!("{family}{{hb_region=\"{region}\",node_num=\"{node}\"}}");

    let first = sampler.tick(config.sampler.collector_timeout);
    let text = first.rendered_text().to_string();
    assert!(first.collectors["heartbeat"].0.success);
    assert_eq!(
        support::samples::require_value(
            &text,
            &series("ocfs2_heartbeat_disk_seq_timestamp_seconds", 1)
        ),
        SEQ as f64
    );
    assert_eq!(support::samples::require_value(&text, "ocfs2_heartbeat_disk_read_errors_total{hb_region=\"DEA93192F0874F53BB5290B5205C6B64\"}"), 0.0);

    // Node 1 keeps writing (seq advances, correct checksum); node 2 stops.
    std::thread::sleep(Duration::from_millis(1100));
    write_slot(
        &device,
        1,
        &encode_block(512, SEQ + 2, 1, 0x1e87_d3af_a515_340e, 14000),
    );
    let second = sampler.tick(config.sampler.collector_timeout);
    let text = second.rendered_text().to_string();
    assert_eq!(
        support::samples::require_value(&text, &series("ocfs2_heartbeat_disk_active", 1)),
        1.0
    );
    assert!(
        support::samples::require_value(&text, &series("ocfs2_heartbeat_disk_seq_age_seconds", 1))
            < 0.5
    );
    assert_eq!(
        support::samples::require_value(&text, &series("ocfs2_heartbeat_disk_active", 2)),
        0.0
    );
    assert!(
        support::samples::require_value(&text, &series("ocfs2_heartbeat_disk_seq_age_seconds", 2))
            >= 1.0
    );

    // A torn write in node 1's slot: counted, and the last good seq is kept.
    let mut torn = encode_block(512, SEQ + 4, 1, 0x1e87_d3af_a515_340e, 14000);
    torn[100] ^= 0xff;
    write_slot(&device, 1, &torn);
    let third = sampler.tick(config.sampler.collector_timeout);
    let text = third.rendered_text().to_string();
    assert_eq!(
        support::samples::require_value(
            &text,
            &series("ocfs2_heartbeat_disk_checksum_failures_total", 1)
        ),
        1.0
    );
    assert_eq!(
        support::samples::require_value(
            &text,
            &series("ocfs2_heartbeat_disk_seq_timestamp_seconds", 1)
        ),
        (SEQ + 2) as f64
    );

    // An unknown node starts heartbeating in slot 7, twice.
    write_slot(&device, 7, &encode_block(512, SEQ + 4, 7, 0x42, 14000));
    sampler.tick(config.sampler.collector_timeout);
    write_slot(&device, 7, &encode_block(512, SEQ + 6, 7, 0x42, 14000));
    let fifth = sampler.tick(config.sampler.collector_timeout);
    let text = fifth.rendered_text().to_string();
    assert_eq!(
        support::samples::require_value(&text, &series("ocfs2_heartbeat_disk_unknown_node", 7)),
        1.0
    );
}
