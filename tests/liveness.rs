//! Liveness of the real daemon: a panic in one of its threads ends the
//! process with a logged reason (systemd and the kubelet restart it), and
//! a rule engine stuck inside a tick turns `/healthz` to 503. Both faults
//! come from the daemon's inert test hook
//! (`ocfs2_watchdog::liveness::TEST_ENGINE_FAULT_ENV`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ocfs2_watchdog::liveness::{EXIT_PANIC, TEST_ENGINE_FAULT_ENV};
use support::http_get;

fn write_config(dir: &Path) -> PathBuf {
    let config = format!(
        r#"state_dir = "{state}"
[sampler]
interval = "200ms"
[mounts]
fstypes = ["tmpfs"]
use_fstab = false
[kernel_log]
enabled = false
[remediation]
engine_stall_intervals = 3
"#,
        state = dir.join("state").display(),
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

/// The daemon on a port from the OS, its log in `dir/stderr`
/// (`bound_address_in_log` reads the port back).
fn start(dir: &Path, fault: Option<&str>) -> Daemon {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"));
    command
        .args(["--config", write_config(dir).to_str().unwrap()])
        .args(["--web.listen-address", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap());
    match fault {
        Some(fault) => command.env(TEST_ENGINE_FAULT_ENV, fault),
        None => command.env_remove(TEST_ENGINE_FAULT_ENV),
    };
    Daemon(command.spawn().unwrap())
}

#[test]
fn a_panic_in_a_daemon_thread_ends_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = start(dir.path(), Some("panic"));
    // The engine panics at its first ready snapshot; generous for a loaded CI.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still running after a panic"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(EXIT_PANIC), "{status:?}");
    let log = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    assert!(
        log.contains("A daemon thread panicked") && log.contains("rule-engine"),
        "{log}"
    );
}

#[test]
fn healthz_fails_while_the_engine_is_wedged_and_not_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let _daemon = start(dir.path(), Some("wedge"));
    let address = support::listen::bound_address_in_log(&dir.path().join("stderr"));
    let started = Instant::now();
    let body = loop {
        if let Ok((503, _, body)) = http_get(&address, "/healthz") {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "still healthy");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.contains("rule engine wedged"), "{body}");
    // /metrics still answers: only the probe says the engine is stuck.
    assert_eq!(http_get(&address, "/metrics").unwrap().0, 200);

    // The same daemon without the fault stays healthy well past the limit.
    let dir = tempfile::tempdir().unwrap();
    let _daemon = start(dir.path(), None);
    let address = support::listen::bound_address_in_log(&dir.path().join("stderr"));
    let started = Instant::now();
    while !http_get(&address, "/readyz").is_ok_and(|r| r.0 == 200) {
        assert!(started.elapsed() < Duration::from_secs(30), "not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..20 {
        let (status, _, body) = http_get(&address, "/healthz").unwrap();
        assert_eq!(status, 200, "{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
