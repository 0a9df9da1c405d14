//! With `--path.rootfs` other than `/` and no way into PID 1's mount
//! namespace, `enforce` refuses to start (and `--check-config` exits 2),
//! naming what is missing: `hostPID` (PID 1 is not the host's init),
//! `CAP_SYS_PTRACE` (PID 1's namespace links cannot be opened),
//! `CAP_SYS_ADMIN` (setns). Dry-run starts, and says in its log and in
//! `/status` that its re-checks run in the container's namespace.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{enter_private_namespace, have_command, http_get, require};

fn config(dir: &Path, address: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = \"{}\"\n[sampler]\ninterval = \"300ms\"\n[kernel_log]\nenabled = false\n\
             [mounts]\nuse_fstab = false\n[web]\nlisten_address = \"{address}\"\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    path
}

/// The daemon under `setpriv` (capabilities dropped) or as is.
fn daemon(drop: Option<&str>) -> Command {
    let binary = env!("CARGO_BIN_EXE_ocfs2-watchdog");
    match drop {
        Some(cap) => {
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--inh-caps=-{cap}"))
                .arg(format!("--bounding-set=-{cap}"))
                .arg(binary);
            command
        }
        None => Command::new(binary),
    }
}

fn refused(output: &Output, code: i32, missing: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert!(stderr.contains(missing), "names {missing}: {stderr}");
}

/// `--check-config --enforce` exits 2 and the daemon itself exits 1, both
/// naming `missing`.
fn assert_refused(drop: Option<&str>, args: &[&str], missing: &str) {
    let dir = tempfile::tempdir().unwrap();
    // Port 0: both runs refuse before they would listen.
    let config = config(dir.path(), "127.0.0.1:0");
    let run = |extra: &[&str]| {
        daemon(drop)
            .args(args)
            .arg(format!("--config={}", config.display()))
            .args(["--enforce", "--log.level=error"])
            .args(extra)
            .output()
            .unwrap()
    };
    refused(&run(&["--check-config"]), 2, missing);
    refused(&run(&[]), 1, missing);
}

/// A /proc whose PID 1 is not the host's init: its root is elsewhere.
fn foreign_procfs(dir: &Path) -> std::path::PathBuf {
    let procfs = dir.join("proc");
    std::fs::create_dir_all(procfs.join("1/ns")).unwrap();
    std::fs::write(procfs.join("1/ns/mnt"), "").unwrap();
    std::fs::create_dir_all(dir.join("container-root")).unwrap();
    std::os::unix::fs::symlink(dir.join("container-root"), procfs.join("1/root")).unwrap();
    procfs
}

#[test]
fn enforce_without_host_pid_refuses_and_dry_run_says_where_it_checks() {
    let dir = tempfile::tempdir().unwrap();
    let procfs = foreign_procfs(dir.path());
    let rootfs = format!("--path.rootfs={}", dir.path().display());
    let procfs = format!("--path.procfs={}", procfs.display());
    assert_refused(None, &[&rootfs, &procfs], "hostPID");

    let config = config(dir.path(), "127.0.0.1:0");
    let mut child = daemon(None)
        .args([&rootfs, &procfs])
        .arg(format!("--config={}", config.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    let address = support::listen::bound_address_in_log(&dir.path().join("log"));
    let started = Instant::now();
    let status = loop {
        let reply = http_get(&address, "/status").ok();
        if let Some((200, _, body)) = reply.filter(|r| r.2.contains("action_namespace")) {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no report");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        status.contains("container: host namespace unreachable") && status.contains("hostPID"),
        "{status}"
    );
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(log.contains("Host mount namespace unreachable"), "{log}");
}

#[test]
fn enforce_without_the_capabilities_refuses_naming_them() {
    if !enter_private_namespace("enforce_without_the_capabilities_refuses_naming_them")
        || !require(have_command("setpriv"), "setpriv (util-linux)")
    {
        return;
    }
    // The host root at <dir>/host, as the DaemonSet's /host; this test
    // process is PID 1 with every capability, the daemon has fewer.
    let dir = support::ScratchDir::new();
    let host = dir.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    nix::mount::mount(
        Some("/"),
        &host,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    )
    .unwrap();
    let rootfs = format!("--path.rootfs={}", host.display());
    assert_refused(Some("sys_ptrace"), &[&rootfs], "CAP_SYS_PTRACE");
    assert_refused(Some("sys_admin"), &[&rootfs], "CAP_SYS_ADMIN");
    assert_refused(Some("sys_chroot"), &[&rootfs], "CAP_SYS_CHROOT");
    // With them all, the same settings pass.
    let config = config(dir.path(), "127.0.0.1:1");
    let output = daemon(None)
        .arg(&rootfs)
        .arg(format!("--config={}", config.display()))
        .args(["--enforce", "--check-config"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("PID 1's mount namespace"), "{stderr}");
}
