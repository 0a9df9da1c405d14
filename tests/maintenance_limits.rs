//! A maintenance window past `[cluster] max_maintenance` against the real
//! daemon: the CLI refuses it before it asks, the admin API answers 400 and
//! counts it, and a `maintenance.json` holding such a window (as an earlier
//! version wrote it) neither kills `/metrics` after a restart nor lets
//! remediation act: it holds as an unreadable record does, until cleared.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ocfs2_watchdog::cluster::client::request;
use support::http_get;

const TOKEN: &str = "validate-test-token-0123456789abcdef";

fn write_config(dir: &Path, admin: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    // The token rules: no access for group and others.
    std::fs::set_permissions(
        dir.join("token"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
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
admin_listen = "{admin}"
[cluster]
max_maintenance = "1day"
"#,
        state = dir.join("state").display(),
        token = dir.join("token").display(),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The daemon on a port from the OS, ready; with the address it bound.
fn start(config: &Path) -> (Daemon, String) {
    let (child, address) = support::listen::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .args(["--config", config.to_str().unwrap()])
            .stdout(Stdio::null()),
    );
    let daemon = Daemon(child);
    let started = Instant::now();
    while !http_get(&address, "/readyz").is_ok_and(|r| r.0 == 200) {
        assert!(started.elapsed() < Duration::from_secs(20), "not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    (daemon, address)
}

fn cli(config: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .args(["--config", config.to_str().unwrap(), "maintenance"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `/metrics` answers 200 and has a sample line starting with `line`.
fn wait_metric(address: &str, line: &str) {
    let started = Instant::now();
    loop {
        let answer = http_get(address, "/metrics");
        if let Ok((status, _, body)) = &answer {
            assert_eq!(*status, 200, "/metrics answered {status}: {body}");
            if body.lines().any(|l| l.starts_with(line)) {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no {line}: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn audit(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("state/audit.jsonl")).unwrap_or_default()
}

#[test]
fn a_window_past_the_maximum_is_refused_by_the_cli_and_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    // The CLI reads the admin address from the config: known before the
    // start, so a unique loopback address with a port from the OS.
    let admin = support::listen::loopback_address();
    let config = write_config(dir.path(), &admin);
    let (_daemon, address) = start(&config);

    // The CLI refuses before it asks: exit 2, the limit named.
    let (code, out) = cli(&config, &["on", "--reason", "test", "--for", "500000000y"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("maximum") && out.contains("max_maintenance"),
        "{out}"
    );
    let (code, out) = cli(&config, &["on", "--reason", "test", "--for", "2days"]);
    assert_eq!(code, Some(2), "past the configured 1 day: {out}");
    let (code, out) = cli(&config, &["on", "--reason", "test", "--for", "soon"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(!audit(dir.path()).contains("maintenance_on"), "never asked");

    // The daemon refuses too, for a client that does not check.
    for window in ["500000000y", "2days", "0s", "NaN"] {
        let answer = request(
            &admin,
            "POST",
            &format!("/maintenance/on?reason=test&for={window}"),
            Some(TOKEN),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(answer.status, 400, "{window}: {}", answer.body);
    }
    // A reason no log line should carry is refused too.
    let answer = request(
        &admin,
        "POST",
        &format!("/maintenance/on?reason={}&for=1h", "r".repeat(2000)),
        Some(TOKEN),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(answer.status, 400, "{}", answer.body);
    wait_metric(&address, "ocfs2_watchdog_maintenance 0");
    wait_metric(
        &address,
        "ocfs2_watchdog_input_rejected_total{source=\"admin\",reason=\"too_long\"} 2",
    );
    wait_metric(
        &address,
        "ocfs2_watchdog_input_rejected_total{source=\"admin\",reason=\"malformed\"} 2",
    );
    // Within the limit it is taken and rendered.
    let (code, out) = cli(&config, &["on", "--reason", "test", "--for", "1day"]);
    assert_eq!(code, Some(0), "{out}");
    wait_metric(&address, "ocfs2_watchdog_maintenance 1");
    wait_metric(&address, "ocfs2_watchdog_maintenance_info{reason=\"test\"");
}

#[test]
fn a_maintenance_file_past_the_limits_does_not_stop_metrics_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The CLI reads the admin address from the config: known before the
    // start, so a unique loopback address with a port from the OS.
    let admin = support::listen::loopback_address();
    let config = write_config(dir.path(), &admin);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // What `--for 500000000y` persisted before it was refused.
    let record = serde_json::json!({
        "active": true, "reason": "test", "node": "n1", "caller": "127.0.0.1:1",
        "changed_at": now, "expires_at": now + 500_000_000.0 * 365.25 * 86_400.0,
    });
    std::fs::write(
        dir.path().join("state/maintenance.json"),
        record.to_string(),
    )
    .unwrap();
    let (_daemon, address) = start(&config);
    // It holds (fails closed) and every scrape renders.
    wait_metric(&address, "ocfs2_watchdog_maintenance 1");
    wait_metric(
        &address,
        "ocfs2_watchdog_input_rejected_total{source=\"state_file\",reason=\"too_long\"} 1",
    );
    for _ in 0..5 {
        wait_metric(&address, "ocfs2_watchdog_maintenance 1");
    }
    let (status, _, body) = http_get(&address, "/status").unwrap();
    assert_eq!(status, 200, "{body}");
    // Cleared by an operator like an unreadable record.
    let (code, out) = cli(&config, &["off"]);
    assert_eq!(code, Some(0), "{out}");
    wait_metric(&address, "ocfs2_watchdog_maintenance 0");
}
