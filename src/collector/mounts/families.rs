//! The `/metrics` families of the mounts collector.
//!
//! Per mount point only where it matters (`MountPoint::detailed`: expected,
//! a problem, or not excluded by `mounts.mount_points_exclude`), so a
//! kubelet host with thousands of pod binds of one volume exports a few
//! hundred series, not 15 per bind; and per filesystem (device number,
//! source, UUID) the counts of mount points, stacked and stuck ones, which
//! cover the excluded paths too. The facts behind them keep every path, so
//! the rules still see and heal an excluded one.

use std::collections::BTreeMap;

use super::MountFacts;
use crate::metrics::{bool_value, family_table, Families, Family};

family_table! {
    /// The mounts collector's families.
    enum MountFamily {
        Info = gauge(
            "ocfs2_mount_info",
            "One per mounted watched volume (topmost layer of a watched type).",
        ),
        Stacked = gauge(
            "ocfs2_mount_stacked",
            "Layers stacked on this mount point (1 is healthy, 0 not mounted).",
        ),
        DuplicateLayers = gauge(
            "ocfs2_mount_duplicate_layers",
            "Layers identical to the layer below them (same device, root, per-mount flags and propagation type): safe to unstack.",
        ),
        Shadowed = gauge(
            "ocfs2_mount_shadowed",
            "1 when a different filesystem (or another root) is stacked on this mount point.",
        ),
        Readonly = gauge(
            "ocfs2_mount_readonly",
            "1 when the superblock is read-only (error remount) or mounted ro.",
        ),
        ErrorReadonly = gauge(
            "ocfs2_mount_error_readonly",
            "1 when the filesystem went read-only under a read-write mount (OCFS2 errors=remount-ro).",
        ),
        Stuck = gauge(
            "ocfs2_mount_stuck",
            "1 when the stat/statfs probe missed its deadline and has not returned.",
        ),
        Reachable = gauge(
            "ocfs2_mount_reachable",
            "1 when the last probe answered and the path shows the mounted filesystem.",
        ),
        ProbeSeconds = gauge(
            "ocfs2_mount_probe_duration_seconds",
            "How long the last stat/statfs probe took (so far, when stuck).",
        ),
        SizeBytes = gauge("ocfs2_mount_size_bytes", "Filesystem size from statfs."),
        AvailBytes = gauge(
            "ocfs2_mount_avail_bytes",
            "Bytes available to unprivileged users from statfs.",
        ),
        Expected = gauge(
            "ocfs2_mount_expected",
            "1 when the mount point is configured to be mounted (fstab or config).",
        ),
        Missing = gauge("ocfs2_mount_missing", "1 when expected but not mounted."),
        DeviceMissing = gauge(
            "ocfs2_mount_device_missing",
            "1 when the mounted source device no longer exists on the host (stale mount).",
        ),
        PointDeleted = gauge(
            "ocfs2_mount_point_deleted",
            "1 when the mount point directory was deleted under the mount (stale mount).",
        ),
        UnstableDeviceName = gauge(
            "ocfs2_mount_unstable_device_name",
            "1 when the configured source is a kernel name (/dev/sdX, /dev/dm-N) that can differ between nodes.",
        ),
        MountinfoEntries = gauge(
            "ocfs2_watchdog_mountinfo_entries",
            "Entries in the host mount table at the last read.",
        ),
        MountinfoInvalidLines = gauge(
            "ocfs2_watchdog_mountinfo_invalid_lines",
            "Mount table lines that could not be parsed at the last read.",
        ),
        MountinfoReadSeconds = gauge(
            "ocfs2_watchdog_mountinfo_read_seconds",
            "How long reading and parsing the mount table took.",
        ),
        FstabInvalidLines = gauge(
            "ocfs2_watchdog_fstab_invalid_lines",
            "fstab lines that could not be parsed at the last read.",
        ),
        MountinfoReads = counter(
            "ocfs2_watchdog_mountinfo_reads",
            "Reads of the host mount table; it is re-read only when the kernel reports a change (or table_max_age passed).",
        ),
        MountinfoChangeDetection = gauge(
            "ocfs2_watchdog_mountinfo_change_detection",
            "1 when the mount table is polled for changes, 0 when it is read on every tick (not on procfs).",
        ),
        MountPointsExcluded = gauge(
            "ocfs2_watchdog_mount_points_excluded",
            "Watched mount points without per-mount-point series (mounts.mount_points_exclude, no problem, not expected).",
        ),
        FilesystemMountPoints = gauge(
            "ocfs2_filesystem_mount_points",
            "Mount points showing this filesystem (binds included, excluded paths too).",
        ),
        FilesystemStacked = gauge(
            "ocfs2_filesystem_mount_points_stacked",
            "Mount points of this filesystem with more than one layer.",
        ),
        FilesystemStuck = gauge(
            "ocfs2_filesystem_mount_points_stuck",
            "Mount points of this filesystem whose stat/statfs probe is stuck.",
        ),
    }
}

pub(super) fn families(facts: &MountFacts) -> Vec<Family> {
    use MountFamily as F;
    let mut f = Families::<MountFamily>::new();
    for mount in facts.mounts.iter().filter(|m| m.detailed) {
        let mp = [("mountpoint", mount.mountpoint.as_str())];
        if let Some(top) = &mount.top {
            f[F::Info].push(
                &[
                    ("mountpoint", &mount.mountpoint),
                    ("device", &top.source),
                    ("uuid", &mount.uuid),
                    ("label", &mount.label),
                ],
                1.0,
            );
            for (family, flag) in [
                (F::Readonly, mount.readonly),
                (F::ErrorReadonly, mount.error_readonly),
                (F::Stuck, mount.probe.stuck),
                (F::Reachable, mount.probe.reachable),
                (F::Shadowed, mount.shadowed),
                (F::DeviceMissing, mount.device_missing),
                (F::PointDeleted, mount.mountpoint_deleted),
            ] {
                f[family].push(&mp, bool_value(flag));
            }
            f[F::DuplicateLayers].push(&mp, mount.duplicate_layers as f64);
            if let Some(seconds) = mount.probe.duration_seconds {
                f[F::ProbeSeconds].push(&mp, seconds);
            }
            if let (Some(s), Some(a)) = (mount.probe.size_bytes, mount.probe.avail_bytes) {
                f[F::SizeBytes].push(&mp, s);
                f[F::AvailBytes].push(&mp, a);
            }
        }
        f[F::Stacked].push(&mp, mount.stacked as f64);
        f[F::Expected].push(&mp, bool_value(mount.expected.is_some()));
        f[F::Missing].push(&mp, bool_value(mount.is_missing()));
        if let Some(flag) = mount.unstable_device_name {
            f[F::UnstableDeviceName].push(&mp, bool_value(flag));
        }
    }
    for (family, value) in [
        (F::MountinfoEntries, facts.table_entries as f64),
        (F::MountinfoInvalidLines, facts.invalid_lines as f64),
        (F::MountinfoReadSeconds, facts.read_seconds),
        (F::FstabInvalidLines, facts.fstab_invalid_lines as f64),
        (F::MountinfoReads, facts.table_reads as f64),
        (
            F::MountinfoChangeDetection,
            bool_value(facts.change_detection),
        ),
        (F::MountPointsExcluded, facts.excluded as f64),
    ] {
        f[family].push(&[], value);
    }
    per_filesystem(facts, &mut f);
    f.into_vec()
}

/// One series set per mounted filesystem, whatever the number of paths it
/// is bound to: what stays bounded on a container host.
fn per_filesystem(facts: &MountFacts, f: &mut Families<MountFamily>) {
    #[derive(Default)]
    struct Counts {
        points: usize,
        stacked: usize,
        stuck: usize,
    }
    let mut by_fs: BTreeMap<(&str, &str, String), Counts> = BTreeMap::new();
    for mount in &facts.mounts {
        let Some(top) = &mount.top else {
            continue;
        };
        let key = (
            mount.uuid.as_str(),
            top.source.as_str(),
            format!("{}:{}", top.major, top.minor),
        );
        let counts = by_fs.entry(key).or_default();
        counts.points += 1;
        counts.stacked += usize::from(mount.stacked > 1);
        counts.stuck += usize::from(mount.probe.stuck);
    }
    for ((uuid, device, devno), counts) in &by_fs {
        let labels = [
            ("uuid", *uuid),
            ("device", *device),
            ("devno", devno.as_str()),
        ];
        f[MountFamily::FilesystemMountPoints].push(&labels, counts.points as f64);
        f[MountFamily::FilesystemStacked].push(&labels, counts.stacked as f64);
        f[MountFamily::FilesystemStuck].push(&labels, counts.stuck as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MountFacts, MountPoint, ProbeView};
    use super::*;
    use crate::collector::mounts::mountinfo::parse_mountinfo;

    fn pod_path(i: usize, stuck: bool, detailed: bool) -> MountPoint {
        let top = parse_mountinfo("30 1 254:0 / /x rw - ocfs2 /dev/vda rw")
            .entries
            .remove(0);
        MountPoint {
            mountpoint: format!("/var/lib/kubelet/pods/{i}/volumes/v/mount"),
            stacked: 1,
            duplicate_layers: 0,
            shadowed: false,
            top: Some(top),
            top_id: Some(30),
            shared: false,
            uuid: "DEA93192F0874F53BB5290B5205C6B64".into(),
            last_uuid: String::new(),
            label: String::new(),
            readonly: false,
            error_readonly: false,
            device_missing: false,
            mountpoint_deleted: false,
            expected: None,
            unstable_device_name: None,
            probe: ProbeView {
                stuck,
                ..ProbeView::default()
            },
            detailed,
        }
    }

    #[test]
    fn excluded_paths_are_counted_per_filesystem_and_a_stuck_one_is_shown() {
        let mut mounts: Vec<MountPoint> = (0..100).map(|i| pod_path(i, false, false)).collect();
        let stuck = pod_path(100, true, false);
        assert!(stuck.has_problem(), "a stuck path is a problem");
        mounts.push(MountPoint {
            detailed: true,
            ..stuck
        });
        let facts = MountFacts {
            excluded: 100,
            mounts,
            ..MountFacts::default()
        };
        let families = families(&facts);
        let find = |name: &str| families.iter().find(|f| f.name == name).unwrap();
        assert_eq!(find("ocfs2_mount_stuck").samples.len(), 1);
        assert_eq!(find("ocfs2_mount_stuck").samples[0].value, 1.0);
        let points = find("ocfs2_filesystem_mount_points");
        assert_eq!(points.samples.len(), 1);
        assert_eq!(points.samples[0].value, 101.0);
        assert_eq!(
            find("ocfs2_filesystem_mount_points_stuck").samples[0].value,
            1.0
        );
        assert_eq!(
            find("ocfs2_filesystem_mount_points_stacked").samples[0].value,
            0.0
        );
    }
}
