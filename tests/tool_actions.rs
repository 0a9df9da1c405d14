//! The tool-driven actions against fake tools on a test PATH: iSCSI re-login
//! (`iscsiadm`) and the leaked-heartbeat kill (`ocfs2_hb_ctl -K`). Each fake
//! appends its arguments to one log, so what ran, in what order, is checked
//! exactly; a precondition that no longer holds runs nothing; a tool that
//! hangs is killed at the action deadline. One test function: PATH is
//! process-wide.

use std::os::unix::fs::PermissionsExt;
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
    let session = root.join("sys/class/iscsi_session/session1");
    std::fs::create_dir_all(&session).unwrap();
    let region =
        root.join("sys/kernel/config/cluster/labclu/heartbeat/DEA93192F0874F53BB5290B5205C6B64");
    std::fs::create_dir_all(&region).unwrap();
    let executor = RealExecutor(HostActions {
        paths: HostPaths::new(root.clone(), Some("/proc".into()), None),
        timeout: Duration::from_secs(2),
        command_prefix: Vec::new(),
        steps: None,
    });
    let relogin = Plan::IscsiRelogin {
        session: "session1".into(),
        target: "iqn.2024-01.lab.ocfs2:shared".into(),
        portal: "10.99.0.1:3260".into(),
    };

    // A FAILED session: logout (allowed to fail), then login.
    fake(&bin.join("iscsiadm"), &log, "exit 0");
    std::fs::write(session.join("state"), "FAILED\n").unwrap();
    let outcome = executor.execute(&relogin);
    assert!(matches!(outcome, Outcome::Success(_)), "{outcome:?}");
    assert_eq!(
        calls(&log),
        "iscsiadm -m node -T iqn.2024-01.lab.ocfs2:shared -p 10.99.0.1:3260 --logout\n\
         iscsiadm -m node -T iqn.2024-01.lab.ocfs2:shared -p 10.99.0.1:3260 --login\n"
    );

    // Logged in again by the time we act: nothing runs.
    std::fs::write(session.join("state"), "LOGGED_IN\n").unwrap();
    let outcome = executor.execute(&relogin);
    assert!(
        matches!(outcome, Outcome::PreconditionChanged(_)),
        "{outcome:?}"
    );
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

    // The leaked heartbeat region: the call the kernel makes at unmount.
    let kill = Plan::KillLeakedHeartbeat {
        uuid: "DEA93192F0874F53BB5290B5205C6B64".into(),
    };
    fake(&bin.join("ocfs2_hb_ctl"), &log, "exit 0");
    let outcome = executor.execute(&kill);
    assert!(matches!(outcome, Outcome::Success(_)), "{outcome:?}");
    assert_eq!(
        calls(&log),
        "ocfs2_hb_ctl -K -u DEA93192F0874F53BB5290B5205C6B64 ocfs2\n"
    );

    // Region already gone: nothing runs.
    std::fs::remove_dir(&region).unwrap();
    let outcome = executor.execute(&kill);
    assert!(
        matches!(outcome, Outcome::PreconditionChanged(_)),
        "{outcome:?}"
    );
    assert_eq!(calls(&log), "");
}
