//! The o2cb restart's holder check on real mounts in a private namespace: a
//! tmpfs is the volume (its device number is its identity), and every kind of
//! holder a path-name comparison misses is made for real: a process in
//! another mount namespace with a file open through its own copy of the
//! mount, a process working in a bind of the volume elsewhere, a program run
//! from the volume (a mapping), a loop device backed by a file on it, a
//! private copy of the mount in another namespace. A slave copy that the
//! unmount propagates to is not a holder.

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use ocfs2_watchdog::actions::openfiles::{holders, Holder, HolderQuery};
use ocfs2_watchdog::host::HostPaths;

fn sh(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(script: &str) -> Killed {
    let child = Command::new("sh").args(["-c", script]).spawn().unwrap();
    // Long enough for the child to open its file or enter its namespace.
    std::thread::sleep(Duration::from_millis(400));
    Killed(child)
}

fn scan(volume: &Path, planned: &[&Path]) -> Vec<Holder> {
    let dev = std::fs::metadata(volume).unwrap().dev();
    let query = HolderQuery {
        devices: BTreeSet::from([(libc::major(dev), libc::minor(dev))]),
        planned_mounts: planned
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        stopping_units: Vec::new(),
    };
    holders(&HostPaths::default(), &query, 50)
}

fn found(holders: &[Holder], words: &[&str]) -> bool {
    holders
        .iter()
        .any(|h| words.iter().all(|w| h.describe().contains(w)))
}

#[test]
fn holders_are_found_in_every_namespace_and_in_the_kernel() {
    if !support::enter_private_namespace("holders_are_found_in_every_namespace_and_in_the_kernel")
        || !support::require(support::have_command("losetup"), "losetup")
    {
        return;
    }
    let tmp = support::ScratchDir::new();
    let volume = tmp.path().join("volume");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&volume).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    support::mount_tmpfs(&volume);
    support::make_shared(&volume);
    std::fs::create_dir(volume.join("sub")).unwrap();
    std::fs::write(volume.join("sub/file"), "data").unwrap();
    let v = volume.display();

    // Nothing uses it yet.
    assert_eq!(scan(&volume, &[&volume]), Vec::new());

    // 1. Another mount namespace where the volume sits at another path (a
    // container's view), a file open through it: no path of ours names it,
    // the fd's mount ID does; the copy itself holds the volume too.
    let inner = tmp.path().join("container-view");
    std::fs::create_dir_all(&inner).unwrap();
    let i = inner.display();
    {
        let _holder = spawn(&format!(
            "exec unshare --mount --propagation private sh -c \
             'mount --bind {v} {i} && umount {v} && exec 3<{i}/sub/file && exec sleep 30'"
        ));
        let found_now = scan(&volume, &[&volume]);
        assert!(
            found(&found_now, &["fd 3", "container-view/sub/file"]),
            "{found_now:?}"
        );
        assert!(
            found(&found_now, &["mount", "in namespace mnt:["]),
            "{found_now:?}"
        );
    }

    // 2. A slave copy (propagation from the planned shared mount) with
    // nothing open: the unmount propagates to it, so it does not hold.
    {
        let _slave = spawn("exec unshare --mount --propagation slave sleep 30");
        let found_now = scan(&volume, &[&volume]);
        assert_eq!(found_now, Vec::new());
    }

    // 2b. In such a slave namespace, a bind of the volume at another path
    // (a pod's hostPath volume): a slave of the same group, but the unmount
    // does not reach it, so it holds the volume.
    {
        let _pod = spawn(&format!(
            "exec unshare --mount --propagation slave sh -c \
             'mount --bind {v} {i} && exec sleep 30'"
        ));
        std::thread::sleep(Duration::from_millis(200));
        let found_now = scan(&volume, &[&volume]);
        assert!(
            found(
                &found_now,
                &["mount", "container-view", "in namespace mnt:["]
            ),
            "{found_now:?}"
        );
    }

    // 3. A bind of a subdirectory elsewhere, and a process working in it:
    // the bind is a mount the plan does not know, the cwd is on the volume.
    sh(&format!("mount --bind {v}/sub {}", elsewhere.display()));
    {
        let _worker = Killed(
            Command::new("sleep")
                .arg("30")
                .current_dir(&elsewhere)
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(200));
        let found_now = scan(&volume, &[&volume]);
        assert!(found(&found_now, &["(sleep)", "cwd"]), "{found_now:?}");
        assert!(
            found(&found_now, &["not in the restart plan", "elsewhere"]),
            "{found_now:?}"
        );
        // Planned, the bind is no holder; the process still is.
        let found_now = scan(&volume, &[&volume, &elsewhere]);
        assert!(found(&found_now, &["cwd"]), "{found_now:?}");
        assert!(!found(&found_now, &["mount"]), "{found_now:?}");
    }
    sh(&format!("umount {}", elsewhere.display()));

    // 4. A program run from the volume: held by its mapping (cwd elsewhere).
    std::fs::copy("/bin/sleep", volume.join("sleep-on-volume")).unwrap();
    {
        let _mapped = Killed(
            Command::new(volume.join("sleep-on-volume"))
                .arg("30")
                .current_dir("/")
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(200));
        let found_now = scan(&volume, &[&volume]);
        assert!(
            found(&found_now, &["mapping", "sleep-on-volume"]),
            "{found_now:?}"
        );
    }

    // 5. A loop device backed by a file on the volume: a kernel holder no
    // process shows.
    sh(&format!("truncate -s 1M {v}/disk.img"));
    let loop_device = sh(&format!("losetup -f --show {v}/disk.img"));
    let found_now = scan(&volume, &[&volume]);
    sh(&format!("losetup -d {loop_device}"));
    assert!(
        found(&found_now, &["kernel: loop device", "disk.img"]),
        "{found_now:?}"
    );
    assert!(found_now.iter().all(|h| h.pid.is_none()), "{found_now:?}");
    assert_eq!(scan(&volume, &[&volume]), Vec::new());
}
