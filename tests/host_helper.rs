//! The host-namespace helper fails closed: past its budget (4 ×
//! `action_timeout`) it is killed with every tool it started, and a helper
//! that dies is a `failed` outcome with the reason, never a hang or a panic.
//! Runs in a private mount and PID namespace whose PID 1 is this test, with
//! fake `systemctl` and `o2cb` tools that each take a while.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use ocfs2_watchdog::actions::hostns::{HostNamespace, HostNamespaceExecutor};
use ocfs2_watchdog::actions::{Executor, Outcome, Plan};
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::rules::config::{Mode, RemediationConfig};
use support::{enter_private_namespace, mount_tmpfs, ScratchDir};

fn slow_tool(path: &Path, log: &Path, seconds: &str) {
    let name = path.file_name().unwrap().to_string_lossy();
    std::fs::write(
        path,
        format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\nexec sleep {seconds}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Processes whose command line names `marker` (the fake tools' sleeps).
fn running(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .count()
}

#[test]
fn the_helper_is_killed_with_its_tools_past_its_budget_and_a_dead_helper_fails() {
    if !enter_private_namespace(
        "the_helper_is_killed_with_its_tools_past_its_budget_and_a_dead_helper_fails",
    ) {
        return;
    }
    let dir = ScratchDir::new();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.path().join("calls.log");
    // No init script: the bare o2cb tool (/sbin/o2cb is ocfs2-tools'; only
    // its presence is looked at, the fake on PATH runs).
    mount_tmpfs(Path::new("/etc/init.d"));
    for tool in ["systemctl", "o2cb"] {
        slow_tool(&bin.join(tool), &log, "0.25");
    }
    std::env::set_var(
        "PATH",
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    );
    let host = HostNamespace::reach_with(
        &HostPaths::default(),
        Path::new(env!("CARGO_BIN_EXE_ocfs2-watchdog")),
    )
    .unwrap();
    let config = RemediationConfig {
        mode: Mode::Enforce,
        action_timeout: Duration::from_millis(300),
        ..RemediationConfig::default()
    };
    let executor = HostNamespaceExecutor::new(host, &config);
    // 4 stops + 3 o2cb calls + 4 starts at 0.25 s each: past 4 × 300 ms.
    let plan = Plan::RestartO2cb {
        cluster: "lab".into(),
        volumes: Vec::new(),
        stop_services: ["a", "b", "c", "d"].map(String::from).to_vec(),
        timeouts: None,
    };
    let started = Instant::now();
    let outcome = executor.execute(&plan);
    let took = started.elapsed();
    assert!(
        matches!(&outcome, Outcome::Failed(why) if why.contains("host-namespace helper")),
        "{outcome:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "killed at its budget, took {took:?}"
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.lines().count() < 11, "stopped part way: {calls}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        running("sleep 0.25"),
        0,
        "the helper's tools were killed with it"
    );

    // A helper killed from outside (OOM, an operator): failed, with why,
    // and the tool it was running does not outlive it.
    slow_tool(&bin.join("systemctl"), &log, "30");
    let host = HostNamespace::reach_with(
        &HostPaths::default(),
        Path::new(env!("CARGO_BIN_EXE_ocfs2-watchdog")),
    )
    .unwrap();
    let patient = RemediationConfig {
        action_timeout: Duration::from_secs(60),
        ..config
    };
    let executor = std::sync::Arc::new(HostNamespaceExecutor::new(host, &patient));
    let worker = {
        let executor = std::sync::Arc::clone(&executor);
        let plan = plan.clone();
        std::thread::spawn(move || executor.execute(&plan))
    };
    let started = Instant::now();
    while running("__host-action") == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "no helper");
        std::thread::sleep(Duration::from_millis(20));
    }
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("__host-action") {
            let pid: i32 = entry.file_name().to_string_lossy().parse().unwrap();
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
        }
    }
    let outcome = worker.join().unwrap();
    assert!(
        matches!(&outcome, Outcome::Failed(why) if why.contains("on a signal")),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(running("sleep 30"), 0, "the dead helper's tool was killed");
}
