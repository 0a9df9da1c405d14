//! Cluster maintenance mode: the engine skips every action as
//! `skipped_maintenance` while it is on, and a running `tunefs.ocfs2` holds
//! what touches the stack; the real daemon takes `ocfs2-watchdog
//! maintenance on|off|status` from its CLI with the admin token, keeps it
//! across a restart, exports it and audits who set it.

mod engine_fixture;
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use engine_fixture::{count, fixture};
use ocfs2_watchdog::actions::Outcome;
use ocfs2_watchdog::cluster::Maintenance;
use ocfs2_watchdog::host::HostPaths;
use support::http_get;

#[test]
fn maintenance_skips_every_action_until_it_is_off() {
    let mut f = fixture(Outcome::Success("done".into()), |_| {});
    let maintenance = Arc::new(Maintenance::open(
        &f.config.state_dir.0,
        "n1",
        f.control.audit(),
    ));
    let paths = HostPaths::new(f.dir.path().join("root"), None, None);
    f.engine
        .set_cluster_maintenance(Arc::clone(&maintenance), paths);
    maintenance
        .set_on("online resize", None, "operator", SystemTime::now())
        .unwrap();
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    f.engine.tick(&snapshot, t0);
    let report = f.engine.tick(&snapshot, t0 + Duration::from_secs(10));
    assert_eq!(f.calls(), 0);
    assert_eq!(count(&report, "skipped_maintenance"), 3);
    assert_eq!(
        report.maintenance.as_ref().map(|m| m.reason.as_str()),
        Some("online resize")
    );
    let text = engine_fixture::snapshot_with(report)
        .rendered_text()
        .to_string();
    assert!(text.contains("ocfs2_watchdog_maintenance 1"), "{text}");
    assert!(
        text.contains("ocfs2_watchdog_maintenance_info{reason=\"online resize\",node=\"n1\",set_by=\"operator\""),
        "{text}"
    );
    maintenance.set_off("operator", SystemTime::now()).unwrap();
    let report = f.engine.tick(&snapshot, t0 + Duration::from_secs(11));
    assert_eq!(f.calls(), 3);
    assert_eq!(report.maintenance, None);
}

#[test]
fn a_running_ocfs2_tool_holds_unmounts() {
    let mut f = fixture(Outcome::Success("done".into()), |_| {});
    let root = f.dir.path().join("root");
    let maintenance = Arc::new(Maintenance::open(
        &f.config.state_dir.0,
        "n1",
        f.control.audit(),
    ));
    f.engine
        .set_cluster_maintenance(maintenance, HostPaths::new(root.clone(), None, None));
    std::fs::create_dir_all(root.join("proc/77")).unwrap();
    std::fs::write(root.join("proc/77/cmdline"), "fsck.ocfs2\0-fy\0/dev/sdb\0").unwrap();
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    f.engine.tick(&snapshot, t0);
    f.engine.tick(&snapshot, t0 + Duration::from_secs(10));
    assert_eq!(f.calls(), 0);
    let audit = f.audit();
    let skip = audit
        .iter()
        .find(|r| r.outcome.as_str() == "skipped_maintenance")
        .expect("audited");
    assert!(
        skip.detail
            .as_deref()
            .unwrap()
            .contains("fsck.ocfs2 -fy /dev/sdb (pid 77)"),
        "{skip:?}"
    );
    std::fs::remove_dir_all(root.join("proc/77")).unwrap();
    f.engine.tick(&snapshot, t0 + Duration::from_secs(11));
    assert_eq!(f.calls(), 3);
}

/// Admin tokens must be 32 bytes or more in a file only root can read.
fn write_token(file: &Path, token: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// No `admin_listen`: the control routes are on the default admin socket
/// under the scratch state dir, which the CLI finds from the same config.
fn write_config(dir: &Path) -> std::path::PathBuf {
    write_token(&dir.join("token"), "s3cret-s3cret-s3cret-s3cret-s3cret");
    let config = format!(
        r#"state_dir = "{state}"
[sampler]
interval = "300ms"
[mounts]
fstypes = ["tmpfs"]
use_fstab = false
[kernel_log]
enabled = false
[web]
admin_token_file = "{token}"
"#,
        state = dir.join("state").display(),
        token = dir.join("token").display(),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// The daemon on a port from the OS, ready; with the address it bound.
fn start(config: &Path) -> (Child, String) {
    let (child, address) = support::listen::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .args(["--config", config.to_str().unwrap()])
            .stdout(Stdio::null()),
    );
    let started = Instant::now();
    while !http_get(&address, "/readyz").is_ok_and(|r| r.0 == 200) {
        assert!(started.elapsed() < Duration::from_secs(20), "not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, address)
}

fn cli(config: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .args(["--config", config.to_str().unwrap(), "maintenance"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn wait_metric(address: &str, line: &str) {
    let started = Instant::now();
    while !http_get(address, "/metrics").is_ok_and(|(_, _, body)| {
        body.lines()
            .any(|l| l.starts_with(line) || (!l.starts_with('#') && l.contains(line)))
    }) {
        assert!(started.elapsed() < Duration::from_secs(10), "no {line}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_cli_sets_maintenance_on_the_daemon_and_it_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let (mut daemon, address) = start(&config);
    let (ok, out) = cli(&config, &["on", "--for", "1h"]);
    assert!(!ok, "--reason is required: {out}");
    let (ok, out) = cli(
        &config,
        &["on", "--reason", "online resize of vol1", "--for", "1h"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("\"in_force\":true"), "{out}");
    wait_metric(&address, "ocfs2_watchdog_maintenance 1");
    wait_metric(&address, "reason=\"online resize of vol1\"");
    let (_, _, status) = http_get(&address, "/status").unwrap();
    assert!(status.contains("online resize of vol1"), "{status}");
    let _ = daemon.kill();
    let _ = daemon.wait();

    let (mut daemon, address) = start(&config);
    wait_metric(&address, "ocfs2_watchdog_maintenance 1");
    let (ok, out) = cli(&config, &["status"]);
    assert!(ok && out.contains("online resize of vol1"), "{out}");
    let (ok, out) = cli(&config, &["off"]);
    assert!(ok && out.contains("\"in_force\":false"), "{out}");
    wait_metric(&address, "ocfs2_watchdog_maintenance 0");
    let audit = std::fs::read_to_string(dir.path().join("state/audit.jsonl")).unwrap();
    let on = audit
        .lines()
        .find(|l| l.contains("maintenance_on"))
        .expect("audited");
    assert!(on.contains("\"caller\":\"node="), "{on}");
    assert!(on.contains("unix:pid="), "who set it: {on}");
    assert!(audit.contains("maintenance_off"), "{audit}");
    // A wrong token is refused by the daemon; a token file that breaks the
    // rules is refused by the CLI before it asks.
    write_token(&dir.path().join("token"), &"o".repeat(40));
    let (ok, out) = cli(&config, &["status"]);
    assert!(!ok && out.contains("401"), "{out}");
    write_token(&dir.path().join("token"), "other");
    let (ok, out) = cli(&config, &["status"]);
    assert!(!ok && out.contains("openssl rand -hex 32"), "{out}");
    let _ = daemon.kill();
    let _ = daemon.wait();
}
