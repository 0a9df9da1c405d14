//! Collector-level tests on small trees: counters across ticks, absence.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::config::Config;
use crate::host::HostPaths;

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn context(root: &Path) -> Context {
    Context::new(
        HostPaths::new(root.to_path_buf(), None, None),
        Arc::new(Config::default()),
    )
}

fn sample(section: &Section, family: &str) -> Option<f64> {
    section
        .families
        .iter()
        .find(|f| f.name == family)
        .and_then(|f| f.samples.first())
        .map(|s| s.value)
}

/// A multipath map with one slave, whose counters the test rewrites.
fn map_tree(root: &Path) {
    write(root, "sys/block/dm-0/dm/uuid", "mpath-3600\n");
    write(root, "sys/block/dm-0/dm/name", "mpatha\n");
    write(root, "sys/block/dm-0/slaves/sdb/dev", "8:16\n");
    write(root, "sys/class/block/sdb/device/state", "running\n");
}

#[test]
fn counters_accumulate_across_a_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    map_tree(root);
    let ctx = context(root);
    write(
        root,
        "sys/class/block/sdb/device/iorequest_cnt",
        "0xfffffff0\n",
    );
    write(root, "sys/class/block/sdb/device/ioerr_cnt", "0x2\n");
    let first = Storage.collect(&ctx, None).unwrap();
    assert_eq!(
        sample(&first, "ocfs2_scsi_device_io_requests"),
        Some(4294967280.0)
    );
    write(root, "sys/class/block/sdb/device/iorequest_cnt", "0x10\n");
    // Garbage this tick: the counter is skipped, not reset.
    write(root, "sys/class/block/sdb/device/ioerr_cnt", "garbage\n");
    let second = Storage.collect(&ctx, Some(&first)).unwrap();
    assert_eq!(
        sample(&second, "ocfs2_scsi_device_io_requests"),
        Some(4294967280.0 + 32.0)
    );
    assert_eq!(sample(&second, "ocfs2_scsi_device_io_errors"), None);
    assert_eq!(sample(&second, "ocfs2_scsi_device_running"), Some(1.0));
    // Path state falls back to the SCSI state without dmsetup.
    assert_eq!(sample(&second, "ocfs2_multipath_path_active"), Some(1.0));
}

#[test]
fn nothing_to_report_is_absent_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path());
    let iscsi = Iscsi.collect(&ctx, None).unwrap();
    assert!(iscsi.absent.as_deref().unwrap().contains("iscsi_session"));
    let storage = Storage.collect(&ctx, None).unwrap();
    assert!(storage.absent.is_some());
    std::fs::create_dir_all(dir.path().join("sys/class/iscsi_session")).unwrap();
    assert_eq!(
        Iscsi.collect(&ctx, None).unwrap().absent.as_deref(),
        Some("no iSCSI sessions")
    );
}

#[test]
fn queue_forever_is_flagged_not_infinite() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    map_tree(root);
    write(
        root,
        "etc/multipath.conf",
        "defaults {\n no_path_retry queue\n}\n",
    );
    write(
        root,
        "sys/kernel/config/cluster/c/heartbeat/dead_threshold",
        "61\n",
    );
    let section = Storage.collect(&context(root), None).unwrap();
    assert_eq!(
        sample(&section, "ocfs2_multipath_queue_timeout_seconds"),
        None
    );
    assert_eq!(sample(&section, "ocfs2_multipath_queue_forever"), Some(1.0));
    assert_eq!(
        sample(&section, "ocfs2_timeout_invariant_violated"),
        Some(1.0)
    );
    let text = crate::metrics::encode(crate::metrics::normalize(section.families));
    // prometheus-client prints infinity as `inf`, which OpenMetrics rejects.
    assert!(!text.contains("inf\n"), "{text}");
}

/// With the host's dmsetup (only on the host root, so in no fixture), a map
/// whose paths all failed and that queues I/O says so: `map_queueing` 1 and
/// the failed paths from the map status, not the SCSI states.
#[test]
fn dmsetup_status_drives_queueing_and_path_states() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    map_tree(root);
    let map = multipath::read_maps(&HostPaths::new(root.to_path_buf(), None, None))
        .pop()
        .expect("the map of map_tree");
    // drivers/md/dm-mpath.c multipath_status: `2 <queue_io> <pg_init_count>`
    // with queue_io 1, one group, its only path (8:16) failed twice.
    let statuses = multipath::parse_dmsetup_status(
        "mpatha: 0 2097152 multipath 2 1 0 0 1 1 A 0 1 0 8:16 F 2\n",
    );
    let disks = vec![scsi::read_disk(
        &HostPaths::new(root.to_path_buf(), None, None),
        "sdb",
        None,
    )];
    let view = map_view(
        &HostPaths::new(root.to_path_buf(), None, None),
        map,
        &statuses,
        &disks,
        &mpconf::MultipathConf::default(),
    );
    let facts = StorageFacts {
        disks,
        maps: vec![view],
        ..StorageFacts::default()
    };
    let text = crate::metrics::encode(crate::metrics::normalize(families::storage(&facts)));
    for line in [
        "ocfs2_multipath_map_queueing{map=\"mpatha\"} 1",
        "ocfs2_multipath_path_active{map=\"mpatha\",device=\"/dev/sdb\"} 0",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}
