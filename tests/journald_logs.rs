//! The daemon's log as journald receives it: stderr is a pipe, so no colour
//! escapes; a collector that keeps failing is logged when it starts failing
//! and when it recovers, not on every tick; the startup summary names the
//! version, configuration, state directory, mode and every collector's source.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

const HEARTBEAT_FILE: &str =
    "sys/kernel/debug/o2hb/DEA93192F0874F53BB5290B5205C6B64/elapsed_time_in_ms";

#[test]
fn a_failing_collector_logs_its_edges_in_plain_text() {
    let scratch = support::ScratchDir::new();
    let rootfs = scratch.path().join("rootfs");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/heartbeat-debugfs-garbage/rootfs");
    support::copy_tree(&fixture, &rootfs);
    let config = scratch.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[sampler]\ninterval = \"200ms\"\n",
            scratch.path().join("state").display()
        ),
    )
    .unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .arg("--config")
        .arg(&config)
        .arg("--path.rootfs")
        .arg(&rootfs)
        // Port 0: nothing here connects to it.
        .args(["--web.listen-address", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Many ticks failing (200 ms each), then the source is repaired.
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(rootfs.join(HEARTBEAT_FILE), "1500\n").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = daemon.wait().unwrap();
    let mut log = String::new();
    daemon
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "{status:?}\n{log}");

    assert!(
        !log.contains('\u{1b}'),
        "colour escapes reached a pipe:\n{log}"
    );
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Collector failed") && l.contains("collector=\"heartbeat\""))
        .collect();
    assert_eq!(failed.len(), 1, "one line when it starts failing:\n{log}");
    assert!(failed[0].contains("reason=\"parse\""), "{}", failed[0]);
    let recovered = log
        .lines()
        .filter(|l| l.contains("Collector recovered") && l.contains("collector=\"heartbeat\""))
        .count();
    assert_eq!(recovered, 1, "one line when it recovers:\n{log}");

    let start = log
        .lines()
        .find(|l| l.contains("Starting."))
        .unwrap_or_else(|| panic!("no startup line:\n{log}"));
    for field in [
        format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
        format!("config={}", config.display()),
        format!("state_dir={}", scratch.path().join("state").display()),
        "mode=\"dry_run\"".to_string(),
        "paused=false".to_string(),
    ] {
        assert!(start.contains(&field), "{field} missing from: {start}");
    }
    assert!(
        log.lines()
            .any(|l| l.contains("Not in cluster maintenance.")),
        "the maintenance state at start:\n{log}"
    );
    let sources: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Collector source."))
        .collect();
    assert_eq!(
        sources.len(),
        ocfs2_watchdog::collector::COLLECTORS.len(),
        "{log}"
    );
    assert!(
        sources.iter().any(|l| l.contains("collector=iscsi")
            && l.contains("source=\"absent\"")
            && l.contains("why=")),
        "{log}"
    );
    assert!(
        sources
            .iter()
            .any(|l| l.contains("collector=heartbeat") && l.contains("source=\"failed\"")),
        "{log}"
    );
}
