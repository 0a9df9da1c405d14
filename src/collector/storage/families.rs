//! Metric families of the `iscsi` and `storage` collectors (docs/metrics.md,
//! section "Storage path"), declared in one table per collector.

use super::{iscsi, scsi, IscsiFacts, StorageFacts};
use crate::metrics::{bool_value, family_table, Families, Family};

family_table! {
    /// The `iscsi` collector's families.
    enum IscsiFamily {
        LoggedIn = gauge(
            "ocfs2_iscsi_session_logged_in",
            "1 when the session state is LOGGED_IN (I/O flows).",
        ),
        State = gauge(
            "ocfs2_iscsi_session_state",
            "Session state set: FAILED queues I/O until recovery_tmo, FREE has given up (disks transport-offline).",
        ),
        RecoveryTimeout = gauge(
            "ocfs2_iscsi_session_recovery_timeout_seconds",
            "recovery_tmo: how long I/O is queued on a FAILED session before it fails (+Inf when off).",
        ),
        AbortTimeout = gauge(
            "ocfs2_iscsi_session_abort_timeout_seconds",
            "abort_tmo of the session (SCSI error handling: task abort).",
        ),
        LuResetTimeout = gauge(
            "ocfs2_iscsi_session_lu_reset_timeout_seconds",
            "lu_reset_tmo of the session (SCSI error handling: LUN reset).",
        ),
        TargetResetTimeout = gauge(
            "ocfs2_iscsi_session_target_reset_timeout_seconds",
            "tgt_reset_tmo of the session (SCSI error handling: target reset).",
        ),
        TargetState = gauge(
            "ocfs2_iscsi_session_target_state",
            "Target scan state set (target_state; newer kernels only).",
        ),
        Info = gauge(
            "ocfs2_iscsi_session_info",
            "One per session: portal, target portal group, initiator name and interface.",
        ),
        DiskInfo = gauge(
            "ocfs2_iscsi_session_disk_info",
            "One per SCSI disk scanned under the session.",
        ),
        ConnectionState = gauge(
            "ocfs2_iscsi_connection_state",
            "Connection state set (connection state; newer kernels only).",
        ),
        ConnectionInfo = gauge(
            "ocfs2_iscsi_connection_info",
            "One per connection with its portal (persistent address and port).",
        ),
    }
}

family_table! {
    /// The `storage` collector's families: disks, multipath maps, the path
    /// of each watched mount, timeout invariants.
    enum StorageFamily {
        DeviceRunning = gauge(
            "ocfs2_scsi_device_running",
            "1 when the SCSI device state is running.",
        ),
        DeviceState = gauge(
            "ocfs2_scsi_device_state",
            "SCSI device state set: blocked while its iSCSI session is FAILED, transport-offline after recovery_tmo.",
        ),
        DeviceTimeout = gauge(
            "ocfs2_scsi_device_timeout_seconds",
            "SCSI command timeout of the device (device/timeout).",
        ),
        DeviceInfo = gauge(
            "ocfs2_scsi_device_info",
            "One per watched SCSI disk: H:C:T:L address and LUN WWID (stable across nodes).",
        ),
        DeviceIoRequests = counter(
            "ocfs2_scsi_device_io_requests",
            "SCSI commands issued to the device (iorequest_cnt, 32-bit wraps accumulated).",
        ),
        DeviceIoDone = counter(
            "ocfs2_scsi_device_io_done",
            "SCSI commands completed by the device (iodone_cnt, 32-bit wraps accumulated).",
        ),
        DeviceIoErrors = counter(
            "ocfs2_scsi_device_io_errors",
            "SCSI commands completed with an error (ioerr_cnt, 32-bit wraps accumulated).",
        ),
        MultipathPaths = gauge(
            "ocfs2_multipath_paths",
            "Paths of a multipath map by state (active, failed; unknown when neither dm nor SCSI state is known).",
        ),
        MultipathPathActive = gauge(
            "ocfs2_multipath_path_active",
            "1 when the path is active in its map (dmsetup status, else SCSI state running).",
        ),
        MultipathMapInfo = gauge(
            "ocfs2_multipath_map_info",
            "One per multipath map: dm kernel name and WWID (stable across nodes).",
        ),
        MultipathQueueing = gauge(
            "ocfs2_multipath_map_queueing",
            "1 when the map queues I/O for lack of a usable path (dmsetup status only).",
        ),
        MultipathSuspended = gauge(
            "ocfs2_multipath_map_suspended",
            "1 when the dm map is suspended (I/O held).",
        ),
        MultipathQueueTimeout = gauge(
            "ocfs2_multipath_queue_timeout_seconds",
            "How long the map queues I/O with no path: no_path_retry x polling_interval from multipath.conf (absent when it queues forever).",
        ),
        MultipathQueueForever = gauge(
            "ocfs2_multipath_queue_forever",
            "1 when the map queues I/O with no path forever (no_path_retry queue, or queue_if_no_path without no_path_retry).",
        ),
        DmsetupSkipped = gauge(
            "ocfs2_watchdog_dmsetup_skipped",
            "1 with the reason when path states came from SCSI device states instead of dmsetup status.",
        ),
        MultipathConfInvalid = gauge(
            "ocfs2_watchdog_multipath_conf_invalid_values",
            "multipath.conf values that could not be understood (defaults used instead).",
        ),
        PathInfo = gauge(
            "ocfs2_storage_path_info",
            "One per (watched mount, disk under it): the chain mount -> device -> multipath map -> path disk -> iSCSI session/target, with filesystem UUID and LUN WWID.",
        ),
        PathDisks = gauge(
            "ocfs2_storage_path_disks",
            "Disks under a watched mount by state: usable (SCSI running and not failed in dm) or down.",
        ),
        StallTimeout = gauge(
            "ocfs2_storage_stall_timeout_seconds",
            "How long I/O to the mount can hang before it fails: multipath queue time, else iSCSI recovery_tmo.",
        ),
        StallUnbounded = gauge(
            "ocfs2_storage_stall_unbounded",
            "1 when I/O to the mount can hang forever (multipath queues with no path, or recovery_tmo off).",
        ),
        InvariantViolated = gauge(
            "ocfs2_timeout_invariant_violated",
            "1 when a timeout invariant does not hold (see docs/metrics.md, Storage path).",
        ),
        InvariantLarger = gauge(
            "ocfs2_timeout_invariant_larger_seconds",
            "The value that must be the larger one in the check (heartbeat timeout, idle timeout).",
        ),
        InvariantSmaller = gauge(
            "ocfs2_timeout_invariant_smaller_seconds",
            "The value that must be the smaller one in the check (storage stall, keepalive delay).",
        ),
    }
}

pub fn iscsi(facts: &IscsiFacts) -> Vec<Family> {
    use IscsiFamily as F;
    let mut f = Families::<IscsiFamily>::new();
    for s in &facts.sessions {
        let target = s.target_label();
        let portal = s.portal();
        let st = [("session", s.name.as_str()), ("target", target)];
        f[F::LoggedIn].push(
            &[
                ("session", &s.name),
                ("target", target),
                ("portal", &portal),
            ],
            bool_value(s.is_logged_in()),
        );
        if let Some(current) = &s.state {
            for name in iscsi::SESSION_STATES {
                f[F::State].push(
                    &[("session", &s.name), ("target", target), ("state", name)],
                    bool_value(current == name),
                );
            }
        }
        if let Some(current) = &s.target_state {
            for name in iscsi::TARGET_STATES {
                f[F::TargetState].push(
                    &[("session", &s.name), ("target", target), ("state", name)],
                    bool_value(current == name),
                );
            }
        }
        for (family, value) in [
            (F::RecoveryTimeout, s.recovery_tmo_seconds),
            (F::AbortTimeout, s.abort_tmo_seconds),
            (F::LuResetTimeout, s.lu_reset_tmo_seconds),
            (F::TargetResetTimeout, s.tgt_reset_tmo_seconds),
        ] {
            // `off` (never) has no finite value; prometheus-client would print
            // `inf`, which OpenMetrics does not allow.
            if let Some(value) = value.filter(|v| v.is_finite()) {
                f[family].push(&st, value);
            }
        }
        f[F::Info].push(
            &[
                ("session", &s.name),
                ("target", target),
                ("portal", &portal),
                ("tpgt", s.tpgt.as_deref().unwrap_or("")),
                ("initiator", s.initiator.as_deref().unwrap_or("")),
                ("iface", s.iface.as_deref().unwrap_or("")),
            ],
            1.0,
        );
        for d in &s.disks {
            f[F::DiskInfo].push(
                &[
                    ("session", &s.name),
                    ("target", target),
                    ("device", &format!("/dev/{d}")),
                ],
                1.0,
            );
        }
        for c in &s.connections {
            let labels = [
                ("session", s.name.as_str()),
                ("connection", c.name.as_str()),
            ];
            f[F::ConnectionInfo].push(
                &[
                    labels[0],
                    labels[1],
                    ("portal", c.portal().as_deref().unwrap_or("")),
                ],
                1.0,
            );
            if let Some(current) = &c.state {
                for name in iscsi::CONNECTION_STATES {
                    f[F::ConnectionState].push(
                        &[labels[0], labels[1], ("state", name)],
                        bool_value(current == name),
                    );
                }
            }
        }
    }
    f.into_vec()
}

pub fn storage(facts: &StorageFacts) -> Vec<Family> {
    let mut f = Families::<StorageFamily>::new();
    disks(facts, &mut f);
    multipath(facts, &mut f);
    paths(facts, &mut f);
    invariants(facts, &mut f);
    f.into_vec()
}

fn disks(facts: &StorageFacts, f: &mut Families<StorageFamily>) {
    use StorageFamily as F;
    for disk in &facts.disks {
        let device = format!("/dev/{}", disk.name);
        let labels = [("device", device.as_str())];
        if let Some(flag) = disk.is_running() {
            f[F::DeviceRunning].push(&labels, bool_value(flag));
        }
        if let Some(current) = &disk.state {
            for name in scsi::DEVICE_STATES {
                f[F::DeviceState].push(&[labels[0], ("state", name)], bool_value(current == name));
            }
        }
        if let Some(seconds) = disk.timeout_seconds {
            f[F::DeviceTimeout].push(&labels, seconds);
        }
        f[F::DeviceInfo].push(
            &[
                labels[0],
                ("hctl", disk.hctl.as_deref().unwrap_or("")),
                (
                    "wwid",
                    facts
                        .wwid_by_disk
                        .get(&disk.name)
                        .map_or("", String::as_str),
                ),
            ],
            1.0,
        );
        for (family, counter) in [
            (F::DeviceIoRequests, "iorequest_cnt"),
            (F::DeviceIoDone, "iodone_cnt"),
            (F::DeviceIoErrors, "ioerr_cnt"),
        ] {
            if let Some(total) = disk.totals.get(counter) {
                f[family].push(&labels, *total);
            }
        }
    }
}

fn multipath(facts: &StorageFacts, f: &mut Families<StorageFamily>) {
    use StorageFamily as F;
    for view in &facts.maps {
        let map = view.map.name.as_str();
        let count = |want: Option<bool>| view.paths.iter().filter(|p| p.1 == want).count() as f64;
        let paths = &mut f[F::MultipathPaths];
        paths.push(&[("map", map), ("state", "active")], count(Some(true)));
        paths.push(&[("map", map), ("state", "failed")], count(Some(false)));
        if view.paths.iter().any(|p| p.1.is_none()) {
            paths.push(&[("map", map), ("state", "unknown")], count(None));
        }
        for (device, active) in &view.paths {
            if let Some(active) = active {
                f[F::MultipathPathActive].push(
                    &[("map", map), ("device", &format!("/dev/{device}"))],
                    bool_value(*active),
                );
            }
        }
        f[F::MultipathMapInfo].push(
            &[("map", map), ("dm", &view.map.dm), ("wwid", &view.map.wwid)],
            1.0,
        );
        if let Some(flag) = view.queueing {
            f[F::MultipathQueueing].push(&[("map", map)], bool_value(flag));
        }
        if let Some(flag) = view.map.suspended {
            f[F::MultipathSuspended].push(&[("map", map)], bool_value(flag));
        }
        f[F::MultipathQueueForever].push(
            &[("map", map)],
            bool_value(view.stall_seconds.is_infinite()),
        );
        if view.stall_seconds.is_finite() {
            f[F::MultipathQueueTimeout].push(&[("map", map)], view.stall_seconds);
        }
    }
    if let Some(skip) = facts.dmsetup_skipped {
        f[F::DmsetupSkipped].push(&[("reason", skip.as_str())], 1.0);
    }
    if !facts.maps.is_empty() {
        f[F::MultipathConfInvalid].push(&[], facts.multipath_conf_invalid_values as f64);
    }
}

fn paths(facts: &StorageFacts, f: &mut Families<StorageFamily>) {
    use StorageFamily as F;
    for mount in &facts.mounts {
        let mp = mount.mountpoint.as_str();
        let map_view = facts.maps.iter().find(|v| mount.maps.contains(&v.map.dm));
        let map = map_view.map_or("", |v| v.map.name.as_str());
        let mut usable = 0.0;
        for disk in &mount.disks {
            let (session, target) = facts
                .sessions_by_disk
                .get(disk)
                .map_or(("", ""), |(s, t)| (s.as_str(), t.as_str()));
            let wwid = map_view
                .map(|v| v.map.wwid.as_str())
                .or_else(|| facts.wwid_by_disk.get(disk).map(String::as_str))
                .unwrap_or("");
            f[F::PathInfo].push(
                &[
                    ("mountpoint", mp),
                    ("device", &mount.device),
                    ("uuid", &mount.uuid),
                    ("map", map),
                    ("path_device", &format!("/dev/{disk}")),
                    ("session", session),
                    ("target", target),
                    ("wwid", wwid),
                ],
                1.0,
            );
            let running = facts
                .disks
                .iter()
                .find(|d| &d.name == disk)
                .and_then(scsi::Disk::is_running)
                .unwrap_or(false);
            let dm_failed = map_view
                .is_some_and(|v| v.paths.iter().any(|p| &p.0 == disk && p.1 == Some(false)));
            if running && !dm_failed {
                usable += 1.0;
            }
        }
        if !mount.disks.is_empty() {
            let disks = &mut f[F::PathDisks];
            disks.push(&[("mountpoint", mp), ("state", "usable")], usable);
            disks.push(
                &[("mountpoint", mp), ("state", "down")],
                mount.disks.len() as f64 - usable,
            );
        }
        if let Some(seconds) = mount.stall_seconds {
            f[F::StallUnbounded].push(&[("mountpoint", mp)], bool_value(seconds.is_infinite()));
            if seconds.is_finite() {
                f[F::StallTimeout].push(&[("mountpoint", mp)], seconds);
            }
        }
    }
}

fn invariants(facts: &StorageFacts, f: &mut Families<StorageFamily>) {
    use StorageFamily as F;
    for check in &facts.invariants {
        let labels = [("check", check.check)];
        f[F::InvariantViolated].push(&labels, bool_value(check.violated()));
        // An unbounded stall has no finite value: the check says violated and
        // ocfs2_storage_stall_unbounded says why.
        for (family, value) in [
            (F::InvariantLarger, check.larger_seconds),
            (F::InvariantSmaller, check.smaller_seconds),
        ] {
            if value.is_finite() {
                f[family].push(&labels, value);
            }
        }
    }
}
