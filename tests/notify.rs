//! The systemd notify protocol against a real `NOTIFY_SOCKET`: the test
//! listens on a Unix datagram socket as systemd does, runs the real binary
//! with `NOTIFY_SOCKET` and `WATCHDOG_USEC` set, and checks that READY=1
//! comes only once `/readyz` answers 200, that WATCHDOG=1 keeps coming with
//! every tick, and that SIGTERM brings STOPPING=1.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::http_get;

#[test]
fn ready_watchdog_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let config = dir.path().join("config.toml");
    // Its state in the scratch dir: the default state_dir is the host's.
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[sampler]\ninterval = \"200ms\"\n[kernel_log]\nenabled = false\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let (mut daemon, address) = support::listen::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .arg("--config")
            .arg(&config)
            .arg("--path.rootfs")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mounts-healthy/rootfs"))
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "5000000"),
    );

    let mut buffer = [0u8; 4096];
    let mut receive = |deadline: Instant| -> Option<String> {
        while Instant::now() < deadline {
            if let Ok(n) = socket.recv(&mut buffer) {
                return Some(String::from_utf8_lossy(&buffer[..n]).to_string());
            }
        }
        None
    };

    let started = Instant::now();
    let mut ready = None;
    let mut watchdogs_after_ready = 0;
    let mut last_status = String::new();
    while started.elapsed() < Duration::from_secs(20) && watchdogs_after_ready < 5 {
        let Some(message) = receive(started + Duration::from_secs(20)) else {
            break;
        };
        if let Some(status) = message.lines().find_map(|l| l.strip_prefix("STATUS=")) {
            last_status = status.to_string();
        }
        if message.lines().any(|l| l == "READY=1") {
            // Whoever acts on READY=1 finds the daemon answering ready.
            let readyz = http_get(&address, "/readyz").map(|r| r.0);
            assert_eq!(readyz.ok(), Some(200), "READY=1 before /readyz is 200");
            ready = Some(Instant::now());
        } else if message.lines().any(|l| l == "WATCHDOG=1") && ready.is_some() {
            watchdogs_after_ready += 1;
        }
    }
    let ready_at = ready.expect("READY=1 never arrived");
    assert!(
        watchdogs_after_ready >= 5,
        "only {watchdogs_after_ready} WATCHDOG=1 after READY=1"
    );
    // Five 200ms ticks: WATCHDOG=1 comes with each tick, not once.
    assert!(ready_at.elapsed() < Duration::from_secs(5));
    assert!(
        last_status.starts_with("Snapshot ") && last_status.contains("collectors"),
        "{last_status}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut stopping = false;
    while let Some(message) = receive(Instant::now() + Duration::from_secs(5)) {
        if message.lines().any(|l| l == "STOPPING=1") {
            stopping = true;
            break;
        }
    }
    let status = daemon.wait().unwrap();
    assert!(stopping, "no STOPPING=1 on SIGTERM");
    assert!(status.success(), "{status:?}");
}
