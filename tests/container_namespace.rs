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

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize as _;

use ocfs2_watchdog::actions::hostns::{HostNamespace, HostNamespaceExecutor};
use ocfs2_watchdog::actions::{Executor, MountSpec, Outcome, Plan};
use ocfs2_watchdog::collector::mounts::mountinfo::{parse_mountinfo, MountEntry};
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::rules::config::{Mode, RemediationConfig};
use support::{bind, enter_private_namespace, free_port, http_get, mount_tmpfs};

/// Set in the copy of this test binary started inside the container
/// namespace; holds the paths it needs, as JSON.
const CONTAINER_SIDE: &str = "OCFS2_WATCHDOG_CONTAINER_SIDE";

#[derive(Clone, Copy, PartialEq)]
enum Propagation {
    Rslave,
    Bidirectional,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Layout {
    dir: PathBuf,
    ctr: PathBuf,
    stacked: PathBuf,
    missing: PathBuf,
    held: PathBuf,
    log: PathBuf,
}

impl Layout {
    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            ctr: dir.join("ctr"),
            stacked: dir.join("stacked"),
            missing: dir.join("missing"),
            held: dir.join("held"),
            log: dir.join("tools.log"),
        }
    }

    fn host_mount(&self) -> PathBuf {
        self.ctr.join("host")
    }

    fn tools(&self) -> PathBuf {
        self.ctr.join("tools")
    }
}

fn mount_flags(path: &Path, flags: nix::mount::MsFlags) {
    nix::mount::mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
        .unwrap_or_else(|e| panic!("propagation {flags:?} on {}: {e}", path.display()));
}

fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A host tool that logs its call, then does the real thing (or nothing).
fn host_tool(path: &Path, log: &Path, real: Option<&str>) {
    let name = path.file_name().unwrap().to_string_lossy();
    let exec = real.map_or_else(String::new, |r| format!("exec {r} \"$@\"\n"));
    executable(
        path,
        &format!(
            "#!/bin/sh\necho \"host {name} $*\" >> '{}'\n{exec}",
            log.display()
        ),
    );
}

fn table(pid: &str) -> Vec<MountEntry> {
    parse_mountinfo(&std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap()).entries
}

fn layers(entries: &[MountEntry], path: &Path) -> usize {
    let name = path.to_string_lossy();
    entries.iter().filter(|e| e.mount_point == name).count()
}

fn counts(entries: &[MountEntry]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for entry in entries {
        *counts.entry(entry.mount_point.clone()).or_insert(0) += 1;
    }
    counts
}

type Counts = BTreeMap<String, usize>;

/// Every mount point whose layers changed in the container changed the same
/// way on the host (the container's view of `<ctr>/host/X` is the host's
/// `X`): nothing was mounted or unmounted in the container's namespace only.
fn assert_container_only_mirrors(
    layout: &Layout,
    (host_before, host_after): (&Counts, &Counts),
    (ctr_before, ctr_after): (&Counts, &Counts),
) {
    let host_root = layout.host_mount();
    let count = |map: &Counts, path: &str| map.get(path).copied().unwrap_or(0);
    for path in ctr_before.keys().chain(ctr_after.keys()) {
        let (before, after) = (count(ctr_before, path), count(ctr_after, path));
        if before == after {
            continue;
        }
        let host_path = match Path::new(path).strip_prefix(&host_root) {
            Ok(rest) => Path::new("/").join(rest).to_string_lossy().into_owned(),
            Err(_) => path.clone(),
        };
        assert_ne!(
            count(host_before, &host_path),
            count(host_after, &host_path),
            "{path} changed in the container only ({before} -> {after} layers)"
        );
        assert_eq!(
            after,
            count(host_after, &host_path),
            "{path}: the container's view differs from the host's"
        );
    }
}

/// The shipped ConfigMap's config.toml, with this test's paths and a
/// watched fstype the test can mount (tmpfs).
fn config_from_configmap(layout: &Layout, address: &str) -> PathBuf {
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/daemonset.yaml"),
    )
    .unwrap();
    let text = serde_yaml::Deserializer::from_str(&manifest)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .find(|d| d["kind"] == "ConfigMap")
        .and_then(|d| d["data"]["config.toml"].as_str().map(String::from))
        .expect("the ConfigMap's config.toml");
    let mut config: toml::Table = toml::from_str(&text).unwrap();
    let state = layout.dir.join("state");
    config.insert("state_dir".into(), state.to_string_lossy().as_ref().into());
    let section = |config: &mut toml::Table, name: &str| -> toml::Table {
        config
            .remove(name)
            .and_then(|v| v.as_table().cloned())
            .unwrap_or_default()
    };
    let mut sampler = section(&mut config, "sampler");
    sampler.insert("interval".into(), "300ms".into());
    config.insert("sampler".into(), sampler.into());
    let mut mounts = section(&mut config, "mounts");
    mounts.insert("fstypes".into(), toml::Value::Array(vec!["tmpfs".into()]));
    mounts.insert("use_fstab".into(), false.into());
    let mut expected = toml::Table::new();
    expected.insert(
        "mountpoint".into(),
        layout.missing.to_string_lossy().as_ref().into(),
    );
    expected.insert("source".into(), "tmpfs".into());
    expected.insert("fstype".into(), "tmpfs".into());
    expected.insert("options".into(), "size=1m".into());
    mounts.insert("expected".into(), toml::Value::Array(vec![expected.into()]));
    config.insert("mounts".into(), mounts.into());
    let mut kernel_log = section(&mut config, "kernel_log");
    kernel_log.insert("enabled".into(), false.into());
    config.insert("kernel_log".into(), kernel_log.into());
    // Token files: the Secret's paths do not exist here.
    let token = layout.dir.join("token");
    std::fs::write(&token, "t\n").unwrap();
    let mut web = section(&mut config, "web");
    web.insert("listen_address".into(), address.into());
    web.insert(
        "admin_token_file".into(),
        token.to_string_lossy().as_ref().into(),
    );
    web.remove("auth");
    config.insert("web".into(), web.into());
    let mut remediation = section(&mut config, "remediation");
    let mut rules = toml::Table::new();
    for rule in ["duplicate_mount_layers", "missing_mount"] {
        let mut settings = toml::Table::new();
        settings.insert("for".into(), "500ms".into());
        rules.insert(rule.into(), settings.into());
    }
    remediation.insert("rules".into(), rules.into());
    remediation.insert("action_timeout".into(), "10s".into());
    config.insert("remediation".into(), remediation.into());
    let path = layout.dir.join("config.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path
}

/// The host side: mounts, tools, a holder; the "host" root made rshared as
/// on a systemd host.
fn prepare_host(layout: &Layout, propagation: Propagation) -> Child {
    use nix::mount::MsFlags;
    mount_flags(Path::new("/"), MsFlags::MS_SHARED | MsFlags::MS_REC);
    for dir in [&layout.stacked, &layout.missing, &layout.held, &layout.ctr] {
        std::fs::create_dir_all(dir).unwrap();
    }
    mount_tmpfs(&layout.stacked);
    for _ in 0..3 {
        bind(&layout.stacked, &layout.stacked);
    }
    mount_tmpfs(&layout.held);
    std::fs::write(layout.held.join("file"), "data").unwrap();
    // The container's root: private, so what the container mounts on it
    // stays in the container (an overlay rootfs does the same).
    mount_tmpfs(&layout.ctr);
    mount_flags(&layout.ctr, MsFlags::MS_PRIVATE);
    for dir in ["host", "tools", "bin"] {
        std::fs::create_dir_all(layout.ctr.join(dir)).unwrap();
    }
    // The host's tools, at the same path the container's PATH names.
    host_tool(
        &layout.tools().join("mount"),
        &layout.log,
        Some("/usr/bin/mount"),
    );
    host_tool(
        &layout.tools().join("umount"),
        &layout.log,
        Some("/usr/bin/umount"),
    );
    // The host's o2cb init script: a tmpfs over /etc/init.d in this
    // private namespace only.
    mount_tmpfs(Path::new("/etc/init.d"));
    host_tool(Path::new("/etc/init.d/o2cb"), &layout.log, None);
    if propagation == Propagation::Bidirectional {
        // What the kubelet does for a Bidirectional hostPath of "/": an
        // rbind made in the host's namespace, a peer of the host root.
        nix::mount::mount(
            Some("/"),
            &layout.host_mount(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .unwrap();
    }
    // A file held open on `held` by a process of the host.
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec sleep 120 < '{}'",
            layout.held.join("file").display()
        ))
        .spawn()
        .unwrap()
}

/// The container: its own mount namespace (hostPID: same PID namespace),
/// its own binary and tools, the daemon enforcing against `<ctr>/host`.
fn start_container(layout: &Layout, propagation: Propagation, config: &Path) -> Child {
    let binary = layout.ctr.join("bin/ocfs2-watchdog");
    let bind_host = match propagation {
        Propagation::Rslave => format!(
            "mount --make-rslave / && mount --rbind / '{}'",
            layout.host_mount().display()
        ),
        // The container root stops propagating; the host bind stays a peer.
        Propagation::Bidirectional => "mount --make-slave /".to_string(),
    };
    let fake = |name: &str| {
        format!(
            "printf '#!/bin/sh\\necho \"CONTAINER {name} $*\" >> {log}\\nexit 1\\n' > {tools}/{name} && chmod 755 {tools}/{name}",
            log = layout.log.display(),
            tools = layout.tools().display()
        )
    };
    let script = format!(
        "set -e\n{bind_host}\n\
         mount -t tmpfs tmpfs '{bin}' && cp '{daemon}' '{binary}'\n\
         mount -t tmpfs tmpfs '{tools}'\n{}\n{}\n{}\n\
         exec env PATH='{tools}':/usr/sbin:/usr/bin:/sbin:/bin '{binary}' --path.rootfs='{host}' --config='{config}' --enforce\n",
        fake("mount"),
        fake("umount"),
        fake("o2cb"),
        bin = layout.ctr.join("bin").display(),
        daemon = env!("CARGO_BIN_EXE_ocfs2-watchdog"),
        binary = binary.display(),
        tools = layout.tools().display(),
        host = layout.host_mount().display(),
        config = config.display(),
    );
    Command::new("unshare")
        .args(["--mount", "--propagation", "unchanged", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(layout.dir.join("daemon.log")).unwrap())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn daemon_log(layout: &Layout) -> String {
    std::fs::read_to_string(layout.dir.join("daemon.log")).unwrap_or_default()
}

fn scenario(propagation: Propagation) {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let mut holder = prepare_host(&layout, propagation);
    let address = format!("127.0.0.1:{}", free_port());
    let config = config_from_configmap(&layout, &address);
    let mut daemon = start_container(&layout, propagation, &config);
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
        calls.starts_with(&format!(
            "host umount {held}\nhost o2cb offline\nhost o2cb online\n"
        )),
        "{calls}"
    );
    assert!(
        calls.contains(&format!("host mount -t tmpfs -o size=1m tmpfs {held}")),
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
        volumes: vec![MountSpec {
            mountpoint: layout.held.to_string_lossy().into_owned(),
            source: "tmpfs".into(),
            fstype: "tmpfs".into(),
            options: "size=1m".into(),
        }],
        stop_services: Vec::new(),
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
