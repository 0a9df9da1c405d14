//! The o2cb configfs tree `/sys/kernel/config/cluster/<cluster>/`, read into a
//! typed `ClusterConfig` shared by every collector that needs the running
//! cluster's shape (o2cb, heartbeat, net, dlm, the on-disk heartbeat reader,
//! iSCSI timeout invariants).
//!
//! Layout and formats from fs/ocfs2/cluster/nodemanager.c and heartbeat.c
//! (docs/interfaces.md §1): one value plus `\n` per attribute file, numbers as
//! `%u`/`%d`/`%llu`, `ipv4_address` as a dotted quad, `heartbeat/mode` as
//! `local`/`global`, a region's `dev` and `pid` empty until its heartbeat
//! thread starts. Only one cluster can exist (a second `mkdir` fails ENOSPC).
//! Every attribute degrades on its own: a missing, unreadable or garbage file
//! leaves that one value `None` and is listed in `ClusterConfig::degraded`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{list_dirs, CollectError};
use crate::host::HostPaths;

/// `heartbeat/mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeartbeatMode {
    Local,
    Global,
}

impl HeartbeatMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Global => "global",
        }
    }
}

/// `node/<name>/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeConfig {
    pub name: String,
    pub num: Option<u8>,
    pub address: Option<Ipv4Addr>,
    pub port: Option<u16>,
    pub local: Option<bool>,
}

/// `heartbeat/<REGION>/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegionConfig {
    /// The directory name: the volume UUID, 32 uppercase hex.
    pub uuid: String,
    /// Kernel block device name (`vda`, `dm-3`); `None` until heartbeat starts.
    pub dev: Option<String>,
    pub start_block: Option<u64>,
    pub block_bytes: Option<u32>,
    pub blocks: Option<u32>,
    /// The `o2hb-<REGION>` kernel thread; `None` when not running.
    pub pid: Option<u32>,
}

impl RegionConfig {
    /// Host path of the region's device, as mounts and labels name it.
    pub fn device_path(&self) -> Option<String> {
        self.dev.as_ref().map(|dev| format!("/dev/{dev}"))
    }
}

/// The running cluster as configfs shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterConfig {
    pub name: String,
    pub idle_timeout_ms: Option<u32>,
    pub keepalive_delay_ms: Option<u32>,
    pub reconnect_delay_ms: Option<u32>,
    pub fence_method: Option<String>,
    pub dead_threshold: Option<u32>,
    pub heartbeat_mode: Option<HeartbeatMode>,
    /// Sorted by directory name.
    pub nodes: Vec<NodeConfig>,
    /// Sorted by UUID.
    pub regions: Vec<RegionConfig>,
    /// Host paths of attributes that were missing, unreadable or garbage.
    pub degraded: Vec<PathBuf>,
}

impl ClusterConfig {
    pub fn local_node(&self) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.local == Some(true))
    }

    pub fn node_by_num(&self, num: u8) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.num == Some(num))
    }

    /// Configured nodes with a number, in number order.
    pub fn numbered_nodes(&self) -> Vec<(u8, &NodeConfig)> {
        let mut nodes: Vec<(u8, &NodeConfig)> = self
            .nodes
            .iter()
            .filter_map(|n| n.num.map(|num| (num, n)))
            .collect();
        nodes.sort_by_key(|(num, _)| *num);
        nodes
    }

    /// The self-fence write timeout, when `dead_threshold` could be read.
    pub fn heartbeat_timeout_seconds(&self) -> Option<u32> {
        self.dead_threshold.map(self_fence_timeout_seconds)
    }

    /// `o2cb cluster-status` (ocfs2-tools o2cb_ctl/op_status.c): a registered
    /// cluster is online in local heartbeat mode, and in global mode only with
    /// at least one active region.
    pub fn is_online(&self) -> bool {
        match self.heartbeat_mode {
            Some(HeartbeatMode::Global) => self.regions.iter().any(|r| r.dev.is_some()),
            _ => true,
        }
    }
}

/// O2HB_MAX_WRITE_TIMEOUT_MS = 2000 × (dead_threshold − 1), in seconds: how
/// long the heartbeat may fail to write before the node fences itself.
pub fn self_fence_timeout_seconds(dead_threshold: u32) -> u32 {
    dead_threshold.saturating_sub(1).saturating_mul(2)
}

/// Reads the cluster registered in configfs. `Ok(None)` when configfs or its
/// `cluster` directory is absent or holds no cluster (o2cb not loaded or not
/// online); an error only when the directory exists but cannot be listed.
pub fn read_cluster(paths: &HostPaths) -> Result<Option<ClusterConfig>, CollectError> {
    let base = paths.sys("kernel/config/cluster");
    let Some(names) = list_dirs(&base)? else {
        return Ok(None);
    };
    let Some(name) = names.into_iter().next() else {
        return Ok(None);
    };
    let dir = base.join(&name);
    let mut reader = AttrReader::new(paths);
    let mut cluster = ClusterConfig {
        idle_timeout_ms: reader.read(&dir.join("idle_timeout_ms"), parse_unsigned),
        keepalive_delay_ms: reader.read(&dir.join("keepalive_delay_ms"), parse_unsigned),
        reconnect_delay_ms: reader.read(&dir.join("reconnect_delay_ms"), parse_unsigned),
        fence_method: reader.read(&dir.join("fence_method"), parse_word),
        dead_threshold: reader.read(&dir.join("heartbeat/dead_threshold"), parse_unsigned),
        heartbeat_mode: reader.read(&dir.join("heartbeat/mode"), parse_heartbeat_mode),
        name,
        ..ClusterConfig::default()
    };
    for node in list_dirs(&dir.join("node"))?.unwrap_or_default() {
        let node_dir = dir.join("node").join(&node);
        cluster.nodes.push(NodeConfig {
            num: reader.read(&node_dir.join("num"), parse_node_num),
            address: reader.read(&node_dir.join("ipv4_address"), parse_ipv4),
            port: reader.read(&node_dir.join("ipv4_port"), parse_unsigned),
            local: reader.read(&node_dir.join("local"), parse_flag),
            name: node,
        });
    }
    for uuid in list_dirs(&dir.join("heartbeat"))?.unwrap_or_default() {
        let region_dir = dir.join("heartbeat").join(&uuid);
        cluster.regions.push(RegionConfig {
            dev: reader.read_optional_value(&region_dir.join("dev"), parse_word),
            start_block: reader.read(&region_dir.join("start_block"), parse_unsigned),
            block_bytes: reader.read(&region_dir.join("block_bytes"), parse_unsigned),
            blocks: reader.read(&region_dir.join("blocks"), parse_unsigned),
            pid: reader.read_optional_value(&region_dir.join("pid"), parse_unsigned),
            uuid,
        });
    }
    cluster.degraded = reader.degraded;
    Ok(Some(cluster))
}

/// Reads attributes one by one, remembering which could not be used.
struct AttrReader<'a> {
    paths: &'a HostPaths,
    degraded: Vec<PathBuf>,
}

impl<'a> AttrReader<'a> {
    fn new(paths: &'a HostPaths) -> Self {
        Self {
            paths,
            degraded: Vec::new(),
        }
    }

    fn read<T>(&mut self, path: &Path, parse: fn(&str) -> Option<T>) -> Option<T> {
        let value = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| parse(&text));
        if value.is_none() {
            self.degrade(path);
        }
        value
    }

    /// For `dev` and `pid`, legitimately empty while heartbeat is stopped.
    fn read_optional_value<T>(&mut self, path: &Path, parse: fn(&str) -> Option<T>) -> Option<T> {
        match std::fs::read_to_string(path) {
            Ok(text) if text.trim().is_empty() => None,
            Ok(text) => {
                let value = parse(&text);
                if value.is_none() {
                    self.degrade(path);
                }
                value
            }
            Err(_) => {
                self.degrade(path);
                None
            }
        }
    }

    fn degrade(&mut self, path: &Path) {
        let host_path = self.paths.host_path(path);
        tracing::debug!(file = %host_path.display(), "Cannot use configfs attribute.");
        self.degraded.push(host_path);
    }
}

/// One value followed by the kernel's newline; nothing else on the line.
fn single_value(text: &str) -> Option<&str> {
    let value = text.strip_suffix('\n').unwrap_or(text);
    (!value.is_empty() && !value.contains(char::is_whitespace)).then_some(value)
}

/// `%u`, `%d` or `%llu` attributes.
pub fn parse_unsigned<T: std::str::FromStr>(text: &str) -> Option<T> {
    single_value(text)?.parse().ok()
}

/// Node numbers are 0–254; 255 is O2NM_INVALID_NODE_NUM.
pub fn parse_node_num(text: &str) -> Option<u8> {
    parse_unsigned::<u8>(text).filter(|n| *n < 255)
}

pub fn parse_word(text: &str) -> Option<String> {
    single_value(text).map(str::to_string)
}

pub fn parse_flag(text: &str) -> Option<bool> {
    match single_value(text)? {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

pub fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    single_value(text)?.parse().ok()
}

pub fn parse_heartbeat_mode(text: &str) -> Option<HeartbeatMode> {
    match single_value(text)? {
        "local" => Some(HeartbeatMode::Local),
        "global" => Some(HeartbeatMode::Global),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_parsers_take_capture_values_and_refuse_garbage() {
        // Values from captures/n1-02-2node-mounted-configfs-cluster.txt.
        assert_eq!(parse_unsigned::<u32>("10000\n"), Some(10000));
        assert_eq!(parse_unsigned::<u64>("2184\n"), Some(2184));
        assert_eq!(parse_unsigned::<u32>("7"), Some(7));
        assert_eq!(parse_unsigned::<u32>(""), None);
        assert_eq!(parse_unsigned::<u32>("\n"), None);
        assert_eq!(parse_unsigned::<u32>("-1\n"), None);
        assert_eq!(parse_unsigned::<u32>("1 2\n"), None);
        assert_eq!(parse_unsigned::<u32>("garbage\n"), None);
        assert_eq!(parse_node_num("2\n"), Some(2));
        assert_eq!(parse_node_num("255\n"), None);
        assert_eq!(parse_word("reset\n").as_deref(), Some("reset"));
        assert_eq!(parse_word("vda\n").as_deref(), Some("vda"));
        assert_eq!(parse_flag("1\n"), Some(true));
        assert_eq!(parse_flag("0\n"), Some(false));
        assert_eq!(parse_flag("2\n"), None);
        assert_eq!(parse_ipv4("10.99.0.1\n"), Some(Ipv4Addr::new(10, 99, 0, 1)));
        assert_eq!(parse_ipv4("10.99.0\n"), None);
        assert_eq!(parse_heartbeat_mode("local\n"), Some(HeartbeatMode::Local));
        assert_eq!(
            parse_heartbeat_mode("global\n"),
            Some(HeartbeatMode::Global)
        );
        assert_eq!(parse_heartbeat_mode("loc"), None);
    }

    #[test]
    fn self_fence_timeout_follows_the_kernel_formula() {
        assert_eq!(self_fence_timeout_seconds(31), 60);
        assert_eq!(self_fence_timeout_seconds(61), 120);
        assert_eq!(self_fence_timeout_seconds(7), 12);
        assert_eq!(self_fence_timeout_seconds(0), 0);
        assert_eq!(self_fence_timeout_seconds(u32::MAX), u32::MAX);
    }

    fn write(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    #[test]
    fn reads_the_mounted_pair_and_degrades_per_attribute() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::new(dir.path().to_path_buf(), None, None);
        assert_eq!(read_cluster(&paths).unwrap(), None);
        std::fs::create_dir_all(dir.path().join("sys/kernel/config/cluster")).unwrap();
        assert_eq!(read_cluster(&paths).unwrap(), None);

        let c = "sys/kernel/config/cluster/labclu";
        write(dir.path(), &format!("{c}/fence_method"), "reset\n");
        write(dir.path(), &format!("{c}/idle_timeout_ms"), "10000\n");
        write(dir.path(), &format!("{c}/keepalive_delay_ms"), "garbage\n");
        write(dir.path(), &format!("{c}/heartbeat/dead_threshold"), "7\n");
        write(dir.path(), &format!("{c}/heartbeat/mode"), "local\n");
        let r = format!("{c}/heartbeat/DEA93192F0874F53BB5290B5205C6B64");
        for (attr, value) in [
            ("block_bytes", "512\n"),
            ("blocks", "255\n"),
            ("dev", "vda\n"),
            ("pid", "483\n"),
            ("start_block", "2184\n"),
        ] {
            write(dir.path(), &format!("{r}/{attr}"), value);
        }
        for (node, num, ip, local) in [("n1", "1", "10.99.0.1", "1"), ("n2", "2", "10.99.0.2", "0")]
        {
            write(
                dir.path(),
                &format!("{c}/node/{node}/num"),
                &format!("{num}\n"),
            );
            write(
                dir.path(),
                &format!("{c}/node/{node}/ipv4_address"),
                &format!("{ip}\n"),
            );
            write(dir.path(), &format!("{c}/node/{node}/ipv4_port"), "7777\n");
            write(
                dir.path(),
                &format!("{c}/node/{node}/local"),
                &format!("{local}\n"),
            );
        }
        // A region whose heartbeat has not started: empty dev and pid.
        write(dir.path(), &format!("{c}/heartbeat/0123/dev"), "");
        write(dir.path(), &format!("{c}/heartbeat/0123/pid"), "");

        let cluster = read_cluster(&paths).unwrap().unwrap();
        assert_eq!(cluster.name, "labclu");
        assert_eq!(cluster.idle_timeout_ms, Some(10000));
        assert_eq!(cluster.keepalive_delay_ms, None);
        assert_eq!(cluster.reconnect_delay_ms, None);
        assert_eq!(cluster.heartbeat_timeout_seconds(), Some(12));
        assert_eq!(cluster.local_node().map(|n| n.name.as_str()), Some("n1"));
        assert_eq!(cluster.node_by_num(2).and_then(|n| n.port), Some(7777));
        assert!(cluster.is_online());
        let region = &cluster.regions[1];
        assert_eq!(region.uuid, "DEA93192F0874F53BB5290B5205C6B64");
        assert_eq!(region.device_path().as_deref(), Some("/dev/vda"));
        assert_eq!(region.start_block, Some(2184));
        assert_eq!(region.pid, Some(483));
        assert_eq!(cluster.regions[0].dev, None);
        assert_eq!(cluster.regions[0].pid, None);
        let degraded: Vec<String> = cluster
            .degraded
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert!(degraded.contains(&"/sys/kernel/config/cluster/labclu/keepalive_delay_ms".into()));
        assert!(degraded.contains(&"/sys/kernel/config/cluster/labclu/reconnect_delay_ms".into()));
        assert!(
            degraded.contains(&"/sys/kernel/config/cluster/labclu/heartbeat/0123/blocks".into())
        );
    }

    #[test]
    fn global_mode_is_online_only_with_an_active_region() {
        let mut cluster = ClusterConfig {
            heartbeat_mode: Some(HeartbeatMode::Global),
            ..ClusterConfig::default()
        };
        assert!(!cluster.is_online());
        cluster.regions.push(RegionConfig {
            dev: Some("sdb".into()),
            ..RegionConfig::default()
        });
        assert!(cluster.is_online());
    }
}
