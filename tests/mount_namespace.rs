//! The mounts collector against the real kernel, in private mount namespaces:
//! stacked layers (3 and 4096), shared propagation, a real read-only remount,
//! a kubelet-like host (2000 pod binds: bounded series, a stacked pod path
//! shown) and a stacked unwatched host (the table is read again only after a
//! change),
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
    let dir = support::ScratchDir::new();
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
    let dir = support::ScratchDir::new();
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
    let dir = support::ScratchDir::new();
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

/// A filesystem type the tests' configuration does not watch.
fn mount_ramfs(path: &Path) {
    nix::mount::mount(
        Some("ramfs"),
        path,
        Some("ramfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap_or_else(|e| panic!("mount ramfs on {}: {e}", path.display()));
}

/// Sample lines of the mounts families in OpenMetrics text.
fn mounts_series(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| l.starts_with("ocfs2_mount_") || l.starts_with("ocfs2_filesystem_"))
        .collect()
}

#[test]
fn kubelet_host_exports_bounded_series_and_shows_a_stacked_pod_path() {
    if !enter_private_namespace("kubelet_host_exports_bounded_series_and_shows_a_stacked_pod_path")
    {
        return;
    }
    let host = support::kubelet::kubelet_host(2000);
    // 2000 other mounts, of a type this configuration does not watch.
    let others = support::ScratchDir::new();
    for i in 0..2000 {
        let path = others.path().join(i.to_string());
        std::fs::create_dir_all(&path).unwrap();
        mount_ramfs(&path);
    }
    // One pod path stacked twice, as a crash-looping CSI node plugin leaves it.
    let stacked = &host.pods[7];
    bind(&host.staged, stacked);

    let config = tmpfs_config(); // default mount_points_exclude
    let budget = config.sampler.collector_timeout;
    let mut sampler = Sampler::new(Arc::new(Context::new(HostPaths::default(), config)));
    let snapshot = sampler.tick(budget);
    let facts = snapshot.mounts().expect("mount facts");
    assert_eq!(facts.mounts.iter().filter(|m| !m.detailed).count(), 1999);
    let metrics = snapshot.rendered();
    let series = mounts_series(metrics);
    assert!(series.len() <= 500, "{} mounts series", series.len());
    let stacked_path = stacked.to_string_lossy();
    assert_eq!(
        support::sample_value(
            metrics,
            &format!("ocfs2_mount_stacked{{mountpoint=\"{stacked_path}\"}}")
        ),
        Some(2.0),
        "the stacked pod path keeps its series"
    );
    assert_eq!(
        support::sample_value(
            metrics,
            &format!("ocfs2_mount_duplicate_layers{{mountpoint=\"{stacked_path}\"}}")
        ),
        Some(1.0)
    );
    let healthy = host.pods[8].to_string_lossy().into_owned();
    assert!(
        !metrics.contains(&format!("mountpoint=\"{healthy}\"")),
        "a healthy pod path has no series"
    );
    assert!(
        support::samples::values(metrics, "ocfs2_filesystem_mount_points", &[]).contains(&2001.0),
        "2000 pod paths + the staged path: {series:#?}"
    );
    assert!(
        support::samples::values(metrics, "ocfs2_filesystem_mount_points_stacked", &[])
            .contains(&1.0),
        "{series:#?}"
    );
    assert_eq!(
        support::sample_value(metrics, "ocfs2_watchdog_mount_points_excluded"),
        Some(1999.0)
    );
}

#[test]
fn the_table_is_read_again_only_after_a_change() {
    if !enter_private_namespace("the_table_is_read_again_only_after_a_change") {
        return;
    }
    let dir = support::ScratchDir::new();
    // The stacked unwatched host: 4096 layers of a type nobody watches.
    let stack = dir.path().join("stack");
    std::fs::create_dir_all(&stack).unwrap();
    mount_ramfs(&stack);
    for _ in 1..4096 {
        bind(&stack, &stack);
    }
    let config = tmpfs_config();
    let budget = config.sampler.collector_timeout;
    let mut sampler = Sampler::new(Arc::new(Context::new(HostPaths::default(), config)));
    let table = |s: &ocfs2_watchdog::snapshot::Snapshot| {
        let facts = s.mounts().expect("mount facts");
        assert!(facts.change_detection, "/proc/1/mountinfo is polled");
        (facts.table_reads, facts.table_entries)
    };
    let (reads, entries) = table(&sampler.tick(budget));
    assert_eq!(reads, 1);
    assert!(entries > 4096);
    assert!(
        !sampler
            .tick(budget)
            .mounts()
            .unwrap()
            .mounts
            .iter()
            .any(|m| m.mountpoint == stack.to_string_lossy()),
        "unwatched layers are not reported"
    );
    assert_eq!(
        table(&sampler.tick(budget)),
        (1, entries),
        "nothing changed"
    );

    let volume = dir.path().join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    mount_tmpfs(&volume);
    let after = sampler.tick(budget);
    assert_eq!(table(&after), (2, entries + 1), "the next snapshot has it");
    assert!(find(&after.mounts().unwrap().mounts, &volume).is_mounted());
    assert_eq!(table(&sampler.tick(budget)), (2, entries + 1));
}

#[test]
fn a_reachable_mount_reports_its_size() {
    if !enter_private_namespace("a_reachable_mount_reports_its_size") {
        return;
    }
    let dir = support::ScratchDir::new();
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
