//! The o2cb restart as a transaction, on real mounts in a private mount
//! namespace: a loop-device filesystem stands in for the volume (its mount
//! and a read-only bind of a subdirectory, as kubelet makes them, shared
//! propagation), the cluster stack is a fake `o2cb` tool that keeps a fake
//! configfs under the test root and logs every call, so the order of the
//! changes, the undo after an injected failure, the timeouts written before
//! heartbeat starts and the rejoin check are all checked against the kernel's
//! mount table. One test function: PATH is process-wide.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ocfs2_watchdog::actions::audit::{AuditRecord, Phase, StepLog};
use ocfs2_watchdog::actions::{Executor, HostActions, Outcome, Plan, RealExecutor, RestoreMount};
use ocfs2_watchdog::collector::mounts::mountinfo::{parse_mountinfo, MountEntry};
use ocfs2_watchdog::collector::mounts::{MountPoint, ProbeView};
use ocfs2_watchdog::collector::o2cb::StackTimeouts;
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::rules::o2cb_plan::restore_mounts;

const FAKE_O2CB: &str = r#"#!/bin/sh
echo "o2cb $*" >> "$LOG"
c="$ROOT/sys/kernel/config/cluster/$2"
case "$1" in
register-cluster)
    [ -e "$DIR/fail-register" ] && { echo "injected failure" >&2; exit 1; }
    mkdir -p "$c/heartbeat" "$c/node/n1" "$c/node/n2"
    echo 30000 > "$c/idle_timeout_ms"; echo 2000 > "$c/keepalive_delay_ms"
    echo 2000 > "$c/reconnect_delay_ms"; echo reset > "$c/fence_method"
    echo 31 > "$c/heartbeat/dead_threshold"; echo local > "$c/heartbeat/mode"
    for n in 1 2; do
        echo $n > "$c/node/n$n/num"; echo 10.0.0.$n > "$c/node/n$n/ipv4_address"
        echo 7777 > "$c/node/n$n/ipv4_port"; echo 0 > "$c/node/n$n/local"
    done
    echo 1 > "$c/node/n1/local" ;;
unregister-cluster)
    [ -e "$DIR/fail-unregister" ] && { echo "heartbeat region still active" >&2; exit 1; }
    rm -rf "$c" ;;
esac
exit 0
"#;

fn sh(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn executable(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn table() -> Vec<MountEntry> {
    parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap()).entries
}

fn top(path: &Path) -> Option<MountEntry> {
    let name = path.to_string_lossy();
    table().into_iter().rev().find(|e| e.mount_point == name)
}

/// Mount facts as the collector gives them (host names under the root).
fn facts(root: &Path, paths: &[&str], uuid: &str) -> Vec<MountPoint> {
    paths
        .iter()
        .map(|p| {
            let mut entry = top(&root.join(p.trim_start_matches('/'))).expect("mounted");
            entry.mount_point = p.to_string();
            // The plan treats the stand-in like the cluster volume it is.
            entry.fstype = "ocfs2".into();
            MountPoint {
                mountpoint: p.to_string(),
                stacked: 1,
                duplicate_layers: 0,
                shadowed: false,
                top_id: Some(entry.id),
                shared: entry.shared_group().is_some(),
                uuid: uuid.into(),
                last_uuid: String::new(),
                detailed: true,
                label: String::new(),
                readonly: entry.is_readonly(),
                error_readonly: false,
                device_missing: false,
                mountpoint_deleted: false,
                expected: None,
                unstable_device_name: None,
                probe: ProbeView::default(),
                top: Some(entry),
            }
        })
        .collect()
}

struct Lab {
    dir: PathBuf,
    root: PathBuf,
    log: PathBuf,
    loop_device: String,
}

impl Lab {
    fn calls(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        text
    }

    fn configfs(&self, name: &str) -> String {
        let path = self.root.join("sys/kernel/config/cluster/ocfs2").join(name);
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn inject(&self, marker: &str, on: bool) {
        let path = self.dir.join(marker);
        if on {
            std::fs::write(path, "").unwrap();
        } else {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Both mounts are back exactly: the volume with its flags, the bind of
    /// `/sub` read-only, both shared.
    fn assert_restored(&self, device: (u32, u32)) {
        let primary = top(&self.root.join("srv/data")).expect("volume mounted");
        assert_eq!((primary.major, primary.minor), device);
        assert_eq!(primary.root, "/");
        assert!(primary.mount_options.contains("nosuid"), "{primary:?}");
        assert!(primary.shared_group().is_some(), "{primary:?}");
        let bind = top(&self.root.join("pods/p1/vol")).expect("bind mounted");
        assert_eq!((bind.major, bind.minor), device);
        assert_eq!(bind.root, "/sub");
        assert!(bind.mount_options.starts_with("ro"), "{bind:?}");
        assert!(bind.shared_group().is_some(), "{bind:?}");
        assert!(self.root.join("pods/p1/vol/pod-file").exists());
    }
}

fn undo_lines(state: &Path) -> Vec<AuditRecord> {
    std::fs::read_to_string(state.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<AuditRecord>(l).unwrap())
        .filter(|r| r.phase == Phase::Undo)
        .collect()
}

#[test]
fn restart_is_a_transaction_on_real_mounts() {
    if !support::enter_private_namespace("restart_is_a_transaction_on_real_mounts")
        || !support::require(support::have_command("losetup"), "losetup")
        || !support::require(support::have_command("mkfs.ext4"), "mkfs.ext4 (e2fsprogs)")
    {
        return;
    }
    let tmp = support::ScratchDir::new();
    let dir = tmp.path().to_path_buf();
    let root = dir.join("root");
    let log = dir.join("calls.log");
    let state = dir.join("state");
    let bin = dir.join("bin");
    executable(&bin.join("o2cb"), FAKE_O2CB);
    executable(
        &bin.join("systemctl"),
        "#!/bin/sh\necho \"systemctl $*\" >> \"$LOG\"\n",
    );
    std::env::set_var("LOG", &log);
    std::env::set_var("ROOT", &root);
    std::env::set_var("DIR", &dir);
    std::env::set_var(
        "PATH",
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    );
    // The volume: ext4 on a loop device, UUID link as udev makes it.
    let volume = support::LoopVolume::ext4(&dir, "volume");
    let loop_device = volume.device.clone();
    let uuid = sh(&format!("blkid -s UUID -o value {loop_device}"));
    let by_uuid = root.join("dev/disk/by-uuid");
    std::fs::create_dir_all(&by_uuid).unwrap();
    std::os::unix::fs::symlink(&loop_device, by_uuid.join(&uuid)).unwrap();
    volume.expose_under(&root);
    let lab = Lab {
        dir: dir.clone(),
        root: root.clone(),
        log: log.clone(),
        loop_device,
    };
    run_cases(&lab, &state, &uuid);
    let _ = Command::new("umount").arg("-R").arg(&root).status();
}

fn run_cases(lab: &Lab, state: &Path, uuid: &str) {
    let root = &lab.root;
    for d in ["srv/data", "pods/p1/vol", "sbin", "etc/default"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("sbin/o2cb"), "").unwrap();
    sh(&format!(
        "mount -o nosuid {dev} {r}/srv/data && mount --make-shared {r}/srv/data && \
         mkdir {r}/srv/data/sub && touch {r}/srv/data/sub/pod-file && \
         mount --bind {r}/srv/data/sub {r}/pods/p1/vol && \
         mount -o remount,bind,ro {r}/pods/p1/vol",
        dev = lab.loop_device,
        r = root.display()
    ));
    let device = top(&root.join("srv/data"))
        .map(|e| (e.major, e.minor))
        .unwrap();
    let volumes: Vec<RestoreMount> =
        restore_mounts(&facts(root, &["/srv/data", "/pods/p1/vol"], uuid)).unwrap();
    // Back to the stand-in's real type for the mount commands.
    let volumes: Vec<RestoreMount> = volumes
        .into_iter()
        .map(|mut v| {
            v.fstype = "ext4".into();
            v
        })
        .collect();
    let debug = root.join("sys/kernel/debug");
    std::fs::create_dir_all(debug.join("o2hb")).unwrap();
    std::fs::create_dir_all(debug.join("o2net")).unwrap();
    std::fs::write(debug.join("o2hb/livenodes"), "1 2 \n").unwrap();
    std::fs::write(debug.join("o2net/connected_nodes"), "2 \n").unwrap();
    std::fs::write(
        root.join("etc/default/o2cb"),
        "O2CB_ENABLED=true\nO2CB_HEARTBEAT_THRESHOLD=7\nO2CB_IDLE_TIMEOUT_MS=10000\n",
    )
    .unwrap();
    let host = HostActions {
        paths: HostPaths::new(root.clone(), Some("/proc".into()), None),
        timeout: Duration::from_secs(3),
        command_prefix: Vec::new(),
        steps: Some(StepLog::new(state, "enforce")),
        unstack_ignore: Default::default(),
        identity_include_loop: false,
    };
    let executor = RealExecutor(host);
    let plan = |stop: &[&str], timeouts| Plan::RestartO2cb {
        cluster: "ocfs2".into(),
        volumes: volumes.clone(),
        stop_services: stop.iter().map(|s| s.to_string()).collect(),
        timeouts,
    };
    sh("o2cb register-cluster ocfs2");
    lab.calls();
    let r = root.display();

    // 1. The whole restart: timeouts from /etc/default/o2cb written between
    // register and heartbeat start; both mounts back exactly; rejoined.
    let outcome = executor.execute(&plan(&["app.service"], None));
    assert!(
        matches!(&outcome, Outcome::Success(d) if d.contains("rejoined")),
        "{outcome:?}"
    );
    assert_eq!(
        lab.calls(),
        "systemctl stop app.service\no2cb stop-heartbeat ocfs2\no2cb unregister-cluster ocfs2\n\
         o2cb register-cluster ocfs2\no2cb start-heartbeat ocfs2\nsystemctl start app.service\n"
    );
    assert_eq!(lab.configfs("idle_timeout_ms"), "10000");
    assert_eq!(lab.configfs("heartbeat/dead_threshold"), "7");
    assert_eq!(lab.configfs("keepalive_delay_ms"), "2000");
    lab.assert_restored(device);

    // 2. A failure after the unmounts (the stack refuses to stop): both
    // mounts restored in mount order, each undo step audited.
    lab.inject("fail-unregister", true);
    let outcome = executor.execute(&plan(&[], None));
    lab.inject("fail-unregister", false);
    let Outcome::Failed(why) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(why.contains("heartbeat region still active"), "{why}");
    assert!(why.contains("undone: remount /srv/data"), "{why}");
    assert_eq!(
        lab.calls(),
        "o2cb stop-heartbeat ocfs2\no2cb unregister-cluster ocfs2\n"
    );
    lab.assert_restored(device);
    let undo = undo_lines(state);
    let steps: Vec<(&str, &str)> = undo
        .iter()
        .map(|r| (r.detail.as_deref().unwrap_or(""), r.outcome.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            (
                format!("remount /srv/data (UUID={uuid})").as_str(),
                "success"
            ),
            (
                "remount /pods/p1/vol (bind of /srv/data root /sub)",
                "success"
            ),
        ]
    );
    assert!(undo.iter().all(|r| r.rule == "o2cb_down"
        && r.action == "restart_o2cb"
        && r.mode == "enforce"
        && r.target == "ocfs2"));

    // 3. A failure after the stack went down (register fails): the stack is
    // started again first (fails again, said so), then the mounts.
    lab.inject("fail-register", true);
    let outcome = executor.execute(&plan(&[], None));
    lab.inject("fail-register", false);
    let Outcome::Failed(why) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(why.contains("NOT undone: start o2cb"), "{why}");
    let undo = undo_lines(state);
    let last: Vec<&str> = undo[2..].iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(last, ["failed", "success", "success"], "{undo:?}");
    assert_eq!(undo[2].detail.as_deref(), Some("start o2cb"));
    lab.assert_restored(device);
    lab.calls();
    sh("o2cb register-cluster ocfs2");
    lab.calls();

    // 4. No sysconfig values: the timeouts the stack ran with (the daemon's
    // snapshot) are written again. A live peer that does not connect: failed.
    std::fs::write(root.join("etc/default/o2cb"), "O2CB_ENABLED=true\n").unwrap();
    std::fs::write(debug.join("o2net/connected_nodes"), "\n").unwrap();
    let seen = StackTimeouts {
        dead_threshold: Some(61),
        idle_timeout_ms: Some(15000),
        keepalive_delay_ms: Some(3000),
        reconnect_delay_ms: Some(2500),
    };
    let outcome = executor.execute(&plan(&[], Some(seen)));
    assert!(
        matches!(&outcome, Outcome::Failed(why) if why.contains("did not rejoin") && why.contains("nodes 2")),
        "{outcome:?}"
    );
    assert_eq!(lab.configfs("idle_timeout_ms"), "15000");
    assert_eq!(lab.configfs("keepalive_delay_ms"), "3000");
    assert_eq!(lab.configfs("reconnect_delay_ms"), "2500");
    assert_eq!(lab.configfs("heartbeat/dead_threshold"), "61");
    lab.assert_restored(device);
    std::fs::write(debug.join("o2net/connected_nodes"), "2 \n").unwrap();
    lab.calls();

    // 5. A process in another mount namespace holding a file on the volume
    // through its own copy of the mount: refused before any change.
    let mut holder = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("exec 3<{r}/srv/data/sub/pod-file; exec sleep 30"))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let outcome = executor.execute(&plan(&[], None));
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        matches!(&outcome, Outcome::PreconditionChanged(why) if why.contains("fd 3") || why.contains("namespace")),
        "{outcome:?}"
    );
    assert_eq!(lab.calls(), "", "no tool ran");

    // 6. A mount changed behind the plan's back: refused, nothing run.
    sh(&format!("umount {r}/pods/p1/vol"));
    let outcome = executor.execute(&plan(&[], None));
    assert!(
        matches!(&outcome, Outcome::PreconditionChanged(why) if why.contains("/pods/p1/vol")),
        "{outcome:?}"
    );
    assert_eq!(lab.calls(), "");

    // 7. No service manager at all: refused.
    std::fs::remove_file(root.join("sbin/o2cb")).unwrap();
    let outcome = executor.execute(&plan(&[], None));
    assert!(
        matches!(outcome, Outcome::PreconditionChanged(_)),
        "{outcome:?}"
    );
}
