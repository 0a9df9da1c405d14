//! o2cb restart sequencing with a fake service manager and fake tools:
//! scripts on a test PATH (and an init script in a fixture root) append
//! what they were called with to one log, so the order is checked exactly.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use ocfs2_watchdog::actions::{Executor, HostActions, MountSpec, Outcome, Plan, RealExecutor};
use ocfs2_watchdog::host::HostPaths;

fn script(path: &Path, log: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let name = path.file_name().unwrap().to_string_lossy();
    std::fs::write(
        path,
        format!("#!/bin/sh\necho \"{name} $*\" >> '{}'\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn restart_unmounts_restarts_and_remounts_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let log = dir.path().join("calls.log");
    let bin = dir.path().join("bin");
    for tool in ["mount", "umount", "systemctl", "o2cb"] {
        script(&bin.join(tool), &log);
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::env::set_var("PATH", path);
    script(&root.join("etc/init.d/o2cb"), &log);
    std::fs::create_dir_all(root.join("srv/data")).unwrap();
    std::fs::create_dir_all(root.join("sys/kernel/config/cluster/ocfs2")).unwrap();
    // The device carries a real OCFS2 superblock (mkfs.ocfs2), which the
    // remount reads to find the volume (actions::identity).
    let superblock = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ocfs2-superblock/blocksize-4096.bin");
    std::fs::create_dir_all(root.join("dev")).unwrap();
    std::fs::copy(superblock, root.join("dev/sdb")).unwrap();
    std::fs::create_dir_all(root.join("sys/class/block/sdb")).unwrap();
    std::fs::write(root.join("sys/class/block/sdb/size"), "24\n").unwrap();
    let paths = HostPaths::new(root.clone(), Some("/proc".into()), None);
    let host = HostActions {
        paths,
        timeout: Duration::from_secs(10),
        command_prefix: Vec::new(),
    };
    let volume = MountSpec {
        mountpoint: "/srv/data".into(),
        source: "UUID=c5984e9e-3329-4cba-8af7-d6ca0c44fab0".into(),
        fstype: "ocfs2".into(),
        options: "_netdev".into(),
        ..MountSpec::default()
    };
    let plan = |stop: &[&str]| Plan::RestartO2cb {
        cluster: "ocfs2".into(),
        volumes: vec![volume.clone()],
        stop_services: stop.iter().map(|s| s.to_string()).collect(),
    };
    let executor = RealExecutor(host);
    let r = root.display();

    // SysV init script found under the root.
    let outcome = executor.execute(&plan(&["app.service"]));
    assert!(matches!(outcome, Outcome::Success(_)), "{outcome:?}");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls,
        format!(
            "systemctl stop app.service\numount {r}/srv/data\no2cb offline\no2cb online\n\
             mount -t ocfs2 -o _netdev {r}/dev/sdb {r}/srv/data\nsystemctl start app.service\n"
        )
    );

    // Only the o2cb tool: the register-cluster sequence.
    std::fs::remove_file(root.join("etc/init.d/o2cb")).unwrap();
    std::fs::create_dir_all(root.join("sbin")).unwrap();
    std::fs::write(root.join("sbin/o2cb"), "").unwrap();
    std::fs::remove_file(&log).unwrap();
    let outcome = executor.execute(&plan(&[]));
    assert!(matches!(outcome, Outcome::Success(_)), "{outcome:?}");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls,
        format!(
            "umount {r}/srv/data\no2cb unregister-cluster ocfs2\no2cb register-cluster ocfs2\n\
             o2cb start-heartbeat ocfs2\nmount -t ocfs2 -o _netdev {r}/dev/sdb {r}/srv/data\n"
        )
    );

    // A process working in the volume: nothing is done.
    std::fs::remove_file(&log).unwrap();
    let mut holder = std::process::Command::new("sleep")
        .arg("10")
        .current_dir(root.join("srv/data"))
        .spawn()
        .unwrap();
    let outcome = executor.execute(&plan(&[]));
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        matches!(&outcome, Outcome::PreconditionChanged(why) if why.contains("sleep")),
        "{outcome:?}"
    );
    assert!(!log.exists(), "no tool ran");

    // No service manager at all: refused.
    std::fs::remove_file(root.join("sbin/o2cb")).unwrap();
    let outcome = executor.execute(&plan(&[]));
    assert!(
        matches!(outcome, Outcome::PreconditionChanged(_)),
        "{outcome:?}"
    );
}
