//! What each fixture scenario is about, checked against values taken from its
//! capture (tests/data/captures/) or its README, not from the code.
//!
//! The goldens (tests/golden.rs) are the code's output compared with itself
//! and can be regenerated; this table never is. Each row is written by hand
//! from the source named next to it, and a scenario without rows fails, so a
//! new fixture has to say what it shows. The values are read from what the
//! binary's `--once` prints, the same path as the goldens.

mod support;

use support::fixtures::{name_of, once, scenarios};
use support::samples::values;

/// One expected series: name, a subset of its labels, and its value (or
/// `None`: no series with these labels may exist).
type Row = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<f64>,
);

const REGION: (&str, &str) = ("hb_region", "DEA93192F0874F53BB5290B5205C6B64");
const UUID: (&str, &str) = ("uuid", "DEA93192F0874F53BB5290B5205C6B64");
const LABCLU: (&str, &str) = ("o2cb_cluster", "labclu");

/// n1-02-2node-mounted-configfs-cluster.txt: dead_threshold 7 → (7-1)*2 s =
/// 12 s to self-fence, idle_timeout_ms 10000; n1-02 debugfs-o2hb:
/// elapsed_time_in_ms 1700 → ratio 1.7/12; livenodes `1 2`; o2net
/// connected_nodes `2`; o2dlm dlm_state `Domain Map: 1 2`.
const TWO_NODES_MOUNTED_N1: &[Row] = &[
    ("ocfs2_o2cb_cluster_online", &[LABCLU], Some(1.0)),
    ("ocfs2_o2cb_heartbeat_dead_threshold", &[LABCLU], Some(7.0)),
    (
        "ocfs2_o2cb_heartbeat_timeout_seconds",
        &[LABCLU],
        Some(12.0),
    ),
    ("ocfs2_o2cb_idle_timeout_seconds", &[LABCLU], Some(10.0)),
    (
        "ocfs2_heartbeat_node_live",
        &[REGION, ("node_num", "1")],
        Some(1.0),
    ),
    (
        "ocfs2_heartbeat_node_live",
        &[REGION, ("node_num", "2")],
        Some(1.0),
    ),
    ("ocfs2_heartbeat_timeout_ratio", &[REGION], Some(1.7 / 12.0)),
    ("ocfs2_net_connected", &[("node_num", "2")], Some(1.0)),
    (
        "ocfs2_dlm_domain_member",
        &[UUID, ("node_num", "1")],
        Some(1.0),
    ),
    (
        "ocfs2_dlm_domain_member",
        &[UUID, ("node_num", "2")],
        Some(1.0),
    ),
    (
        "ocfs2_dlm_membership_mismatch",
        &[("kind", "missing_from_domain")],
        Some(0.0),
    ),
    (
        "ocfs2_dlm_membership_mismatch",
        &[("kind", "not_heartbeating")],
        Some(0.0),
    ),
    // n1-02-2node-mounted-mountinfo.txt: one ocfs2 line on /mnt/ocfs2, rw.
    (
        "ocfs2_mount_stacked",
        &[("mountpoint", "/mnt/ocfs2")],
        Some(1.0),
    ),
    (
        "ocfs2_mount_readonly",
        &[("mountpoint", "/mnt/ocfs2")],
        Some(0.0),
    ),
];

fn rows(scenario: &str) -> Option<Vec<Row>> {
    let rows: Vec<Row> = match scenario {
        // README: n2 gone in every view; mountinfo `ro` superblock; /srv/data
        // expected from the kernel name /dev/sdb and not mounted.
        "alerts-degraded" => vec![
            (
                "ocfs2_heartbeat_node_live",
                &[REGION, ("node_num", "2")],
                Some(0.0),
            ),
            ("ocfs2_net_connected", &[("node_num", "2")], Some(0.0)),
            (
                "ocfs2_dlm_domain_member",
                &[UUID, ("node_num", "2")],
                Some(0.0),
            ),
            (
                "ocfs2_mount_error_readonly",
                &[("mountpoint", "/mnt/ocfs2")],
                Some(1.0),
            ),
            (
                "ocfs2_mount_missing",
                &[("mountpoint", "/srv/data")],
                Some(1.0),
            ),
            (
                "ocfs2_mount_unstable_device_name",
                &[("mountpoint", "/srv/data")],
                Some(1.0),
            ),
            (
                "ocfs2_dlm_membership_mismatch",
                &[("kind", "missing_from_domain")],
                Some(0.0),
            ),
            (
                "ocfs2_dlm_membership_mismatch",
                &[("kind", "not_heartbeating")],
                Some(0.0),
            ),
        ],
        "cluster-mounted-n1" => TWO_NODES_MOUNTED_N1.to_vec(),
        // n2-02 captures: same timeouts; n2's connected_nodes is `1`.
        "cluster-mounted-n2" => vec![
            (
                "ocfs2_o2cb_heartbeat_timeout_seconds",
                &[LABCLU],
                Some(12.0),
            ),
            (
                "ocfs2_heartbeat_node_live",
                &[REGION, ("node_num", "1")],
                Some(1.0),
            ),
            (
                "ocfs2_heartbeat_node_live",
                &[REGION, ("node_num", "2")],
                Some(1.0),
            ),
            ("ocfs2_net_connected", &[("node_num", "1")], Some(1.0)),
            (
                "ocfs2_dlm_domain_member",
                &[UUID, ("node_num", "1")],
                Some(1.0),
            ),
            (
                "ocfs2_dlm_domain_member",
                &[UUID, ("node_num", "2")],
                Some(1.0),
            ),
            (
                "ocfs2_dlm_membership_mismatch",
                &[("kind", "missing_from_domain")],
                Some(0.0),
            ),
        ],
        // n1-01-online-nomount-configfs-cluster.txt: dead_threshold 31 (60 s),
        // idle_timeout_ms 30000; no region, no DLM domain, nothing connected.
        "cluster-online-unmounted" => vec![
            ("ocfs2_o2cb_cluster_online", &[LABCLU], Some(1.0)),
            ("ocfs2_o2cb_heartbeat_dead_threshold", &[LABCLU], Some(31.0)),
            (
                "ocfs2_o2cb_heartbeat_timeout_seconds",
                &[LABCLU],
                Some(60.0),
            ),
            ("ocfs2_o2cb_idle_timeout_seconds", &[LABCLU], Some(30.0)),
            ("ocfs2_heartbeat_live_nodes", &[], Some(0.0)),
            ("ocfs2_heartbeat_timeout_ratio", &[], None),
            ("ocfs2_net_connected", &[("node_num", "2")], Some(0.0)),
            ("ocfs2_dlm_domain_member", &[], None),
        ],
        // README: O2CB_ENABLED=false, threshold 31, idle 30000, n2 at
        // 10.99.0.3, hostname node1, one garbage line in /etc/default/o2cb.
        "config-drift" => vec![
            (
                "ocfs2_o2cb_config_mismatch",
                &[("setting", "o2cb_enabled")],
                Some(1.0),
            ),
            (
                "ocfs2_o2cb_config_mismatch",
                &[("setting", "heartbeat_dead_threshold")],
                Some(1.0),
            ),
            (
                "ocfs2_o2cb_config_mismatch",
                &[("setting", "idle_timeout_ms")],
                Some(1.0),
            ),
            (
                "ocfs2_o2cb_config_mismatch",
                &[("setting", "node_address")],
                Some(1.0),
            ),
            (
                "ocfs2_o2cb_config_mismatch",
                &[("setting", "local_node_name")],
                Some(1.0),
            ),
            (
                "ocfs2_o2cb_config_mismatch",
                &[("setting", "cluster_name")],
                Some(0.0),
            ),
            (
                "ocfs2_o2cb_config_mismatch",
                &[("setting", "node_number")],
                Some(0.0),
            ),
            (
                "ocfs2_o2cb_config_mismatch",
                &[("setting", "keepalive_delay_ms")],
                Some(0.0),
            ),
            (
                "ocfs2_o2cb_config_parse_errors",
                &[("file", "/etc/default/o2cb")],
                Some(1.0),
            ),
            (
                "ocfs2_o2cb_config_parse_errors",
                &[("file", "/etc/ocfs2/cluster.conf")],
                Some(0.0),
            ),
            ("ocfs2_o2cb_heartbeat_dead_threshold", &[LABCLU], Some(7.0)),
        ],
        // n1-03a-pause-n2-timeline.txt at 96.49 s: `Recovery => Pid: 1535
        // Nodes: 2`; n1-02 debugfs-ocfs2 fs_state: 4 slots, n1 in slot 0.
        "fs-state-recovery" => vec![
            ("ocfs2_fs_recovery_running", &[UUID], Some(1.0)),
            ("ocfs2_fs_recovery_nodes", &[UUID], Some(1.0)),
            ("ocfs2_fs_slots", &[UUID], Some(4.0)),
            ("ocfs2_fs_own_slot", &[UUID], Some(0.0)),
        ],
        // README: elapsed_time_in_ms is `garbage`: the heartbeat collector
        // fails with reason parse, the others stay up.
        "heartbeat-debugfs-garbage" => vec![
            (
                "ocfs2_watchdog_collector_success",
                &[("collector", "heartbeat")],
                Some(0.0),
            ),
            (
                "ocfs2_watchdog_collector_error",
                &[("collector", "heartbeat"), ("reason", "parse")],
                Some(1.0),
            ),
            ("ocfs2_heartbeat_timeout_ratio", &[], None),
            (
                "ocfs2_watchdog_collector_success",
                &[("collector", "o2cb")],
                Some(1.0),
            ),
            (
                "ocfs2_watchdog_collector_success",
                &[("collector", "net")],
                Some(1.0),
            ),
            (
                "ocfs2_watchdog_collector_success",
                &[("collector", "dlm")],
                Some(1.0),
            ),
            (
                "ocfs2_watchdog_collector_success",
                &[("collector", "mounts")],
                Some(1.0),
            ),
        ],
        // README: elapsed 10000 ms of a 12 s timeout.
        "heartbeat-near-timeout" => vec![
            (
                "ocfs2_heartbeat_timeout_ratio",
                &[REGION],
                Some(10.0 / 12.0),
            ),
            (
                "ocfs2_heartbeat_timeout_ratio_max",
                &[REGION],
                Some(10.0 / 12.0),
            ),
            ("ocfs2_heartbeat_slow_samples_total", &[REGION], Some(1.0)),
            ("ocfs2_heartbeat_samples_total", &[REGION], Some(1.0)),
        ],
        // n1-03a-pause-n2-timeline.txt at 97.92 s: hb=[1 ], net=[],
        // elapsed=1844, Domain Map: 1.
        "heartbeat-node-dead" => vec![
            (
                "ocfs2_heartbeat_node_live",
                &[REGION, ("node_num", "1")],
                Some(1.0),
            ),
            (
                "ocfs2_heartbeat_node_live",
                &[REGION, ("node_num", "2")],
                Some(0.0),
            ),
            ("ocfs2_heartbeat_live_nodes", &[], Some(1.0)),
            (
                "ocfs2_heartbeat_timeout_ratio",
                &[REGION],
                Some(1.844 / 12.0),
            ),
            ("ocfs2_net_connected", &[("node_num", "2")], Some(0.0)),
            (
                "ocfs2_dlm_domain_member",
                &[UUID, ("node_num", "2")],
                Some(0.0),
            ),
            (
                "ocfs2_dlm_membership_mismatch",
                &[("kind", "missing_from_domain")],
                Some(0.0),
            ),
            (
                "ocfs2_dlm_membership_mismatch",
                &[("kind", "not_heartbeating")],
                Some(0.0),
            ),
        ],
        // README: state truncated, target missing, recovery_tmo garbage.
        "iscsi-degraded" => vec![
            (
                "ocfs2_watchdog_collector_success",
                &[("collector", "iscsi")],
                Some(1.0),
            ),
            (
                "ocfs2_watchdog_collector_success",
                &[("collector", "storage")],
                Some(1.0),
            ),
            (
                "ocfs2_iscsi_session_logged_in",
                &[("session", "session2"), ("target", "")],
                Some(0.0),
            ),
            ("ocfs2_iscsi_session_state", &[], None),
            ("ocfs2_iscsi_session_recovery_timeout_seconds", &[], None),
            ("ocfs2_scsi_device_timeout_seconds", &[], None),
            (
                "ocfs2_timeout_invariant_violated",
                &[("check", "heartbeat_timeout_exceeds_storage_stall")],
                None,
            ),
        ],
        // n2-05-iscsi-loggedin-iscsi-sysfs.txt: state LOGGED_IN,
        // recovery_tmo 20, sda `running`, timeout 30; 12 s heartbeat < 20 s.
        "iscsi-logged-in" => vec![
            (
                "ocfs2_iscsi_session_logged_in",
                &[("session", "session2")],
                Some(1.0),
            ),
            (
                "ocfs2_iscsi_session_state",
                &[("state", "LOGGED_IN")],
                Some(1.0),
            ),
            (
                "ocfs2_iscsi_session_recovery_timeout_seconds",
                &[("session", "session2")],
                Some(20.0),
            ),
            (
                "ocfs2_iscsi_connection_state",
                &[("state", "up")],
                Some(1.0),
            ),
            (
                "ocfs2_scsi_device_state",
                &[("device", "/dev/sda"), ("state", "running")],
                Some(1.0),
            ),
            (
                "ocfs2_scsi_device_timeout_seconds",
                &[("device", "/dev/sda")],
                Some(30.0),
            ),
            (
                "ocfs2_timeout_invariant_violated",
                &[("check", "heartbeat_timeout_exceeds_storage_stall")],
                Some(1.0),
            ),
            (
                "ocfs2_timeout_invariant_smaller_seconds",
                &[("check", "heartbeat_timeout_exceeds_storage_stall")],
                Some(20.0),
            ),
        ],
        // n2-05-iscsi-target-dead-iscsi-sysfs.txt: state FREE, sda
        // transport-offline, connection failed.
        "iscsi-recovery-timeout" => vec![
            (
                "ocfs2_iscsi_session_logged_in",
                &[("session", "session2")],
                Some(0.0),
            ),
            ("ocfs2_iscsi_session_state", &[("state", "FREE")], Some(1.0)),
            (
                "ocfs2_iscsi_connection_state",
                &[("state", "failed")],
                Some(1.0),
            ),
            (
                "ocfs2_scsi_device_state",
                &[("device", "/dev/sda"), ("state", "transport-offline")],
                Some(1.0),
            ),
            (
                "ocfs2_scsi_device_running",
                &[("device", "/dev/sda")],
                Some(0.0),
            ),
            ("ocfs2_storage_path_disks", &[("state", "down")], Some(1.0)),
        ],
        // n2-05-iscsi-target-restarted-iscsi-sysfs.txt: LOGGED_IN, running.
        "iscsi-relogged" => vec![
            (
                "ocfs2_iscsi_session_logged_in",
                &[("session", "session2")],
                Some(1.0),
            ),
            (
                "ocfs2_iscsi_session_state",
                &[("state", "LOGGED_IN")],
                Some(1.0),
            ),
            (
                "ocfs2_iscsi_connection_state",
                &[("state", "up")],
                Some(1.0),
            ),
            (
                "ocfs2_scsi_device_running",
                &[("device", "/dev/sda")],
                Some(1.0),
            ),
        ],
        // README: session FAILED, disks blocked.
        "iscsi-target-dead" => vec![
            (
                "ocfs2_iscsi_session_logged_in",
                &[("session", "session2")],
                Some(0.0),
            ),
            (
                "ocfs2_iscsi_session_state",
                &[("state", "FAILED")],
                Some(1.0),
            ),
            (
                "ocfs2_scsi_device_state",
                &[("device", "/dev/sda"), ("state", "blocked")],
                Some(1.0),
            ),
            (
                "ocfs2_scsi_device_running",
                &[("device", "/dev/sda")],
                Some(0.0),
            ),
        ],
        // n1-03a-pause-dmesg-full.txt, counted by hand (README).
        "kernel-log-pause" => vec![
            (
                "ocfs2_kernel_events_total",
                &[("event", "net_idle_timeout")],
                Some(1.0),
            ),
            (
                "ocfs2_kernel_events_total",
                &[("event", "net_disconnected")],
                Some(1.0),
            ),
            (
                "ocfs2_kernel_events_total",
                &[("event", "dlm_node_evicted")],
                Some(1.0),
            ),
            (
                "ocfs2_kernel_events_total",
                &[("event", "dlm_recovery")],
                Some(1.0),
            ),
            (
                "ocfs2_kernel_events_total",
                &[("event", "journal_replay")],
                Some(1.0),
            ),
            (
                "ocfs2_kernel_events_total",
                &[("event", "net_connected")],
                Some(1.0),
            ),
            (
                "ocfs2_kernel_events_total",
                &[("event", "fence")],
                Some(0.0),
            ),
            (
                "ocfs2_kernel_events_total",
                &[("event", "fs_error")],
                Some(0.0),
            ),
            (
                "ocfs2_kernel_events_total",
                &[("event", "hb_write_timeout")],
                Some(0.0),
            ),
            ("ocfs2_fence_previous_boot", &[], Some(0.0)),
        ],
        // README: the superblock options of the captured line turned `ro`.
        "mounts-error-readonly" => vec![
            (
                "ocfs2_mount_readonly",
                &[("mountpoint", "/mnt/ocfs2")],
                Some(1.0),
            ),
            (
                "ocfs2_mount_error_readonly",
                &[("mountpoint", "/mnt/ocfs2")],
                Some(1.0),
            ),
        ],
        // n1-02-2node-mounted-mountinfo.txt: dlmfs + one ocfs2 mount;
        // fstab expects it by label.
        "mounts-healthy" => vec![
            ("ocfs2_watchdog_mountinfo_entries", &[], Some(2.0)),
            (
                "ocfs2_mount_stacked",
                &[("mountpoint", "/mnt/ocfs2")],
                Some(1.0),
            ),
            (
                "ocfs2_mount_readonly",
                &[("mountpoint", "/mnt/ocfs2")],
                Some(0.0),
            ),
            (
                "ocfs2_mount_expected",
                &[("mountpoint", "/mnt/ocfs2")],
                Some(1.0),
            ),
            (
                "ocfs2_mount_missing",
                &[("mountpoint", "/mnt/ocfs2")],
                Some(0.0),
            ),
            (
                "ocfs2_mount_unstable_device_name",
                &[("mountpoint", "/mnt/ocfs2")],
                Some(0.0),
            ),
        ],
        // n1-01-online-nomount-mountinfo.txt: only ocfs2_dlmfs on /dlm.
        "mounts-missing" => vec![
            ("ocfs2_watchdog_mountinfo_entries", &[], Some(1.0)),
            (
                "ocfs2_mount_missing",
                &[("mountpoint", "/mnt/ocfs2")],
                Some(1.0),
            ),
            (
                "ocfs2_mount_missing",
                &[("mountpoint", "/srv/data")],
                Some(1.0),
            ),
            (
                "ocfs2_mount_unstable_device_name",
                &[("mountpoint", "/srv/data")],
                Some(1.0),
            ),
            (
                "ocfs2_mount_unstable_device_name",
                &[("mountpoint", "/mnt/ocfs2")],
                Some(0.0),
            ),
        ],
        // n1-03d-repro-steps.txt after bind-stack2: three layers on
        // /mnt/ocfs2, one on /mnt/other.
        "mounts-stacked" => vec![
            (
                "ocfs2_mount_stacked",
                &[("mountpoint", "/mnt/ocfs2")],
                Some(3.0),
            ),
            (
                "ocfs2_mount_duplicate_layers",
                &[("mountpoint", "/mnt/ocfs2")],
                Some(2.0),
            ),
            (
                "ocfs2_mount_stacked",
                &[("mountpoint", "/mnt/other")],
                Some(1.0),
            ),
            (
                "ocfs2_mount_shadowed",
                &[("mountpoint", "/mnt/ocfs2")],
                Some(0.0),
            ),
            (
                "ocfs2_watchdog_rule_firing",
                &[("rule", "duplicate_mount_layers"), ("target", "/mnt/ocfs2")],
                Some(1.0),
            ),
        ],
        // README: /dev/sdc gone, a `\040(deleted)` mount point, one garbage line.
        "mounts-stale" => vec![
            (
                "ocfs2_mount_device_missing",
                &[("mountpoint", "/var/lib/kubelet/pods/1f0c/volumes/data")],
                Some(1.0),
            ),
            (
                "ocfs2_mount_point_deleted",
                &[("mountpoint", "/var/lib/docker/volumes/web data/_data")],
                Some(1.0),
            ),
            (
                "ocfs2_mount_device_missing",
                &[("mountpoint", "/mnt/ocfs2")],
                Some(0.0),
            ),
            ("ocfs2_watchdog_mountinfo_invalid_lines", &[], Some(1.0)),
        ],
        // README: sdb active via session1, sdc failed via session2;
        // no_path_retry 12 × polling_interval 5 = 60 s; dead_threshold 31 = 60 s.
        "multipath-one-path-failed" => vec![
            (
                "ocfs2_multipath_path_active",
                &[("device", "/dev/sdb")],
                Some(1.0),
            ),
            (
                "ocfs2_multipath_path_active",
                &[("device", "/dev/sdc")],
                Some(0.0),
            ),
            (
                "ocfs2_multipath_paths",
                &[("map", "mpatha"), ("state", "active")],
                Some(1.0),
            ),
            (
                "ocfs2_multipath_paths",
                &[("map", "mpatha"), ("state", "failed")],
                Some(1.0),
            ),
            (
                "ocfs2_multipath_queue_timeout_seconds",
                &[("map", "mpatha")],
                Some(60.0),
            ),
            (
                "ocfs2_timeout_invariant_violated",
                &[("check", "heartbeat_timeout_exceeds_storage_stall")],
                Some(1.0),
            ),
            (
                "ocfs2_watchdog_dmsetup_skipped",
                &[("reason", "not_host_root")],
                Some(1.0),
            ),
        ],
        // README: cluster.conf names labclu, configfs holds no cluster.
        // ocfs2-tools installed, nothing configured: the stack is offline
        // but nobody expects it (status and check say OK), the package's
        // O2CB_ENABLED=false is not drift, and no rule fires.
        "o2cb-installed-idle" => vec![
            (
                "ocfs2_o2cb_cluster_online",
                &[("o2cb_cluster", "ocfs2")],
                Some(0.0),
            ),
            (
                "ocfs2_o2cb_config_mismatch",
                &[("o2cb_cluster", "ocfs2"), ("setting", "o2cb_enabled")],
                Some(0.0),
            ),
            ("ocfs2_watchdog_rule_firing", &[], None),
        ],
        "o2cb-not-back" => vec![
            ("ocfs2_o2cb_cluster_online", &[LABCLU], Some(0.0)),
            (
                "ocfs2_mount_missing",
                &[("mountpoint", "/mnt/ocfs2")],
                Some(1.0),
            ),
            (
                "ocfs2_watchdog_rule_firing",
                &[("rule", "o2cb_down"), ("target", "labclu")],
                Some(1.0),
            ),
        ],
        // README: the o2cb-not-back host, o2cb_down gave up after one
        // precondition_changed; the rule still fires.
        "o2cb-gave-up" => vec![
            ("ocfs2_o2cb_cluster_online", &[LABCLU], Some(0.0)),
            (
                "ocfs2_watchdog_remediation_gave_up",
                &[("rule", "o2cb_down"), ("target", "labclu")],
                Some(1.0),
            ),
            (
                "ocfs2_watchdog_rule_firing",
                &[("rule", "o2cb_down"), ("target", "labclu")],
                Some(1.0),
            ),
        ],
        // n1-03a-after-resume-state.txt: livenodes `1 2`, connected `2`,
        // Domain Map: 1 (n2 missing).
        "zombie-n1" => vec![
            (
                "ocfs2_heartbeat_node_live",
                &[REGION, ("node_num", "2")],
                Some(1.0),
            ),
            ("ocfs2_net_connected", &[("node_num", "2")], Some(1.0)),
            (
                "ocfs2_dlm_domain_member",
                &[UUID, ("node_num", "2")],
                Some(0.0),
            ),
            (
                "ocfs2_dlm_membership_mismatch",
                &[("node_num", "2"), ("kind", "missing_from_domain")],
                Some(1.0),
            ),
        ],
        // n2-03a-after-resume-state.txt: livenodes `1 2`, connected `1`,
        // Domain Map: 1 2: every local file looks healthy.
        "zombie-n2" => vec![
            (
                "ocfs2_heartbeat_node_live",
                &[REGION, ("node_num", "1")],
                Some(1.0),
            ),
            ("ocfs2_net_connected", &[("node_num", "1")], Some(1.0)),
            (
                "ocfs2_dlm_domain_member",
                &[UUID, ("node_num", "1")],
                Some(1.0),
            ),
            (
                "ocfs2_dlm_domain_member",
                &[UUID, ("node_num", "2")],
                Some(1.0),
            ),
            (
                "ocfs2_dlm_membership_mismatch",
                &[("kind", "missing_from_domain")],
                Some(0.0),
            ),
        ],
        // README: global mode, region 0 live and a quorum region, none failed.
        "heartbeat-global" => vec![
            (
                "ocfs2_heartbeat_global_region_state",
                &[REGION, ("state", "live")],
                Some(1.0),
            ),
            (
                "ocfs2_heartbeat_global_region_state",
                &[REGION, ("state", "quorum")],
                Some(1.0),
            ),
            (
                "ocfs2_heartbeat_global_region_state",
                &[REGION, ("state", "failed")],
                Some(0.0),
            ),
            (
                "ocfs2_o2cb_info",
                &[LABCLU, ("heartbeat_mode", "global")],
                Some(1.0),
            ),
            (
                "ocfs2_o2cb_config_mismatch",
                &[("setting", "heartbeat_mode")],
                Some(0.0),
            ),
        ],
        // README: slot 7 written by a node configfs does not list; the two
        // captured slots (n1-02 debugfs.ocfs2 `hb`) as before.
        "heartbeat-disk-foreign-slot" => vec![
            (
                "ocfs2_heartbeat_disk_unknown_node",
                &[REGION, ("node_num", "7")],
                Some(0.0),
            ),
            (
                "ocfs2_heartbeat_disk_unknown_node",
                &[REGION, ("node_num", "2")],
                None,
            ),
            (
                "ocfs2_heartbeat_disk_seq_timestamp_seconds",
                &[REGION, ("node_num", "7")],
                Some(f64::from(0x6b01_7fb3u32)),
            ),
            (
                "ocfs2_heartbeat_disk_seq_timestamp_seconds",
                &[REGION, ("node_num", "1")],
                Some(f64::from(0x6b01_7fb3u32)),
            ),
            (
                "ocfs2_heartbeat_disk_checksum_failures_total",
                &[REGION, ("node_num", "7")],
                Some(0.0),
            ),
            ("ocfs2_heartbeat_unknown_live_nodes", &[REGION], Some(0.0)),
        ],
        _ => return None,
    };
    Some(rows)
}

fn check(scenario: &str, text: &str, rows: &[Row]) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, labels, expected) in rows {
        let found = values(text, name, labels);
        let ok = match expected {
            None => found.is_empty(),
            Some(want) => !found.is_empty() && found.iter().all(|v| (v - want).abs() < 1e-9),
        };
        if !ok {
            failures.push(format!(
                "{scenario}: {name}{labels:?}: expected {}, found {found:?}",
                expected.map_or("no series".to_string(), |v| v.to_string())
            ));
        }
    }
    failures
}

#[test]
fn every_scenario_shows_the_values_of_its_capture() {
    let mut failures = Vec::new();
    for dir in scenarios() {
        let name = name_of(&dir);
        let Some(rows) = rows(&name) else {
            failures.push(format!("{name}: no key values in tests/key_values.rs"));
            continue;
        };
        assert!(rows.len() >= 2, "{name}: say more than one thing");
        failures.extend(check(&name, &once(&dir), &rows));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The checker itself fails on a wrong value, a missing series and an
/// unexpected one.
#[test]
fn the_checker_fails_on_wrong_and_missing_values() {
    let text = "# TYPE a gauge\na{x=\"1\"} 2.0\n";
    assert!(check("t", text, &[("a", &[("x", "1")], Some(2.0))]).is_empty());
    assert_eq!(
        check("t", text, &[("a", &[("x", "1")], Some(3.0))]).len(),
        1
    );
    assert_eq!(
        check("t", text, &[("a", &[("x", "2")], Some(2.0))]).len(),
        1
    );
    assert_eq!(check("t", text, &[("a", &[], None)]).len(), 1);
    assert_eq!(check("t", text, &[("b", &[], Some(0.0))]).len(), 1);
}
