//! The DaemonSet's topology without a container engine, and the real daemon
//! in it. A private "host" mount and PID namespace (`enter_private_namespace`;
//! the test process is its PID 1, the host's init) holds a stack of binds, a
//! missing expected mount and a file held open; inside it a second mount
//! namespace (no new PID namespace: `hostPID`) has its own root-ish tmpfs,
//! the host root bound at `<ctr>/host` (rslave, or a peer of the host root as
//! `mountPropagation: Bidirectional` makes it), its own copy of the daemon
//! binary and its own `mount`/`umount`/`o2cb`, which must never run. The
//! daemon enforces with `--path.rootfs=<ctr>/host` and the shipped
//! ConfigMap's settings. Everything is asserted from the host namespace.
//! Then, from inside the container namespace, o2cb restarts go through the
//! same helper: one refused for a held file, one run with the host's tools.

mod support;
#[path = "container/topology.rs"]
mod topology;

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ocfs2_watchdog::actions::hostns::{HostNamespace, HostNamespaceExecutor};
use ocfs2_watchdog::actions::restore::{RestoreHow, RestoreMount};
use ocfs2_watchdog::actions::{Executor, Outcome, Plan};
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::rules::config::{Mode, RemediationConfig};
use support::{enter_private_namespace, http_get, wait_for};
use topology::{
    assert_container_only_mirrors, config_from_configmap, counts, daemon_log, layers, prepare_host,
    start_container, table, Layout, Propagation,
};

/// Set in the copy of this test binary started inside the container
/// namespace; holds the paths it needs, as JSON.
const CONTAINER_SIDE: &str = "OCFS2_WATCHDOG_CONTAINER_SIDE";

fn scenario(propagation: Propagation) {
    let dir = support::ScratchDir::new();
    let mut layout = Layout::new(dir.path());
    let (mut holder, _volume) = prepare_host(&mut layout, propagation);
    let config = config_from_configmap(&layout, "127.0.0.1:0", |_| {});
    let mut daemon = start_container(&layout, propagation, &config);
    let address = support::listen::bound_address_in_log(&layout.dir.join("daemon.log"));
    let pid = daemon.id().to_string();
    wait_for("the daemon to be ready", Duration::from_secs(30), || {
        assert!(
            daemon.try_wait().unwrap().is_none(),
            "daemon exited: {}",
            daemon_log(&layout)
        );
        http_get(&address, "/readyz").is_ok_and(|r| r.0 == 200)
    });
    let host_before = counts(&table("self"));
    let container_before = counts(&table(&pid));
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap(),
        std::fs::read_link("/proc/self/ns/mnt").unwrap(),
        "the daemon runs in a mount namespace of its own"
    );

    wait_for("the host to heal", Duration::from_secs(30), || {
        let host = table("self");
        layers(&host, &layout.stacked) == 1 && layers(&host, &layout.missing) == 1
    });
    // Two more engine ticks: nothing further happens.
    std::thread::sleep(Duration::from_millis(1000));
    let host = table("self");
    assert_eq!(layers(&host, &layout.stacked), 1, "{}", daemon_log(&layout));
    assert_eq!(layers(&host, &layout.missing), 1, "mounted exactly once");
    let container = table(&pid);
    // The container saw the host's changes by propagation, and made none of
    // its own: its view of the host agrees, the rest is as it was.
    let in_container = |p: &Path| layout.host_mount().join(p.strip_prefix("/").unwrap());
    assert_eq!(layers(&container, &in_container(&layout.stacked)), 1);
    assert_eq!(layers(&container, &in_container(&layout.missing)), 1);
    assert_container_only_mirrors(
        &layout,
        (&host_before, &counts(&host)),
        (&container_before, &counts(&container)),
    );
    let calls = std::fs::read_to_string(&layout.log).unwrap_or_default();
    assert!(
        calls.contains(&format!(
            "host mount -t tmpfs -o size=1m tmpfs {}",
            layout.missing.display()
        )),
        "{calls}"
    );
    assert!(
        !calls.contains("CONTAINER"),
        "a container tool ran: {calls}"
    );
    let (_, _, status) = http_get(&address, "/status").unwrap();
    assert!(
        status.contains("PID 1's mount namespace"),
        "actions placed in the host namespace: {status}"
    );
    let audit = std::fs::read_to_string(layout.dir.join("state/audit.jsonl")).unwrap();
    assert!(
        audit.contains("\"unstack\"") && audit.contains("\"remount\""),
        "{audit}"
    );

    // From inside the container namespace, through the same helper: an o2cb
    // restart refused for the held file, then one run with the host's tools.
    std::fs::remove_file(&layout.log).unwrap_or(());
    let namespace = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).unwrap();
    let raw = namespace.as_raw_fd();
    let mut side = Command::new(std::env::current_exe().unwrap());
    side.args([
        "--exact",
        "container_side",
        "--nocapture",
        "--include-ignored",
    ])
    .env(CONTAINER_SIDE, serde_json::to_string(&layout).unwrap())
    .env("HOLDER_PID", holder.id().to_string())
    // The container's PATH: its own tools first, as the daemon has it.
    .env(
        "PATH",
        format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", layout.tools().display()),
    );
    // SAFETY: setns only, between fork and exec.
    unsafe {
        side.pre_exec(move || {
            if libc::setns(raw, libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = side.output().unwrap();
    let _ = holder.kill();
    let _ = holder.wait();
    let _ = daemon.kill();
    let _ = daemon.wait();
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "container side failed"
    );
    let calls = std::fs::read_to_string(&layout.log).unwrap_or_default();
    let held = layout.held.display();
    assert!(
        !calls.contains("CONTAINER"),
        "a container tool ran: {calls}"
    );
    assert!(
        // The stand-in stack starts unregistered: nothing to take offline.
        // The unmount is a syscall in the host's namespace (the helper's
        // re-check and `umount2` with no tool in between): no umount ran.
        calls.starts_with("host o2cb online\n") && !calls.contains("umount"),
        "{calls}"
    );
    assert!(
        calls.contains(&format!("host mount -t ext4 {} {held}", layout.held_device)),
        "{calls}"
    );
    assert_eq!(
        layers(&table("self"), &layout.held),
        1,
        "remounted once, on the host"
    );
}

/// Runs only inside the container namespace, started by `scenario`.
#[test]
#[ignore = "started by the daemonset_topology tests inside their container namespace"]
fn container_side() {
    let Some(layout) = std::env::var(CONTAINER_SIDE).ok() else {
        return;
    };
    let layout: Layout = serde_json::from_str(&layout).unwrap();
    let paths = HostPaths::new(layout.host_mount(), None, None);
    // The daemon's container-only copy: not a path in the host namespace.
    let binary = layout.ctr.join("bin/ocfs2-watchdog");
    assert!(binary.exists());
    let host = HostNamespace::reach_with(&paths, &binary).unwrap();
    let config = RemediationConfig {
        mode: Mode::Enforce,
        action_timeout: Duration::from_secs(10),
        ..RemediationConfig::default()
    };
    let executor = HostNamespaceExecutor::new(host, &config);
    let restart = Plan::RestartO2cb {
        cluster: "lab".into(),
        volumes: vec![RestoreMount {
            mountpoint: layout.held.to_string_lossy().into_owned(),
            fstype: "ext4".into(),
            device: device_of(&layout.held),
            root: "/".into(),
            flags: String::new(),
            shared: false,
            how: RestoreHow::Device {
                source: layout.held_device.clone(),
                options: String::new(),
            },
            uuid: None,
        }],
        stop_services: Vec::new(),
        timeouts: None,
    };
    // The holder check runs on the host and names the host's path.
    let outcome = executor.execute(&restart);
    let file = layout.held.join("file");
    assert!(
        matches!(&outcome, Outcome::PreconditionChanged(why)
            if why.contains("sleep") && why.contains(&*file.to_string_lossy())),
        "{outcome:?}"
    );
    assert!(!layout.log.exists(), "no tool ran before the holder check");
    let holder: i32 = std::env::var("HOLDER_PID").unwrap().parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(holder),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the holder to exit", Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{holder}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    let outcome = executor.execute(&restart);
    assert!(matches!(outcome, Outcome::Success(_)), "{outcome:?}");
}

fn run(test: &str, propagation: Propagation) {
    if !enter_private_namespace(test) {
        return;
    }
    scenario(propagation);
}

#[test]
fn daemonset_topology_rslave_heals_the_host() {
    run(
        "daemonset_topology_rslave_heals_the_host",
        Propagation::Rslave,
    );
}

#[test]
fn daemonset_topology_bidirectional_heals_the_host() {
    run(
        "daemonset_topology_bidirectional_heals_the_host",
        Propagation::Bidirectional,
    );
}

/// The `major:minor` of the filesystem mounted at `path`, as mountinfo shows it.
fn device_of(path: &Path) -> (u32, u32) {
    let dev = nix::sys::stat::stat(path).unwrap().st_dev;
    (
        nix::sys::stat::major(dev) as u32,
        nix::sys::stat::minor(dev) as u32,
    )
}
