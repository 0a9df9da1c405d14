//! The DaemonSet's topology without a container engine, shared by the
//! container tests: a private "host" (the test process is its PID 1), a
//! container mount namespace in the same PID namespace with the host root at
//! `<ctr>/host`, its own binary and tools, and the real daemon in it with the
//! shipped ConfigMap's settings. See tests/container_namespace.rs.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde::Deserialize as _;

use ocfs2_watchdog::collector::mounts::mountinfo::{parse_mountinfo, MountEntry};

use crate::support::{bind, mount_tmpfs, LoopVolume};

#[derive(Clone, Copy, PartialEq)]
pub enum Propagation {
    Rslave,
    Bidirectional,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Layout {
    pub dir: PathBuf,
    pub ctr: PathBuf,
    pub stacked: PathBuf,
    pub missing: PathBuf,
    pub held: PathBuf,
    /// The loop device mounted at `held` (ext4): a restart must put the same
    /// device back, which a tmpfs cannot be.
    #[serde(default)]
    pub held_device: String,
    pub log: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            ctr: dir.join("ctr"),
            stacked: dir.join("stacked"),
            missing: dir.join("missing"),
            held: dir.join("held"),
            held_device: String::new(),
            log: dir.join("tools.log"),
        }
    }

    pub fn host_mount(&self) -> PathBuf {
        self.ctr.join("host")
    }

    pub fn tools(&self) -> PathBuf {
        self.ctr.join("tools")
    }
}

pub fn mount_flags(path: &Path, flags: nix::mount::MsFlags) {
    nix::mount::mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
        .unwrap_or_else(|e| panic!("propagation {flags:?} on {}: {e}", path.display()));
}

pub fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A host tool that logs its call, then does the real thing (or nothing).
pub fn host_tool(path: &Path, log: &Path, real: Option<&str>) {
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

pub fn table(pid: &str) -> Vec<MountEntry> {
    parse_mountinfo(&std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap()).entries
}

pub fn layers(entries: &[MountEntry], path: &Path) -> usize {
    let name = path.to_string_lossy();
    entries.iter().filter(|e| e.mount_point == name).count()
}

pub fn counts(entries: &[MountEntry]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for entry in entries {
        *counts.entry(entry.mount_point.clone()).or_insert(0) += 1;
    }
    counts
}

pub type Counts = BTreeMap<String, usize>;

/// Every mount point whose layers changed in the container changed the same
/// way on the host (the container's view of `<ctr>/host/X` is the host's
/// `X`): nothing was mounted or unmounted in the container's namespace only.
pub fn assert_container_only_mirrors(
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
/// watched fstype the test can mount (tmpfs); `tweak` adjusts the rest.
pub fn config_from_configmap(
    layout: &Layout,
    address: &str,
    tweak: impl FnOnce(&mut toml::Table),
) -> PathBuf {
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
    // Admin tokens: 32 bytes or more, in a file only root can read.
    std::fs::write(&token, "container-admin-token-0123456789abcdef\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
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
    // The test starts its daemon on a settled "host": no boot-time race to wait out.
    remediation.insert("startup_grace".into(), "0s".into());
    config.insert("remediation".into(), remediation.into());
    tweak(&mut config);
    let path = layout.dir.join("config.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path
}

/// The host side: mounts, tools, a holder; the "host" root made rshared as
/// on a systemd host. Returns the holder and the volume mounted at `held`
/// (its device recorded in the layout).
pub fn prepare_host(layout: &mut Layout, propagation: Propagation) -> (Child, LoopVolume) {
    use nix::mount::MsFlags;
    mount_flags(Path::new("/"), MsFlags::MS_SHARED | MsFlags::MS_REC);
    for dir in [&layout.stacked, &layout.missing, &layout.held, &layout.ctr] {
        std::fs::create_dir_all(dir).unwrap();
    }
    mount_tmpfs(&layout.stacked);
    for _ in 0..3 {
        bind(&layout.stacked, &layout.stacked);
    }
    let volume = LoopVolume::ext4(&layout.dir, "held");
    nix::mount::mount(
        Some(volume.device.as_str()),
        &layout.held,
        Some("ext4"),
        MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    layout.held_device.clone_from(&volume.device);
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
    // `online` registers cluster "lab" with this node as its only, local node
    // in a configfs stand-in, live alone in a debugfs stand-in, so a
    // restart's rejoin check can pass.
    mount_tmpfs(Path::new("/sys/kernel"));
    std::fs::create_dir_all("/sys/kernel/config").unwrap();
    executable(
        Path::new("/etc/init.d/o2cb"),
        &format!(
            "#!/bin/sh\necho \"host o2cb $*\" >> '{}'\n\
             if [ \"$1\" = online ]; then c=/sys/kernel/config/cluster/lab; \
             mkdir -p $c/node/n1 $c/heartbeat; echo 1 > $c/node/n1/num; echo 1 > $c/node/n1/local; \
             d=/sys/kernel/debug; mkdir -p $d/o2hb $d/o2net; echo 1 > $d/o2hb/livenodes; \
             echo > $d/o2net/connected_nodes; fi\n",
            layout.log.display()
        ),
    );
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
    let holder = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec sleep 120 < '{}'",
            layout.held.join("file").display()
        ))
        .spawn()
        .unwrap();
    (holder, volume)
}

/// The container: its own mount namespace (hostPID: same PID namespace),
/// its own binary and tools, the daemon enforcing against `<ctr>/host`.
pub fn start_container(layout: &Layout, propagation: Propagation, config: &Path) -> Child {
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

pub fn daemon_log(layout: &Layout) -> String {
    std::fs::read_to_string(layout.dir.join("daemon.log")).unwrap_or_default()
}
