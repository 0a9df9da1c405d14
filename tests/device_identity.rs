//! The remount precondition for OCFS2 against a fixture host tree whose
//! "block devices" are files holding real superblocks (captured from
//! `mkfs.ocfs2`, tests/fixtures/ocfs2-superblock): the device is found by
//! UUID or label without udev links, a multipath map wins over its paths, a
//! cloned volume, a device showing another volume, a kernel name and a device
//! that never answers all refuse, and a mount point that is a symlink to a
//! mounted directory counts as mounted. Then the same on real loop devices
//! holding volumes made by `mkfs.ocfs2` (root; ocfs2-tools from .ci/run; the
//! kernel's ocfs2 module is not needed to write or read a superblock).

mod support;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ocfs2_watchdog::actions::{
    remount, DryRunExecutor, Executor, HostActions, MountSpec, Outcome, Plan,
};
use ocfs2_watchdog::host::HostPaths;

const VOL_4096: &str = "C5984E9E33294CBA8AF7D6CA0C44FAB0";
const VOL_1024: &str = "C1E1EB59A1BD452F8C877C2EB87E9FCA";

fn image(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ocfs2-superblock")
        .join(name);
    let mut bytes = std::fs::read(path).unwrap();
    bytes.resize(256 << 10, 0);
    bytes
}

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for sub in [
            "proc/self",
            "sys/class/block",
            "sys/kernel/config/cluster/labclu/node",
            "dev/mapper",
            "dev/disk/by-id",
            "mnt/vol",
            "srv",
        ] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::write(
            root.join("proc/self/mountinfo"),
            "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n",
        )
        .unwrap();
        Self { _dir: dir, root }
    }

    /// A block device `name` holding `contents`, stacked under `holders`.
    fn device(&self, name: &str, contents: &[u8], holders: &[&str]) {
        let class = self.root.join("sys/class/block").join(name);
        std::fs::create_dir_all(class.join("holders")).unwrap();
        std::fs::write(class.join("size"), "512\n").unwrap();
        for holder in holders {
            std::fs::create_dir_all(class.join("holders").join(holder)).unwrap();
        }
        std::fs::write(self.root.join("dev").join(name), contents).unwrap();
    }

    fn host(&self) -> HostActions {
        HostActions {
            paths: HostPaths::new(self.root.clone(), None, None),
            timeout: Duration::from_secs(1),
            command_prefix: Vec::new(),
            steps: None,
            unstack_ignore: Default::default(),
            identity_include_loop: false,
        }
    }

    fn dev(&self, name: &str) -> String {
        self.root
            .join("dev")
            .join(name)
            .to_string_lossy()
            .into_owned()
    }
}

fn spec(source: &str) -> MountSpec {
    MountSpec {
        mountpoint: "/mnt/vol".into(),
        source: source.into(),
        fstype: "ocfs2".into(),
        options: "_netdev".into(),
        ..MountSpec::default()
    }
}

fn refused(tree: &Tree, spec: &MountSpec, says: &str) {
    match remount::check(&tree.host(), spec) {
        Ok(ready) => panic!("{} was accepted: {}", spec.source, ready.describe()),
        Err(why) => assert!(
            why.to_string().contains(says),
            "{why} does not say {says:?}"
        ),
    }
}

#[test]
fn uuid_and_label_resolve_from_superblocks_without_udev() {
    let tree = Tree::new();
    tree.device("sdb", &image("blocksize-4096.bin"), &[]);
    tree.device("sdc", &image("blocksize-1024.bin"), &[]);
    tree.device("sdd", &vec![0u8; 64 << 10], &[]);
    let host = tree.host();
    let ready = remount::check(&host, &spec("UUID=c5984e9e-3329-4cba-8af7-d6ca0c44fab0")).unwrap();
    assert_eq!(ready.device, tree.dev("sdb"));
    let ready = remount::check(&host, &spec("LABEL=\"lab vol 1024\"")).unwrap();
    assert_eq!(ready.device, tree.dev("sdc"));
    refused(
        &tree,
        &spec("UUID=00000000-0000-0000-0000-000000000000"),
        "no device carries volume",
    );
    refused(&tree, &spec("LABEL=nothing"), "labelled");
}

#[test]
fn a_loop_device_with_the_right_label_is_not_chosen_by_default() {
    let tree = Tree::new();
    // Anyone allowed to set up a loop device can give it this superblock.
    tree.device("loop3", &image("blocksize-1024.bin"), &[]);
    refused(&tree, &spec("LABEL=\"lab vol 1024\""), "labelled");
    refused(
        &tree,
        &spec(&format!("UUID={VOL_1024}")),
        "no device carries volume",
    );
    let named = MountSpec {
        uuid: Some(VOL_1024.into()),
        allow_kernel_name: true,
        ..spec("/dev/loop3")
    };
    refused(&tree, &named, "identity_include_loop");
    // The real disk with the label is still found next to it.
    tree.device("sdc", &image("blocksize-1024.bin"), &[]);
    let ready = remount::check(&tree.host(), &spec("LABEL=\"lab vol 1024\"")).unwrap();
    assert_eq!(ready.device, tree.dev("sdc"));
    // Configured in: the loop device is a candidate like any other (two
    // devices with one volume now: refused as a clone, not ignored).
    let host = HostActions {
        identity_include_loop: true,
        ..tree.host()
    };
    let why = remount::check(&host, &spec("LABEL=\"lab vol 1024\"")).unwrap_err();
    assert!(why.to_string().contains("on 2 devices"), "{why}");
}

#[test]
fn the_multipath_map_is_mounted_and_a_clone_refuses() {
    let tree = Tree::new();
    let vol = image("blocksize-4096.bin");
    tree.device("sdb", &vol, &["dm-0"]);
    tree.device("sdc", &vol, &["dm-0"]);
    tree.device("dm-0", &vol, &[]);
    symlink("../dm-0", tree.root.join("dev/mapper/mpatha")).unwrap();
    symlink("../../sdb", tree.root.join("dev/disk/by-id/scsi-3600a")).unwrap();
    let ready = remount::check(&tree.host(), &spec(&format!("UUID={VOL_4096}"))).unwrap();
    assert_eq!(ready.device, tree.dev("dm-0"));
    let ready = remount::check(&tree.host(), &spec("/dev/mapper/mpatha")).unwrap();
    assert_eq!(ready.device, tree.dev("dm-0"));
    // A stable name of one member path: mount the map instead.
    refused(
        &tree,
        &spec("/dev/disk/by-id/scsi-3600a"),
        "path of /dev/dm-0",
    );
    // A cloned LUN (or a snapshot presented to the node) outside the map.
    tree.device("sde", &vol, &[]);
    refused(&tree, &spec(&format!("UUID={VOL_4096}")), "on 2 devices");
    refused(&tree, &spec("/dev/mapper/mpatha"), "on 2 devices");
    // Two volumes with one label.
    tree.device("sdf", &image("blocksize-1024.bin"), &[]);
    let mut relabelled = image("blocksize-4096.bin");
    relabelled[8192 + 272..8192 + 284].copy_from_slice(b"lab vol 1024");
    relabelled[8192 + 336] ^= 0xff; // and another UUID: a different volume
    tree.device("sdg", &relabelled, &[]);
    refused(&tree, &spec("LABEL=lab vol 1024"), "2 volumes are labelled");
}

#[test]
fn kernel_names_and_wrong_volumes_refuse() {
    let tree = Tree::new();
    tree.device("sdb", &image("blocksize-4096.bin"), &[]);
    tree.device("sdc", &image("blocksize-1024.bin"), &[]);
    // Refused by default, even when it is the right volume.
    refused(
        &tree,
        &MountSpec {
            uuid: Some(VOL_4096.into()),
            ..spec("/dev/sdb")
        },
        "kernel name",
    );
    // Allowed: only with a UUID to check, and only when the device carries it.
    refused(
        &tree,
        &MountSpec {
            allow_kernel_name: true,
            ..spec("/dev/sdb")
        },
        "no UUID is known",
    );
    refused(
        &tree,
        &MountSpec {
            allow_kernel_name: true,
            uuid: Some(VOL_4096.into()),
            ..spec("/dev/sdc")
        },
        &format!("/dev/sdc is volume {VOL_1024}, expected {VOL_4096}"),
    );
    let ready = remount::check(
        &tree.host(),
        &MountSpec {
            allow_kernel_name: true,
            uuid: Some(VOL_4096.into()),
            ..spec("/dev/sdb")
        },
    )
    .unwrap();
    assert_eq!(ready.device, tree.dev("sdb"));
    // A UUID= source that disagrees with what was last mounted there.
    refused(
        &tree,
        &MountSpec {
            uuid: Some(VOL_1024.into()),
            ..spec(&format!("UUID={VOL_4096}"))
        },
        "expected",
    );
    // No cluster stack: refused before any device is read.
    std::fs::remove_dir_all(tree.root.join("sys/kernel/config/cluster/labclu")).unwrap();
    refused(&tree, &spec(&format!("UUID={VOL_4096}")), "offline");
}

#[test]
fn a_device_that_never_answers_refuses_within_the_deadline() {
    let tree = Tree::new();
    tree.device("sdb", &image("blocksize-4096.bin"), &[]);
    // A FIFO blocks its reader until a writer comes: a hung LUN in miniature.
    let class = tree.root.join("sys/class/block/sdh");
    std::fs::create_dir_all(&class).unwrap();
    std::fs::write(class.join("size"), "512\n").unwrap();
    let fifo = tree.root.join("dev/sdh");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let started = Instant::now();
    refused(&tree, &spec(&format!("UUID={VOL_4096}")), "/dev/sdh");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Still hung: the next check refuses again without a second reader.
    refused(&tree, &spec(&format!("UUID={VOL_4096}")), "cannot rule out");
    // Release the reader.
    let writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    drop(writer);
}

#[test]
fn a_mount_point_link_is_resolved_in_the_host_root() {
    let tree = Tree::new();
    tree.device("sdb", &image("blocksize-4096.bin"), &[]);
    // /srv/data -> /mnt/vol (absolute: the host's /mnt/vol, not the daemon's).
    symlink("/mnt/vol", tree.root.join("srv/data")).unwrap();
    let link_spec = MountSpec {
        mountpoint: "/srv/data".into(),
        ..spec(&format!("UUID={VOL_4096}"))
    };
    let ready = remount::check(&tree.host(), &link_spec).unwrap();
    assert_eq!(
        ready.target,
        tree.root.join("mnt/vol").to_string_lossy(),
        "mount(8) gets the resolved directory"
    );
    let mounted = tree.root.join("mnt/vol");
    std::fs::write(
        tree.root.join("proc/self/mountinfo"),
        format!(
            "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
             40 1 8:16 / {} rw,relatime - ocfs2 /dev/sdb rw\n",
            mounted.display()
        ),
    )
    .unwrap();
    refused(&tree, &link_spec, "/srv/data (-> /mnt/vol) is mounted");
}

/// Loop devices detached on drop, so a failing test leaves none behind.
struct Loops(Vec<String>);

impl Drop for Loops {
    fn drop(&mut self) {
        for device in &self.0 {
            let _ = std::process::Command::new("losetup")
                .args(["-d", device])
                .status();
        }
    }
}

impl Loops {
    fn attach(&mut self, image: &Path) -> String {
        let output = std::process::Command::new("losetup")
            .args(["-f", "--show"])
            .arg(image)
            .output()
            .unwrap();
        assert!(output.status.success(), "losetup: {output:?}");
        let device = String::from_utf8(output.stdout).unwrap().trim().to_string();
        self.0.push(device.clone());
        device
    }
}

fn blkid_uuid(device: &str) -> String {
    let output = std::process::Command::new("blkid")
        .args(["-p", "-o", "value", "-s", "UUID", device])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn real_ocfs2_volumes_on_loop_devices() {
    if !support::require(nix::unistd::geteuid().is_root(), "root (loop devices)")
        || !support::require(support::have_command("losetup"), "losetup (mount)")
        || !support::require(support::have_command("blkid"), "blkid (util-linux)")
        || !support::require(
            support::have_command("mkfs.ocfs2"),
            "mkfs.ocfs2 (ocfs2-tools)",
        )
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut loops = Loops(Vec::new());
    let mut devices = Vec::new();
    for name in ["a", "b"] {
        let image = dir.path().join(format!("{name}.img"));
        std::fs::File::create(&image)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let made = std::process::Command::new("mkfs.ocfs2")
            .args(["-q", "-F", "-N", "2", "-L", &format!("loop {name}")])
            .args(["--cluster-stack=o2cb", "--cluster-name=labclu"])
            .arg(&image)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(made.status.success(), "mkfs.ocfs2: {made:?}");
        devices.push(loops.attach(&image));
    }
    // The host's own /dev and block devices, seen through a sysfs that lists
    // only this test's loops (other tests' loops may hold copies of these
    // volumes) and shows a registered cluster.
    let sys = dir.path().join("sys");
    std::fs::create_dir_all(sys.join("class/block")).unwrap();
    std::fs::create_dir_all(sys.join("kernel/config/cluster/labclu")).unwrap();
    let expose = |device: &str| {
        let name = device.trim_start_matches("/dev/");
        symlink(
            Path::new("/sys/class/block").join(name),
            sys.join("class/block").join(name),
        )
        .unwrap();
    };
    devices.iter().for_each(|d| expose(d));
    let target = dir.path().join("mnt");
    std::fs::create_dir_all(&target).unwrap();
    // These volumes are on loop devices, which the scan leaves out unless
    // told otherwise (shown just below).
    let host = HostActions {
        paths: HostPaths::new("/".into(), None, Some(sys.clone())),
        timeout: Duration::from_secs(10),
        command_prefix: Vec::new(),
        steps: None,
        unstack_ignore: Default::default(),
        identity_include_loop: true,
    };
    let executor = DryRunExecutor(host.clone());
    let by_default = DryRunExecutor(HostActions {
        identity_include_loop: false,
        ..host
    });
    let uuid_a = blkid_uuid(&devices[0]);
    let plan = |source: String, uuid: Option<&str>, allow: bool| {
        Plan::Remount(MountSpec {
            mountpoint: target.to_string_lossy().into_owned(),
            source,
            fstype: "ocfs2".into(),
            options: "_netdev".into(),
            uuid: uuid.map(|u| u.replace('-', "").to_uppercase()),
            allow_kernel_name: allow,
        })
    };
    // By default a loop device with the right label is not a candidate.
    let outcome = by_default.execute(&plan("LABEL=loop b".into(), None, false));
    assert!(
        matches!(&outcome, Outcome::PreconditionChanged(why) if why.contains("labelled")),
        "{outcome:?}"
    );
    // By UUID (as blkid prints it) and by label, without udev links.
    let outcome = executor.execute(&plan(format!("UUID={uuid_a}"), None, false));
    assert!(
        matches!(&outcome, Outcome::DryRun(would) if would.contains(&format!("{} {}", devices[0], target.display()))),
        "{outcome:?}"
    );
    let outcome = executor.execute(&plan("LABEL=loop b".into(), None, false));
    assert!(
        matches!(&outcome, Outcome::DryRun(would) if would.contains(&devices[1])),
        "{outcome:?}"
    );
    // The kernel name now holds the other volume: refused.
    let outcome = executor.execute(&plan(devices[1].clone(), Some(&uuid_a), true));
    assert!(
        matches!(&outcome, Outcome::PreconditionChanged(why) if why.contains("expected")),
        "{outcome:?}"
    );
    // A block-for-block copy of volume a (a cloned LUN) appears: refused.
    let clone = dir.path().join("clone.img");
    let copied = std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(dir.path().join("a.img"))
        .arg(&clone)
        .status()
        .unwrap();
    assert!(copied.success());
    let cloned = loops.attach(&clone);
    expose(&cloned);
    let outcome = executor.execute(&plan(format!("UUID={uuid_a}"), None, false));
    assert!(
        matches!(&outcome, Outcome::PreconditionChanged(why) if why.contains("on 2 devices") && why.contains(&cloned)),
        "{outcome:?}"
    );
}

#[test]
fn a_san_host_with_hundreds_of_paths_is_scanned_in_batches() {
    let tree = Tree::new();
    let empty = vec![0u8; 16 << 10];
    for n in 0..300 {
        tree.device(&format!("sd{n}"), &empty, &[]);
    }
    tree.device("sdz", &image("blocksize-1024.bin"), &[]);
    let ready = remount::check(&tree.host(), &spec(&format!("UUID={VOL_1024}"))).unwrap();
    assert_eq!(ready.device, tree.dev("sdz"));
}
