//! A broken debugfs file fails only the collector that reads it: success 0
//! with a reason, every other collector unaffected. Runs on a copy of the
//! cluster-mounted-n1 fixture with one file broken per case. EACCES cannot be
//! produced by chmod as root, so a directory stands where the file is
//! expected (EISDIR, reason `io`); the EACCES→`permission_denied` mapping is
//! `CollectError::io`'s.

mod support;

use std::path::Path;
use std::sync::Arc;

use ocfs2_watchdog::collector::{CollectError, Context, ErrorKind};
use ocfs2_watchdog::config::Config;
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::sampler::Sampler;

const REGION: &str = "sys/kernel/debug/o2hb/DEA93192F0874F53BB5290B5205C6B64";

enum Break {
    Missing,
    Empty,
    Garbage,
    Directory,
}

fn run_broken(file: &str, how: Break) -> String {
    let dir = tempfile::tempdir().unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster-mounted-n1/rootfs");
    support::copy_tree(&fixture, dir.path());
    let path = dir.path().join(file);
    std::fs::remove_file(&path).unwrap();
    match how {
        Break::Missing => {}
        Break::Empty => std::fs::write(&path, "").unwrap(),
        Break::Garbage => std::fs::write(&path, "garbage\n").unwrap(),
        Break::Directory => std::fs::create_dir(&path).unwrap(),
    }
    let config = Arc::new(Config::default());
    let paths = HostPaths::new(dir.path().to_path_buf(), None, None);
    let mut sampler = Sampler::new(Arc::new(Context::new(paths, Arc::clone(&config))));
    let snapshot = sampler.tick(config.sampler.collector_timeout);
    snapshot.rendered().to_string()
}

fn assert_only_failed(text: &str, failed: &str, reason: &str) {
    for collector in ["mounts", "o2cb", "heartbeat", "net", "dlm"] {
        let value = if collector == failed { "0.0" } else { "1.0" };
        let line = format!("ocfs2_watchdog_collector_success{{collector=\"{collector}\"}} {value}");
        assert!(text.contains(&line), "expected {line} in\n{text}");
    }
    let error =
        format!("ocfs2_watchdog_collector_error{{collector=\"{failed}\",reason=\"{reason}\"}} 1");
    assert!(text.contains(&error), "expected {error} in\n{text}");
}

#[test]
fn each_broken_debugfs_file_fails_its_own_collector_only() {
    let cases = [
        (
            format!("{REGION}/elapsed_time_in_ms"),
            Break::Missing,
            "heartbeat",
            "not_found",
        ),
        (
            format!("{REGION}/livenodes"),
            Break::Empty,
            "heartbeat",
            "parse",
        ),
        (
            format!("{REGION}/pinned"),
            Break::Garbage,
            "heartbeat",
            "parse",
        ),
        (format!("{REGION}/num"), Break::Directory, "heartbeat", "io"),
        (
            "sys/kernel/debug/o2net/connected_nodes".into(),
            Break::Empty,
            "net",
            "parse",
        ),
        (
            "sys/kernel/debug/o2net/sock_containers".into(),
            Break::Garbage,
            "net",
            "parse",
        ),
        (
            "sys/kernel/debug/o2net/connected_nodes".into(),
            Break::Directory,
            "net",
            "io",
        ),
        (
            "sys/kernel/debug/o2dlm/DEA93192F0874F53BB5290B5205C6B64/dlm_state".into(),
            Break::Missing,
            "dlm",
            "not_found",
        ),
        (
            "sys/kernel/debug/o2dlm/DEA93192F0874F53BB5290B5205C6B64/dlm_state".into(),
            Break::Garbage,
            "dlm",
            "parse",
        ),
    ];
    for (file, how, collector, reason) in cases {
        let text = run_broken(&file, how);
        assert_only_failed(&text, collector, reason);
    }
}

#[test]
fn permission_denied_maps_to_its_reason() {
    let error = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    let mapped = CollectError::io(Path::new("/sys/kernel/debug/o2hb/livenodes"), &error);
    assert_eq!(mapped.kind, ErrorKind::PermissionDenied);
}
