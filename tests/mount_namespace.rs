//! The mounts collector against the real kernel, in private mount namespaces:
//! stacked layers (3 and 4096), shared propagation, a real read-only remount,
//! and the size of a reachable mount (which no fixture tree can show).

mod support;

use std::path::Path;
use std::sync::Arc;

use ocfs2_watchdog::collector::mounts::MountPoint;
use ocfs2_watchdog::collector::Context;
use ocfs2_watchdog::config::Config;
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::sampler::Sampler;
use support::{bind, enter_private_namespace, mount_tmpfs};

fn tmpfs_config() -> Arc<Config> {
    let mut config = Config::default();
    config.mounts.fstypes = vec!["tmpfs".into()];
    config.mounts.use_fstab = false;
    Arc::new(config)
}

fn sample_mounts(config: Arc<Config>) -> Vec<MountPoint> {
    let budget = config.sampler.collector_timeout;
    let mut sampler = Sampler::new(Arc::new(Context::new(HostPaths::default(), config)));
    let snapshot = sampler.tick(budget);
    let (report, _) = &snapshot.collectors["mounts"];
    assert!(report.success, "{report:?}");
    snapshot.mounts().expect("mount facts").mounts.clone()
}

fn find<'a>(mounts: &'a [MountPoint], path: &Path) -> &'a MountPoint {
    let path = path.to_string_lossy();
    mounts
        .iter()
        .find(|m| m.mountpoint == path)
        .unwrap_or_else(|| panic!("{path} not reported"))
}

#[test]
fn stacked_layers_are_counted_on_the_real_kernel() {
    if !enter_private_namespace("stacked_layers_are_counted_on_the_real_kernel") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let duplicates = dir.path().join("duplicates");
    let shadows = dir.path().join("shadows");
    std::fs::create_dir_all(&duplicates).unwrap();
    std::fs::create_dir_all(&shadows).unwrap();

    // 4096 layers of the same filesystem, as repeated service starts left them.
    mount_tmpfs(&duplicates);
    for _ in 1..4096 {
        bind(&duplicates, &duplicates);
    }
    // Three different tmpfs instances: each shadows the one below.
    for _ in 0..3 {
        mount_tmpfs(&shadows);
    }

    let mounts = sample_mounts(tmpfs_config());
    let stacked = find(&mounts, &duplicates);
    assert_eq!(stacked.stacked, 4096);
    assert_eq!(stacked.duplicate_layers, 4095);
    assert!(!stacked.shadowed);
    assert!(stacked.probe.reachable, "{:?}", stacked.probe);

    let shadowed = find(&mounts, &shadows);
    assert_eq!(shadowed.stacked, 3);
    assert_eq!(shadowed.duplicate_layers, 0);
    assert!(shadowed.shadowed);
}

#[test]
fn propagated_copies_are_counted_on_every_path() {
    if !enter_private_namespace("propagated_copies_are_counted_on_every_path") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (parent, peer) = support::shared_parent_with_peer(dir.path());
    let volume = parent.join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    mount_tmpfs(&volume);
    for _ in 0..4 {
        bind(&volume, &volume);
    }

    let mounts = sample_mounts(tmpfs_config());
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for path in [volume.clone(), peer.join("volume")] {
        // Every bind onto a shared mount is also propagated to its peers, so
        // the stack doubles with each bind (docs/interfaces.md §7.4): 2^4 layers,
        // as the kernel's own table lists them for this path.
        let listed = table
            .lines()
            .filter(|line| line.split(' ').nth(4) == Some(path.to_str().unwrap()))
            .count();
        assert_eq!(listed, 16, "{}", path.display());
        let mount = find(&mounts, &path);
        assert_eq!(mount.stacked, listed, "{}", path.display());
        assert_eq!(mount.duplicate_layers, listed - 1, "{}", path.display());
        assert!(
            mount.shared,
            "{}: top layer is in a peer group",
            path.display()
        );
    }
}

#[test]
fn read_only_remount_is_reported() {
    if !enter_private_namespace("read_only_remount_is_reported") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    mount_tmpfs(&volume);
    assert!(!find(&sample_mounts(tmpfs_config()), &volume).readonly);

    let status = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&volume)
        .status()
        .expect("mount -o remount,ro");
    assert!(status.success());
    let mount = sample_mounts(tmpfs_config());
    let mount = find(&mount, &volume);
    assert!(mount.readonly);
    assert!(mount.probe.reachable);
}

#[test]
fn a_reachable_mount_reports_its_size() {
    if !enter_private_namespace("a_reachable_mount_reports_its_size") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    mount_tmpfs(&volume);
    let config = tmpfs_config();
    let budget = config.sampler.collector_timeout;
    let mut sampler = Sampler::new(Arc::new(Context::new(HostPaths::default(), config)));
    let text = sampler.tick(budget).rendered_text().to_string();
    let series = |name: &str| format!("{name}{{mountpoint=\"{}\"}}", volume.display());
    // mount_tmpfs makes a 1 MiB tmpfs; statfs reports it in 4 KiB pages.
    assert_eq!(
        support::sample_value(&text, &series("ocfs2_mount_size_bytes")),
        Some(1_048_576.0),
        "{text}"
    );
    let avail = support::sample_value(&text, &series("ocfs2_mount_avail_bytes")).expect("avail");
    assert!(avail > 0.0 && avail <= 1_048_576.0, "{avail}");
}
