//! Configured versus running: every setting of `/etc/sysconfig/o2cb` and
//! `/etc/ocfs2/cluster.conf` compared with what the kernel runs (configfs).
//!
//! Drift matters because o2cb applies the files only when the stack comes
//! online: a value edited since, or a kernel tuned by hand, silently changes
//! at the next reboot, and peers with different timeouts refuse each other
//! (o2net handshake, docs/interfaces.md §1.1). Each setting is compared only when
//! both sides are known; unknown sides produce no series.

use std::collections::BTreeSet;

use serde::Serialize;

use super::cluster_conf::ClusterConf;
use super::sysconfig::Sysconfig;
use crate::collector::configfs::ClusterConfig;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The `setting` label, from a fixed set.
    pub setting: &'static str,
    pub mismatch: bool,
    /// What differs, for the log and `/status`.
    pub detail: String,
}

/// What the comparison looks at.
#[derive(Debug, Default)]
pub struct DriftInput<'a> {
    pub cluster: Option<&'a ClusterConfig>,
    pub sysconfig: Option<&'a Sysconfig>,
    pub cluster_conf: Option<&'a ClusterConf>,
    pub hostname: Option<&'a str>,
    /// OCFS2 mounts are expected (fstab without `noauto`, or configured).
    pub mounts_expected: bool,
}

pub fn compare(input: &DriftInput) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut push = |setting, mismatch, detail: String| {
        out.push(Mismatch {
            setting,
            mismatch,
            detail,
        })
    };
    if let Some(sysconfig) = input.sysconfig {
        push(
            "o2cb_enabled",
            input.mounts_expected && !sysconfig.enabled(),
            format!(
                "O2CB_ENABLED={} with OCFS2 mounts {}expected",
                sysconfig.get("O2CB_ENABLED").unwrap_or("(unset)"),
                if input.mounts_expected { "" } else { "not " }
            ),
        );
    }
    let Some(cluster) = input.cluster else {
        return out;
    };
    if let Some(sysconfig) = input.sysconfig {
        if let Some(boot) = sysconfig.get("O2CB_BOOTCLUSTER") {
            push(
                "boot_cluster",
                boot != cluster.name,
                format!("O2CB_BOOTCLUSTER={boot}, running {}", cluster.name),
            );
        }
        for (setting, key, running) in [
            (
                "heartbeat_dead_threshold",
                "O2CB_HEARTBEAT_THRESHOLD",
                cluster.dead_threshold,
            ),
            (
                "idle_timeout_ms",
                "O2CB_IDLE_TIMEOUT_MS",
                cluster.idle_timeout_ms,
            ),
            (
                "keepalive_delay_ms",
                "O2CB_KEEPALIVE_DELAY_MS",
                cluster.keepalive_delay_ms,
            ),
            (
                "reconnect_delay_ms",
                "O2CB_RECONNECT_DELAY_MS",
                cluster.reconnect_delay_ms,
            ),
        ] {
            if let (Some(configured), Some(running)) = (sysconfig.get(key), running) {
                push(
                    setting,
                    configured.parse::<u32>().ok() != Some(running),
                    format!("{key}={configured}, running {running}"),
                );
            }
        }
    }
    if let Some(conf) = input.cluster_conf {
        compare_cluster_conf(cluster, conf, &mut push);
    }
    if let Some(hostname) = input.hostname {
        let short = hostname.split('.').next().unwrap_or(hostname);
        let local = cluster.local_node().map(|n| n.name.as_str());
        push(
            "local_node_name",
            !local.is_some_and(|name| name.eq_ignore_ascii_case(short)),
            format!(
                "local node {}, hostname {hostname}",
                local.unwrap_or("(none)")
            ),
        );
    }
    out
}

fn compare_cluster_conf(
    cluster: &ClusterConfig,
    conf: &ClusterConf,
    push: &mut impl FnMut(&'static str, bool, String),
) {
    let Some(conf_cluster) = conf.cluster(&cluster.name) else {
        push(
            "cluster_name",
            true,
            format!("cluster.conf has no cluster {}", cluster.name),
        );
        return;
    };
    push("cluster_name", false, String::new());
    if let (Some(configured), Some(running)) =
        (&conf_cluster.heartbeat_mode, cluster.heartbeat_mode)
    {
        push(
            "heartbeat_mode",
            !configured.eq_ignore_ascii_case(running.as_str()),
            format!("cluster.conf {configured}, running {}", running.as_str()),
        );
    }
    let configured: BTreeSet<&str> = conf
        .nodes_of(&cluster.name)
        .map(|n| n.name.as_str())
        .collect();
    let running: BTreeSet<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
    push(
        "node_list",
        configured != running,
        format!("cluster.conf {configured:?}, running {running:?}"),
    );
    let mut number = Vec::new();
    let mut address = Vec::new();
    let mut port = Vec::new();
    for node in conf.nodes_of(&cluster.name) {
        let Some(live) = cluster.nodes.iter().find(|n| n.name == node.name) else {
            continue;
        };
        if live.num.is_some_and(|n| n != node.number) {
            number.push(node.name.as_str());
        }
        let live_address = live.address.map(|a| a.to_string());
        if live_address.is_some() && live_address != node.ip_address {
            address.push(node.name.as_str());
        }
        if live.port.is_some_and(|p| p != node.ip_port) {
            port.push(node.name.as_str());
        }
    }
    for (setting, nodes) in [
        ("node_number", number),
        ("node_address", address),
        ("node_port", port),
    ] {
        push(setting, !nodes.is_empty(), format!("differs for {nodes:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::cluster_conf::parse_cluster_conf;
    use super::super::sysconfig::parse_sysconfig;
    use super::*;
    use crate::collector::configfs::{HeartbeatMode, NodeConfig};

    fn running() -> ClusterConfig {
        let node = |name: &str, num, local| NodeConfig {
            name: name.into(),
            num: Some(num),
            address: Some(std::net::Ipv4Addr::new(10, 99, 0, num)),
            port: Some(7777),
            local: Some(local),
        };
        ClusterConfig {
            name: "labclu".into(),
            idle_timeout_ms: Some(10000),
            keepalive_delay_ms: Some(2000),
            reconnect_delay_ms: Some(2000),
            dead_threshold: Some(7),
            heartbeat_mode: Some(HeartbeatMode::Local),
            nodes: vec![node("n1", 1, true), node("n2", 2, false)],
            ..ClusterConfig::default()
        }
    }

    fn flagged(out: &[Mismatch]) -> Vec<&'static str> {
        out.iter()
            .filter(|m| m.mismatch)
            .map(|m| m.setting)
            .collect()
    }

    const LAB_CONF: &str = "cluster:\n\tnode_count = 2\n\theartbeat_mode = local\n\tname = labclu\n\n\
        node:\n\tip_port = 7777\n\tip_address = 10.99.0.1\n\tnumber = 1\n\tname = n1\n\tcluster = labclu\n\n\
        node:\n\tip_port = 7777\n\tip_address = 10.99.0.2\n\tnumber = 2\n\tname = n2\n\tcluster = labclu\n";

    #[test]
    fn the_lab_as_run_has_no_drift() {
        let cluster = running();
        let conf = parse_cluster_conf(LAB_CONF);
        let sysconfig = parse_sysconfig(
            "O2CB_ENABLED=true\nO2CB_BOOTCLUSTER=labclu\nO2CB_HEARTBEAT_THRESHOLD=7\nO2CB_IDLE_TIMEOUT_MS=10000\n",
        );
        let out = compare(&DriftInput {
            cluster: Some(&cluster),
            sysconfig: Some(&sysconfig),
            cluster_conf: Some(&conf),
            hostname: Some("N1.lab.example"),
            mounts_expected: true,
        });
        assert!(flagged(&out).is_empty(), "{out:?}");
        let settings: Vec<&str> = out.iter().map(|m| m.setting).collect();
        assert_eq!(
            settings,
            [
                "o2cb_enabled",
                "boot_cluster",
                "heartbeat_dead_threshold",
                "idle_timeout_ms",
                "cluster_name",
                "heartbeat_mode",
                "node_list",
                "node_number",
                "node_address",
                "node_port",
                "local_node_name"
            ]
        );
    }

    #[test]
    fn every_kind_of_drift_is_flagged() {
        let cluster = running();
        let conf = parse_cluster_conf(
            &(LAB_CONF
                .replace("10.99.0.2", "10.99.0.9")
                .replace("number = 1", "number = 3")
                .replace("heartbeat_mode = local", "heartbeat_mode = global")
                + "\nnode:\n\tnumber = 4\n\tname = n4\n\tcluster = labclu\n"),
        );
        let sysconfig = parse_sysconfig(
            "O2CB_ENABLED=false\nO2CB_BOOTCLUSTER=other\nO2CB_HEARTBEAT_THRESHOLD=31\nO2CB_IDLE_TIMEOUT_MS=30000\nO2CB_KEEPALIVE_DELAY_MS=x\n",
        );
        let out = compare(&DriftInput {
            cluster: Some(&cluster),
            sysconfig: Some(&sysconfig),
            cluster_conf: Some(&conf),
            hostname: Some("node1"),
            mounts_expected: true,
        });
        assert_eq!(
            flagged(&out),
            [
                "o2cb_enabled",
                "boot_cluster",
                "heartbeat_dead_threshold",
                "idle_timeout_ms",
                "keepalive_delay_ms",
                "heartbeat_mode",
                "node_list",
                "node_number",
                "node_address",
                "local_node_name"
            ]
        );
    }

    #[test]
    fn disabled_stack_without_cluster_and_without_expected_mounts() {
        let sysconfig = parse_sysconfig("O2CB_ENABLED=false\n");
        let input = DriftInput {
            sysconfig: Some(&sysconfig),
            mounts_expected: true,
            ..DriftInput::default()
        };
        assert_eq!(flagged(&compare(&input)), ["o2cb_enabled"]);
        let input = DriftInput {
            mounts_expected: false,
            ..input
        };
        assert!(flagged(&compare(&input)).is_empty());
        let conf = parse_cluster_conf("cluster:\n\tname = other\n");
        let cluster = running();
        let out = compare(&DriftInput {
            cluster: Some(&cluster),
            cluster_conf: Some(&conf),
            ..DriftInput::default()
        });
        assert_eq!(flagged(&out), ["cluster_name"]);
    }
}
