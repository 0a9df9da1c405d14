//! The tool-driven actions against fake tools on a test PATH: iSCSI re-login
//! (`iscsiadm`, with `dmsetup` for path states) and the leaked-heartbeat kill
//! (`ocfs2_hb_ctl -K`), on a fixture host tree (sysfs block devices, a
//! multipath map, configfs regions, devices holding real OCFS2 superblocks).
//! Each fake appends its arguments to one log, so what ran, in what order, is
//! checked exactly; a precondition that no longer holds runs nothing; a tool
//! that hangs is killed at the action deadline. One test function: PATH is
//! process-wide.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use ocfs2_watchdog::actions::{Executor, HostActions, Outcome, Plan, RealExecutor};
use ocfs2_watchdog::host::HostPaths;

fn fake(path: &Path, log: &Path, body: &str) {
    let name = path.file_name().unwrap().to_string_lossy();
    std::fs::write(
        path,
        format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\n{body}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn calls(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let _ = std::fs::remove_file(log);
    text
}

const MOUNTED: &str = "C5984E9E33294CBA8AF7D6CA0C44FAB0";
const LEAKED: &str = "C1E1EB59A1BD452F8C877C2EB87E9FCA";
const DMSETUP_BOTH_ACTIVE: &str =
    "echo 'mpatha: 0 2097152 multipath 2 0 0 0 2 1 A 0 1 2 8:16 F 1 0 1 E 0 1 2 8:32 A 0 0 1'";

fn mkdirs(root: &Path, dirs: &[&str]) {
    for dir in dirs {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
}

fn write(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// session1 → sdb, a path of multipath map mpatha (dm-0) whose other path
/// is sdc (another session); sdd holds a mounted OCFS2 volume.
fn storage_tree(root: &Path) {
    mkdirs(
        root,
        &[
            "sys/devices/platform/host2/session1/target2:0:0/2:0:0:1/block/sdb",
            "sys/class/iscsi_session/session1",
            "sys/class/block/sdb/holders/dm-0",
            "sys/class/block/sdc/holders/dm-0",
            "sys/class/block/dm-0/slaves/sdb",
            "sys/class/block/dm-0/slaves/sdc",
            "sys/class/block/sdd/holders",
            "sys/dev/block",
            "sys/kernel/config/cluster/labclu/heartbeat",
            "proc/1",
        ],
    );
    symlink(
        "../../../devices/platform/host2/session1",
        root.join("sys/class/iscsi_session/session1/device"),
    )
    .unwrap();
    write(root, "sys/class/iscsi_session/session1/state", "FAILED\n");
    write(root, "sys/class/block/dm-0/dm/uuid", "mpath-36001405abc\n");
    write(root, "sys/class/block/dm-0/dm/name", "mpatha\n");
    for (disk, number) in [("sdb", "8:16"), ("sdc", "8:32"), ("sdd", "8:48")] {
        write(
            root,
            &format!("sys/class/block/{disk}/dev"),
            &format!("{number}\n"),
        );
        write(root, &format!("sys/class/block/{disk}/size"), "2048\n");
        write(
            root,
            &format!("sys/class/block/{disk}/device/state"),
            "running\n",
        );
    }
    write(root, "sys/class/block/sdb/device/state", "blocked\n");
    symlink("../../class/block/sdd", root.join("sys/dev/block/8:48")).unwrap();
    symlink("../../class/block/dm-0", root.join("sys/dev/block/253:0")).unwrap();
    // sdd carries a real superblock (mkfs.ocfs2) and is mounted.
    let superblock = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ocfs2-superblock/blocksize-4096.bin");
    std::fs::create_dir_all(root.join("dev")).unwrap();
    std::fs::copy(superblock, root.join("dev/sdd")).unwrap();
    let table = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                 40 1 8:48 / /mnt/a rw,relatime - ocfs2 /dev/sdd rw,heartbeat=local\n";
    write(root, "proc/1/mountinfo", table);
    write(root, "proc/self/mountinfo", table);
    for uuid in [MOUNTED, LEAKED] {
        mkdirs(
            root,
            &[&format!(
                "sys/kernel/config/cluster/labclu/heartbeat/{uuid}"
            )],
        );
    }
    write(
        root,
        &format!("sys/kernel/config/cluster/labclu/heartbeat/{MOUNTED}/dev"),
        "sdd\n",
    );
}

fn refused(outcome: Outcome, says: &str) {
    match outcome {
        Outcome::PreconditionChanged(why) => {
            assert!(why.contains(says), "{why:?} does not say {says:?}")
        }
        other => panic!("expected a refusal saying {says:?}, got {other:?}"),
    }
}

#[test]
fn iscsi_relogin_and_heartbeat_kill_run_the_right_tools() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let bin = dir.path().join("bin");
    let log = dir.path().join("calls.log");
    std::fs::create_dir_all(&bin).unwrap();
    std::env::set_var(
        "PATH",
        format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    storage_tree(&root);
    let session = root.join("sys/class/iscsi_session/session1");
    let executor = RealExecutor(HostActions {
        paths: HostPaths::new(root.clone(), None, None),
        timeout: Duration::from_secs(2),
        command_prefix: Vec::new(),
        steps: None,
        unstack_ignore: Default::default(),
        identity_include_loop: false,
    });
    let relogin = Plan::IscsiRelogin {
        session: "session1".into(),
        target: "iqn.2024-01.lab.ocfs2:shared".into(),
        portal: "10.99.0.1:3260".into(),
    };

    // A FAILED session whose disk has another active path and carries
    // nothing in use: logout (allowed to fail), then login.
    fake(&bin.join("iscsiadm"), &log, "exit 0");
    fake(&bin.join("dmsetup"), &log, DMSETUP_BOTH_ACTIVE);
    let outcome = executor.execute(&relogin);
    assert!(matches!(outcome, Outcome::Success(_)), "{outcome:?}");
    assert_eq!(
        calls(&log),
        "dmsetup status --target multipath\n\
         iscsiadm -m node -T iqn.2024-01.lab.ocfs2:shared -p 10.99.0.1:3260 --logout\n\
         iscsiadm -m node -T iqn.2024-01.lab.ocfs2:shared -p 10.99.0.1:3260 --login\n"
    );

    // The other path is failed in dm, or its SCSI device is not running: the
    // logout would leave the map without a path.
    fake(
        &bin.join("dmsetup"),
        &log,
        &DMSETUP_BOTH_ACTIVE.replace("8:32 A 0", "8:32 F 3"),
    );
    refused(executor.execute(&relogin), "no active path besides");
    fake(&bin.join("dmsetup"), &log, DMSETUP_BOTH_ACTIVE);
    write(
        &root,
        "sys/class/block/sdc/device/state",
        "transport-offline\n",
    );
    refused(executor.execute(&relogin), "no active path besides");
    write(&root, "sys/class/block/sdc/device/state", "running\n");
    // No path states at all: refused, not guessed.
    fake(&bin.join("dmsetup"), &log, "exit 1");
    refused(
        executor.execute(&relogin),
        "cannot read multipath path states",
    );
    fake(&bin.join("dmsetup"), &log, DMSETUP_BOTH_ACTIVE);
    // Not a multipath member: the session is the only path.
    std::fs::remove_dir(root.join("sys/class/block/sdb/holders/dm-0")).unwrap();
    refused(executor.execute(&relogin), "not a path of a multipath map");
    std::fs::create_dir(root.join("sys/class/block/sdb/holders/dm-0")).unwrap();
    assert!(!calls(&log).contains("iscsiadm"), "nothing logged out");

    // The map is mounted, or a heartbeat region runs on it.
    let table = std::fs::read_to_string(root.join("proc/1/mountinfo")).unwrap();
    write(
        &root,
        "proc/1/mountinfo",
        &format!("{table}50 1 253:0 / /mnt/b rw - xfs /dev/mapper/mpatha rw\n"),
    );
    refused(
        executor.execute(&relogin),
        "sdb is under /dev/mapper/mpatha mounted at /mnt/b",
    );
    write(&root, "proc/1/mountinfo", &table);
    let region = root.join(format!(
        "sys/kernel/config/cluster/labclu/heartbeat/{LEAKED}"
    ));
    write(
        &root,
        &format!("sys/kernel/config/cluster/labclu/heartbeat/{LEAKED}/dev"),
        "dm-0\n",
    );
    refused(
        executor.execute(&relogin),
        &format!("heartbeat region {LEAKED}"),
    );
    std::fs::remove_file(region.join("dev")).unwrap();
    // Disks that cannot be listed: refused.
    std::fs::remove_file(session.join("device")).unwrap();
    refused(executor.execute(&relogin), "cannot list the disks");
    symlink(
        "../../../devices/platform/host2/session1",
        session.join("device"),
    )
    .unwrap();
    assert!(!calls(&log).contains("iscsiadm"), "nothing logged out");

    // Logged in again by the time we act: nothing runs.
    std::fs::write(session.join("state"), "LOGGED_IN\n").unwrap();
    refused(executor.execute(&relogin), "LOGGED_IN");
    assert_eq!(calls(&log), "");

    // The login fails: reported failed.
    std::fs::write(session.join("state"), "FREE\n").unwrap();
    fake(
        &bin.join("iscsiadm"),
        &log,
        "[ \"$7\" = --login ] && exit 8; exit 0",
    );
    let outcome = executor.execute(&relogin);
    assert!(matches!(outcome, Outcome::Failed(_)), "{outcome:?}");

    // The tool hangs: killed at the action deadline.
    fake(&bin.join("iscsiadm"), &log, "exec sleep 60");
    let started = Instant::now();
    let outcome = executor.execute(&relogin);
    assert!(matches!(outcome, Outcome::Failed(_)), "{outcome:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let _ = calls(&log);

    // The leaked heartbeat region, with another OCFS2 volume mounted on the
    // node: decided per UUID, so it is stopped (the call the kernel makes at
    // unmount).
    let kill = |uuid: &str| Plan::KillLeakedHeartbeat { uuid: uuid.into() };
    fake(&bin.join("ocfs2_hb_ctl"), &log, "exit 0");
    let outcome = executor.execute(&kill(LEAKED));
    assert!(matches!(outcome, Outcome::Success(_)), "{outcome:?}");
    assert_eq!(calls(&log), format!("ocfs2_hb_ctl -K -u {LEAKED} ocfs2\n"));

    // The mounted volume's own region: its superblock says it is mounted.
    refused(
        executor.execute(&kill(MOUNTED)),
        "is mounted at /mnt/a (/dev/sdd)",
    );
    // debugfs shows the leaked UUID's superblock alive: mounted after all.
    let debugfs = root.join(format!("sys/kernel/debug/ocfs2/{LEAKED}"));
    std::fs::create_dir_all(&debugfs).unwrap();
    refused(executor.execute(&kill(LEAKED)), "debugfs");
    std::fs::remove_dir(&debugfs).unwrap();
    // An OCFS2 mount whose device cannot be named might be this volume.
    let table = std::fs::read_to_string(root.join("proc/self/mountinfo")).unwrap();
    write(
        &root,
        "proc/self/mountinfo",
        &format!("{table}41 1 8:99 / /mnt/c rw - ocfs2 /dev/sdz rw\n"),
    );
    refused(executor.execute(&kill(LEAKED)), "cannot tell which volume");
    // Or whose superblock cannot be read.
    write(&root, "sys/class/block/sdz/size", "2048\n");
    write(&root, "dev/sdz", "");
    refused(
        executor.execute(&kill(LEAKED)),
        "no OCFS2 superblock read from /dev/sdz",
    );
    write(&root, "proc/self/mountinfo", &table);
    assert_eq!(calls(&log), "", "nothing stopped while in doubt");

    // Region already gone: nothing runs.
    std::fs::remove_dir_all(&region).unwrap();
    refused(executor.execute(&kill(LEAKED)), "gone");
    assert_eq!(calls(&log), "");
}
