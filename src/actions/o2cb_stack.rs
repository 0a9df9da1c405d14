//! The o2cb stack itself for the restart (`o2cb.rs`): which service manager
//! runs it, stopping and starting it, its timeouts, and whether the node
//! rejoined.
//!
//! The service manager is detected, never assumed (interfaces.md §5.1–5.3):
//! a systemd `o2cb` unit, an init script (`/etc/init.d/o2cb`, `o2cb.init`),
//! else the bare `o2cb` tool. The tool's `register-cluster` leaves the
//! kernel's default timeouts (idle 30 s, dead threshold 31), and peers with
//! other values refuse the connection (`o2net: … uses a network idle timeout
//! of 10000 ms, but we use 30000 ms locally`), so, as `o2cb.init` does, the
//! timeouts are written to configfs after registering and before heartbeat
//! starts (`dead_threshold` is ignored once a region exists; idle/keepalive
//! cannot change while a peer is connected). Values: the sysconfig file
//! (`/etc/sysconfig/o2cb`, else `/etc/default/o2cb`), else what the stack ran
//! with before it went down. After a start by any manager they are checked,
//! and written where they differ while nothing is connected yet.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::command::CommandError;
use super::{command, HostActions};
use crate::collector::configfs::{read_cluster, HeartbeatMode};
use crate::collector::nodemap::parse_node_map_file;
use crate::collector::o2cb::sysconfig::parse_sysconfig;
use crate::collector::o2cb::StackTimeouts;
use crate::collector::parse_error::ParseError;
use crate::collector::CollectError;

/// How the host runs o2cb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceManager {
    Systemd,
    /// An init script (`/etc/init.d/o2cb` or `o2cb.init`), host path.
    Script(PathBuf),
    /// Only the `o2cb` tool: register, timeouts, start heartbeat.
    O2cbTool,
}

const UNIT_DIRS: [&str; 3] = [
    "/etc/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];
const SCRIPTS: [&str; 4] = [
    "/etc/init.d/o2cb",
    "/sbin/o2cb.init",
    "/usr/sbin/o2cb.init",
    "/usr/lib/ocfs2-tools/o2cb.init",
];
const TOOLS: [&str; 3] = ["/sbin/o2cb", "/usr/sbin/o2cb", "/usr/bin/o2cb"];
const POLL: Duration = Duration::from_millis(250);

pub fn detect(host: &HostActions) -> Option<ServiceManager> {
    let exists = |p: &str| host.paths.root(p).exists();
    if exists("/run/systemd/system")
        && UNIT_DIRS
            .iter()
            .any(|d| exists(&format!("{d}/o2cb.service")))
    {
        return Some(ServiceManager::Systemd);
    }
    if let Some(script) = SCRIPTS.iter().find(|p| exists(p)) {
        return Some(ServiceManager::Script(PathBuf::from(script)));
    }
    TOOLS
        .iter()
        .any(|p| exists(p))
        .then_some(ServiceManager::O2cbTool)
}

fn tool(host: &HostActions, path: &Path) -> String {
    if host.command_prefix.is_empty() {
        host.paths.root(path).to_string_lossy().into_owned()
    } else {
        path.to_string_lossy().into_owned()
    }
}

/// Why the stack did not stop, start or rejoin as wanted.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Configfs(#[from] CollectError),
    #[error("cannot write {value} to {}: {error}", path.display())]
    WriteTimeout {
        value: u32,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("heartbeat regions still active {regions:?} after {after:?}")]
    RegionsActive {
        regions: Vec<String>,
        after: Duration,
    },
    #[error("timeouts differ: {}", .0.join(", "))]
    TimeoutsDiffer(Vec<String>),
    #[error("cluster not registered")]
    NotRegistered,
    #[error("no local node in configfs")]
    NoLocalNode,
    #[error("cannot read {}: {error}", path.display())]
    NodeMapRead {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot read {}: {error}", path.display())]
    NodeMapParse { path: PathBuf, error: ParseError },
    #[error("live in heartbeat but not connected: nodes {}", .0.join(", "))]
    NotConnected(Vec<String>),
}

fn run(host: &HostActions, program: &str, args: &[&str]) -> Result<(), StackError> {
    command::run_checked(&host.command_prefix, program, args, host.timeout)?;
    Ok(())
}

fn cluster_dir(host: &HostActions, cluster: &str) -> PathBuf {
    host.paths.sys(format!("kernel/config/cluster/{cluster}"))
}

/// The cluster is registered in configfs.
pub fn registered(host: &HostActions, cluster: &str) -> bool {
    cluster_dir(host, cluster).is_dir()
}

/// The timeouts to run with: sysconfig's, else `seen` (what the stack ran
/// with), else the kernel's defaults (`None`: not written).
pub fn desired_timeouts(host: &HostActions, seen: Option<StackTimeouts>) -> StackTimeouts {
    let from_file = ["/etc/sysconfig/o2cb", "/etc/default/o2cb"]
        .iter()
        .map(|p| host.paths.root(p))
        .find(|p| p.exists())
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|text| StackTimeouts::from_sysconfig(&parse_sysconfig(&text)))
        .unwrap_or_default();
    from_file.or(seen)
}

/// Writes the timeouts into configfs, in an order the kernel accepts
/// (keepalive < idle at every step). Returns what was written.
pub fn apply_timeouts(
    host: &HostActions,
    cluster: &str,
    want: StackTimeouts,
) -> Result<Vec<String>, StackError> {
    let dir = cluster_dir(host, cluster);
    let current = read_cluster(&host.paths)
        .ok()
        .flatten()
        .filter(|c| c.name == cluster)
        .map(|c| StackTimeouts::of(&c))
        .unwrap_or_default();
    let idle_first = match (want.idle_timeout_ms, current.keepalive_delay_ms) {
        (Some(idle), Some(keepalive)) => idle > keepalive,
        _ => true,
    };
    let mut order = vec![("heartbeat/dead_threshold", want.dead_threshold)];
    let idle = ("idle_timeout_ms", want.idle_timeout_ms);
    let keepalive = ("keepalive_delay_ms", want.keepalive_delay_ms);
    if idle_first {
        order.extend([idle, keepalive]);
    } else {
        order.extend([keepalive, idle]);
    }
    order.push(("reconnect_delay_ms", want.reconnect_delay_ms));
    let mut written = Vec::new();
    for (name, value) in order {
        let Some(value) = value else { continue };
        let path = dir.join(name);
        if let Err(error) = std::fs::write(&path, format!("{value}\n")) {
            return Err(StackError::WriteTimeout { value, path, error });
        }
        written.push(format!("{name}={value}"));
    }
    Ok(written)
}

/// Differences between configfs and `want`, e.g. `idle_timeout_ms 30000 (want 10000)`.
pub fn timeout_mismatches(host: &HostActions, cluster: &str, want: StackTimeouts) -> Vec<String> {
    let Some(have) = read_cluster(&host.paths)
        .ok()
        .flatten()
        .filter(|c| c.name == cluster)
    else {
        return vec![format!("cluster {cluster} not registered")];
    };
    let have = StackTimeouts::of(&have);
    [
        ("dead_threshold", have.dead_threshold, want.dead_threshold),
        (
            "idle_timeout_ms",
            have.idle_timeout_ms,
            want.idle_timeout_ms,
        ),
        (
            "keepalive_delay_ms",
            have.keepalive_delay_ms,
            want.keepalive_delay_ms,
        ),
        (
            "reconnect_delay_ms",
            have.reconnect_delay_ms,
            want.reconnect_delay_ms,
        ),
    ]
    .into_iter()
    .filter(|(_, have, want)| want.is_some() && have != want)
    .map(|(name, have, want)| {
        let have = have.map_or_else(|| "unreadable".to_string(), |v| v.to_string());
        format!("{name} {have} (want {})", want.unwrap_or_default())
    })
    .collect()
}

/// Local heartbeat regions stop asynchronously after the last unmount (the
/// kernel's usermode helper runs `ocfs2_hb_ctl -K`); o2cb refuses to go
/// offline until they are gone. Global regions stay until stopped.
fn wait_for_local_regions(host: &HostActions, cluster: &str) -> Result<(), StackError> {
    let deadline = crate::input::deadline(host.timeout);
    loop {
        let Some(cluster_config) = read_cluster(&host.paths)?.filter(|c| c.name == cluster) else {
            return Ok(());
        };
        if cluster_config.heartbeat_mode == Some(HeartbeatMode::Global)
            || cluster_config.regions.is_empty()
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(StackError::RegionsActive {
                regions: cluster_config.regions.into_iter().map(|r| r.uuid).collect(),
                after: host.timeout,
            });
        }
        std::thread::sleep(POLL);
    }
}

pub fn stop(host: &HostActions, manager: &ServiceManager, cluster: &str) -> Result<(), StackError> {
    wait_for_local_regions(host, cluster)?;
    match manager {
        ServiceManager::Systemd => run(host, "systemctl", &["stop", "o2cb.service"]),
        ServiceManager::Script(script) => run(host, &tool(host, script), &["offline"]),
        ServiceManager::O2cbTool => {
            run(host, "o2cb", &["stop-heartbeat", cluster])?;
            run(host, "o2cb", &["unregister-cluster", cluster])
        }
    }
}

/// Starts the stack with `want`'s timeouts; returns the timeouts written.
pub fn start(
    host: &HostActions,
    manager: &ServiceManager,
    cluster: &str,
    want: StackTimeouts,
) -> Result<Vec<String>, StackError> {
    match manager {
        ServiceManager::Systemd => run(host, "systemctl", &["start", "o2cb.service"])?,
        ServiceManager::Script(script) => run(host, &tool(host, script), &["online"])?,
        ServiceManager::O2cbTool => {
            // Registered already when an undo retries a start that failed
            // halfway: the timeouts and heartbeat are what is left to do.
            if !registered(host, cluster) {
                run(host, "o2cb", &["register-cluster", cluster])?;
            }
            let written = apply_timeouts(host, cluster, want)?;
            run(host, "o2cb", &["start-heartbeat", cluster])?;
            return Ok(written);
        }
    }
    // The script or unit applied its own file; values it left at the
    // kernel's default are set now, before any mount connects a peer.
    if timeout_mismatches(host, cluster, want).is_empty() {
        Ok(Vec::new())
    } else {
        apply_timeouts(host, cluster, want)
    }
}

/// The node rejoined: configfs has the wanted timeouts and every node live
/// in heartbeat (debugfs `o2hb/livenodes`) is connected over o2net
/// (`o2net/connected_nodes`). Polled until `deadline`. `heartbeat_expected`:
/// volumes were mounted again, so local heartbeat runs.
pub fn wait_rejoined(
    host: &HostActions,
    cluster: &str,
    want: StackTimeouts,
    heartbeat_expected: bool,
    deadline: Instant,
) -> Result<String, StackError> {
    loop {
        let result = rejoined(host, cluster, want, heartbeat_expected);
        if result.is_ok() || Instant::now() >= deadline {
            return result;
        }
        std::thread::sleep(POLL);
    }
}

fn rejoined(
    host: &HostActions,
    cluster: &str,
    want: StackTimeouts,
    heartbeat_expected: bool,
) -> Result<String, StackError> {
    let mismatches = timeout_mismatches(host, cluster, want);
    if !mismatches.is_empty() {
        return Err(StackError::TimeoutsDiffer(mismatches));
    }
    let config = read_cluster(&host.paths)?.ok_or(StackError::NotRegistered)?;
    let local = config
        .local_node()
        .and_then(|n| n.num)
        .ok_or(StackError::NoLocalNode)?;
    // Local heartbeat runs only while a volume is mounted: with none, there
    // is nobody to connect to yet (the mounts' own join connects).
    if !heartbeat_expected && config.heartbeat_mode != Some(HeartbeatMode::Global) {
        return Ok("registered, no volume mounted: no heartbeat to join yet".to_string());
    }
    let read = |name: &str| {
        let path = host.paths.sys(format!("kernel/debug/{name}"));
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                parse_node_map_file(&text).map_err(|error| StackError::NodeMapParse { path, error })
            }
            Err(error) => Err(StackError::NodeMapRead { path, error }),
        }
    };
    let live = read("o2hb/livenodes")?;
    let connected = read("o2net/connected_nodes")?;
    let missing: Vec<String> = live
        .iter()
        .filter(|n| **n != local && !connected.contains(n))
        .map(|n| n.to_string())
        .collect();
    if missing.is_empty() {
        let peers = live.iter().filter(|n| **n != local).count();
        Ok(format!("rejoined: connected to {peers} live peers"))
    } else {
        Err(StackError::NotConnected(missing))
    }
}
