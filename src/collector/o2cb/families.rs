//! The o2cb collector's metric families, declared in one table.

use super::configfs::ClusterConfig;
use super::O2cbFacts;
use crate::metrics::{bool_value, family_table, Families, Family};

family_table! {
    /// The o2cb collector's families.
    enum O2cbFamily {
        ClusterOnline = gauge(
            "ocfs2_o2cb_cluster_online",
            "1 when the cluster is registered in configfs and heartbeat is usable (as `o2cb cluster-status`).",
        ),
        ConfigMismatch = gauge(
            "ocfs2_o2cb_config_mismatch",
            "1 when the configured value (sysconfig / cluster.conf / hostname) differs from the running kernel's.",
        ),
        ConfigParseErrors = gauge(
            "ocfs2_o2cb_config_parse_errors",
            "Lines of the o2cb configuration file that could not be used at the last read (0 = unreadable file).",
        ),
        DeadThreshold = gauge(
            "ocfs2_o2cb_heartbeat_dead_threshold",
            "configfs heartbeat/dead_threshold: unchanged 2 s samples before a peer is declared dead.",
        ),
        HeartbeatTimeout = gauge(
            "ocfs2_o2cb_heartbeat_timeout_seconds",
            "Self-fence write timeout, 2 x (dead_threshold - 1).",
        ),
        IdleTimeout = gauge(
            "ocfs2_o2cb_idle_timeout_seconds",
            "configfs idle_timeout_ms / 1000: o2net declares a silent peer connection idle after this.",
        ),
        KeepaliveDelay = gauge(
            "ocfs2_o2cb_keepalive_delay_seconds",
            "configfs keepalive_delay_ms / 1000.",
        ),
        ReconnectDelay = gauge(
            "ocfs2_o2cb_reconnect_delay_seconds",
            "configfs reconnect_delay_ms / 1000.",
        ),
        ConfigfsUnreadable = gauge(
            "ocfs2_o2cb_configfs_unreadable_attributes",
            "configfs attributes that were missing, unreadable or garbage at the last read.",
        ),
        Info = gauge(
            "ocfs2_o2cb_info",
            "Always 1: the cluster's heartbeat mode and fence method.",
        ),
        NodeInfo = gauge(
            "ocfs2_o2cb_node_info",
            "One per node configured in configfs.",
        ),
        RegionInfo = gauge(
            "ocfs2_o2cb_region_info",
            "One per heartbeat region in configfs, with its device (empty until heartbeat starts).",
        ),
        RegionStartBlock = gauge(
            "ocfs2_o2cb_region_start_block",
            "First heartbeat slot of the region, in block_bytes units.",
        ),
        RegionBlockBytes = gauge(
            "ocfs2_o2cb_region_block_bytes",
            "Heartbeat slot size (the device's logical block size).",
        ),
        RegionBlocks = gauge("ocfs2_o2cb_region_blocks", "Heartbeat slots in the region."),
        RegionHeartbeatRunning = gauge(
            "ocfs2_o2cb_region_heartbeat_running",
            "1 when the region's o2hb kernel thread exists (configfs pid is set).",
        ),
    }
}

use O2cbFamily as F;

pub(super) fn families(facts: &O2cbFacts) -> Vec<Family> {
    let mut f = Families::<O2cbFamily>::new();
    let label = facts.cluster_name.as_str();
    f[F::ClusterOnline].push(&[("o2cb_cluster", label)], bool_value(facts.online));
    for m in &facts.mismatches {
        f[F::ConfigMismatch].push(
            &[("o2cb_cluster", label), ("setting", m.setting)],
            bool_value(m.mismatch),
        );
    }
    for (file, issues) in &facts.files {
        f[F::ConfigParseErrors].push(
            &[("file", &file.display().to_string())],
            issues.len() as f64,
        );
    }
    if let Some(cluster) = &facts.cluster {
        cluster_families(cluster, &mut f);
        region_families(cluster, &mut f);
    }
    f.into_vec()
}

fn cluster_families(cluster: &ClusterConfig, f: &mut Families<O2cbFamily>) {
    let cl = [("o2cb_cluster", cluster.name.as_str())];
    for (family, value) in [
        (F::DeadThreshold, cluster.dead_threshold.map(f64::from)),
        (
            F::HeartbeatTimeout,
            cluster.heartbeat_timeout_seconds().map(f64::from),
        ),
        (
            F::IdleTimeout,
            cluster.idle_timeout_ms.map(|ms| f64::from(ms) / 1000.0),
        ),
        (
            F::KeepaliveDelay,
            cluster.keepalive_delay_ms.map(|ms| f64::from(ms) / 1000.0),
        ),
        (
            F::ReconnectDelay,
            cluster.reconnect_delay_ms.map(|ms| f64::from(ms) / 1000.0),
        ),
        (F::ConfigfsUnreadable, Some(cluster.degraded.len() as f64)),
    ] {
        if let Some(value) = value {
            f[family].push(&cl, value);
        }
    }
    let mode = cluster.heartbeat_mode.map_or("unknown", |m| m.as_str());
    let fence = cluster.fence_method.as_deref().unwrap_or("unknown");
    f[F::Info].push(
        &[
            ("o2cb_cluster", cluster.name.as_str()),
            ("heartbeat_mode", mode),
            ("fence_method", fence),
        ],
        1.0,
    );
    for node in &cluster.nodes {
        let num = node.num.map(|n| n.to_string()).unwrap_or_default();
        let address = match (node.address, node.port) {
            (Some(a), Some(p)) => format!("{a}:{p}"),
            (Some(a), None) => a.to_string(),
            _ => String::new(),
        };
        let local = node.local.map_or("", |l| if l { "1" } else { "0" });
        f[F::NodeInfo].push(
            &[
                ("o2cb_cluster", cluster.name.as_str()),
                ("node_name", node.name.as_str()),
                ("node_num", num.as_str()),
                ("address", address.as_str()),
                ("local", local),
            ],
            1.0,
        );
    }
}

fn region_families(cluster: &ClusterConfig, f: &mut Families<O2cbFamily>) {
    for region in &cluster.regions {
        let device = region.device_path().unwrap_or_default();
        let labels = [
            ("o2cb_cluster", cluster.name.as_str()),
            ("hb_region", region.uuid.as_str()),
        ];
        f[F::RegionInfo].push(&[labels[0], labels[1], ("device", device.as_str())], 1.0);
        if let Some(v) = region.start_block {
            f[F::RegionStartBlock].push(&labels, v as f64);
        }
        if let Some(v) = region.block_bytes {
            f[F::RegionBlockBytes].push(&labels, f64::from(v));
        }
        if let Some(v) = region.blocks {
            f[F::RegionBlocks].push(&labels, f64::from(v));
        }
        f[F::RegionHeartbeatRunning].push(&labels, bool_value(region.pid.is_some()));
    }
}
