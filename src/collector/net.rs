//! The `net` collector: o2net connections to the configured peers.
//!
//! Reads debugfs `/sys/kernel/debug/o2net/connected_nodes` (node bitmap of
//! peers with a handshaken connection) and `sock_containers` (one block per
//! socket container; fs/ocfs2/cluster/netdebug.c, docs/interfaces.md §3.1). A
//! container's `timer` is the absolute `ktime_get()` (CLOCK_MONOTONIC) time in
//! µs of the last received message, so the peer's idle time is the current
//! CLOCK_MONOTONIC minus it. Peers and their names come from configfs.
//!
//! Limitation seen in the lab: while the interconnect was cut, the survivor's
//! `connected_nodes` still listed the peer for the whole outage (o2net keeps
//! the connection until the quorum decision), so `ocfs2_net_connected` alone
//! does not prove the link works. `ocfs2_net_idle_seconds` growing past the
//! idle timeout, and the kernel log's `net_idle_timeout` events, are the
//! signals that do.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::configfs::{self, ClusterConfig};
use super::nodemap::{parse_node_map_file, NodeSet};
use super::parse_error::ParseError;
use super::{read_host_file, CollectError, Collector, Context};
use crate::collector::{Facts, Section};
use crate::metrics::{bool_value, family_table, Families, Family};

pub struct Net;

/// One `sock_containers` block, the fields used here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SockContainer {
    pub remote_node: Option<String>,
    pub handshake_ok: Option<bool>,
    /// Monotonic µs of the last received message.
    pub timer_us: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetFacts {
    pub connected: NodeSet,
    /// Seconds since the last message, per peer name, for handshaken sockets.
    pub idle_seconds: BTreeMap<String, f64>,
}

impl Collector for Net {
    fn name(&self) -> &'static str {
        "net"
    }

    fn collect(&self, ctx: &Context, _: Option<&Section>) -> Result<Section, CollectError> {
        let Some(cluster) = configfs::read_cluster(&ctx.paths)? else {
            return Ok(Section {
                absent: Some("no o2cb cluster registered in configfs".into()),
                ..Section::default()
            });
        };
        let base = ctx.paths.sys("kernel/debug/o2net");
        let connected = read_parsed(&base.join("connected_nodes"), parse_node_map_file)?;
        let containers = read_parsed(&base.join("sock_containers"), parse_sock_containers)?;
        let now_us = monotonic_now_us();
        let mut idle_seconds = BTreeMap::new();
        for container in containers {
            if let (Some(name), Some(true), Some(timer), Some(now)) = (
                container.remote_node,
                container.handshake_ok,
                container.timer_us,
                now_us,
            ) {
                // `timer_us` is read from debugfs: a garbage value must not
                // overflow the subtraction.
                let Some(idle_us) = now.checked_sub(timer) else {
                    continue;
                };
                let idle = idle_us.max(0) as f64 / 1e6;
                // Keep the freshest socket when a peer has several.
                let entry = idle_seconds.entry(name).or_insert(idle);
                *entry = entry.min(idle);
            }
        }
        let facts = NetFacts {
            connected,
            idle_seconds,
        };
        Ok(Section {
            families: families(&cluster, &facts),
            facts: Facts::Net(Arc::new(facts)),
            absent: None,
        })
    }
}

pub(crate) fn read_parsed<T>(
    path: &Path,
    parse: fn(&str) -> Result<T, ParseError>,
) -> Result<T, CollectError> {
    let text = read_host_file(path)?;
    parse(&text).map_err(|error| CollectError::parse(path, error.to_string()))
}

/// The kernel's CLOCK_MONOTONIC (`ktime_get()`), in µs.
fn monotonic_now_us() -> Option<i64> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
    Some(now.tv_sec() * 1_000_000 + now.tv_nsec() / 1000)
}

/// `sock_containers`: `%p:` at column 0 starts a block; indented
/// `name: value` lines follow. Empty when there is no connection.
pub fn parse_sock_containers(text: &str) -> Result<Vec<SockContainer>, ParseError> {
    let mut containers: Vec<SockContainer> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            let pointer = line
                .strip_suffix(':')
                .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_hexdigit()));
            if pointer.is_none() {
                return Err(ParseError::BadLine {
                    line: index + 1,
                    expected: "a socket container header (`%p:`)",
                });
            }
            containers.push(SockContainer::default());
            continue;
        }
        let Some(current) = containers.last_mut() else {
            return Err(ParseError::BadLine {
                line: index + 1,
                expected: "a container header before its fields",
            });
        };
        let (key, value) = line.trim().split_once(':').ok_or(ParseError::BadLine {
            line: index + 1,
            expected: "a `name: value` field",
        })?;
        let value = value.trim();
        let bad = |field: &'static str| ParseError::BadField {
            field,
            value: value.to_string(),
        };
        match key {
            "remote node" => current.remote_node = Some(value.to_string()),
            "handshake ok" => {
                current.handshake_ok = Some(match value {
                    "0" => false,
                    "1" => true,
                    _ => return Err(bad("handshake ok")),
                })
            }
            "timer" => {
                let micros = value.strip_suffix(" usecs").ok_or_else(|| bad("timer"))?;
                current.timer_us = Some(micros.parse().map_err(|_| bad("timer"))?);
            }
            _ => {}
        }
    }
    Ok(containers)
}

family_table! {
    /// The net collector's families.
    enum NetFamily {
        Connected = gauge(
            "ocfs2_net_connected",
            "1 when o2net has a handshaken connection to the configured peer (may stay 1 during a cut link: see docs).",
        ),
        IdleSeconds = gauge(
            "ocfs2_net_idle_seconds",
            "Seconds since the last message received from the peer (sock_containers timer vs CLOCK_MONOTONIC).",
        ),
        UnknownConnectedNodes = gauge(
            "ocfs2_net_unknown_connected_nodes",
            "Nodes o2net is connected to that configfs does not list.",
        ),
    }
}

fn families(cluster: &ClusterConfig, facts: &NetFacts) -> Vec<Family> {
    use NetFamily as F;
    let mut f = Families::<NetFamily>::new();
    let local = cluster.local_node().and_then(|n| n.num);
    let mut configured = NodeSet::new();
    for (num, node) in cluster.numbered_nodes() {
        configured.insert(num);
        if Some(num) == local {
            continue;
        }
        let num_label = num.to_string();
        let labels = [
            ("node_num", num_label.as_str()),
            ("node_name", node.name.as_str()),
        ];
        f[F::Connected].push(&labels, bool_value(facts.connected.contains(&num)));
        if let Some(seconds) = facts.idle_seconds.get(&node.name) {
            f[F::IdleSeconds].push(&labels, *seconds);
        }
    }
    f[F::UnknownConnectedNodes].push(&[], facts.connected.difference(&configured).count() as f64);
    f.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// captures/n1-02-2node-mounted-debugfs-o2net.txt, byte for byte.
    const N1_SOCK: &str = "00000000adb11ba4:\n  krefs:           3\n  sock:            10.99.0.1:7777 -> 10.99.0.2:33399\n  remote node:     n2\n  page off:        0\n  handshake ok:    1\n  timer:           57538818 usecs\n  data ready:      57538558 usecs\n  advance start:   57538826 usecs\n  advance stop:    57538834 usecs\n  func start:      55514154 usecs\n  func stop:       55514241 usecs\n  func key:        0x1c95b96c\n  func type:       505\n";

    #[test]
    fn sock_containers_from_the_capture() {
        assert_eq!(
            parse_sock_containers(N1_SOCK),
            Ok(vec![SockContainer {
                remote_node: Some("n2".into()),
                handshake_ok: Some(true),
                timer_us: Some(57538818),
            }])
        );
        // n1-01: no connection, empty file.
        assert_eq!(parse_sock_containers(""), Ok(vec![]));
        let two = format!("{N1_SOCK}{}", N1_SOCK.replace("adb11ba4", "2474475b"));
        assert_eq!(parse_sock_containers(&two).map(|c| c.len()), Ok(2));
    }

    #[test]
    fn truncated_and_garbage_sock_containers() {
        // Truncated mid-block: what is there is kept.
        let cut = &N1_SOCK[..N1_SOCK.find("  handshake").unwrap()];
        let parsed = parse_sock_containers(cut).unwrap();
        assert_eq!(parsed[0].handshake_ok, None);
        assert!(parse_sock_containers("  remote node: n2\n").is_err());
        assert!(parse_sock_containers("garbage\n").is_err());
        assert!(parse_sock_containers("0000abcd:\n  timer: soon\n").is_err());
        assert!(parse_sock_containers("0000abcd:\n  handshake ok: yes\n").is_err());
        assert!(parse_sock_containers("0000abcd:\n  no colon here\n").is_err());
    }

    #[test]
    fn monotonic_clock_is_readable() {
        assert!(monotonic_now_us().is_some_and(|us| us > 0));
    }
}
