//! `[cluster]`: how the watchdogs of one o2cb cluster reach each other.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's name in /etc/ocfs2/cluster.conf, used in maintenance
    /// records and the peer protocol; unset: the short hostname. A name
    /// that is not in cluster.conf is reported
    /// (`ocfs2_watchdog_cluster_node_known`) and holds lease-needing
    /// actions.
    pub node_name: Option<String>,
    /// File holding the shared cluster token (same on every node). Unset:
    /// no peer protocol; whatever needs the peers fails closed.
    pub token_file: Option<PathBuf>,
    /// TCP port of the peer protocol on every node's interconnect address
    /// (cluster.conf `ip_address`).
    pub port: u16,
    /// `host:port` to listen on; unset: this node's interconnect address
    /// from cluster.conf with `port`.
    pub listen: Option<String>,
    /// How often each peer is asked.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// The total deadline of one peer request: connecting, sending and
    /// the whole answer (at most 64 KiB).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How many nodes of the cluster may hold the lease for disruptive
    /// actions at once (`cluster::lease`); 0 is read as 1.
    pub max_concurrent_nodes: u32,
    /// Longest cluster maintenance window (`maintenance on --for`); a
    /// longer request, or a peer's or the state file's record with a
    /// longer window, is refused.
    #[serde(with = "humantime_serde")]
    pub max_maintenance: Duration,
    /// How far ahead of this node's clock a time from a peer or a state
    /// file may lie before it is refused (NTP keeps real clocks far closer).
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
}

impl ClusterConfig {
    pub fn validate(&self) -> Result<(), crate::config::error::ConfigError> {
        let invalid = |key, reason: &str| {
            Err(crate::config::error::ConfigError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        if self.max_maintenance.is_zero()
            || self.max_maintenance > Duration::from_secs(366 * 86_400)
        {
            return invalid(
                "cluster.max_maintenance",
                "must be greater than 0 and at most 366 days (e.g. \"3d\")",
            );
        }
        if self.max_clock_skew > Duration::from_secs(86_400) {
            return invalid(
                "cluster.max_clock_skew",
                "must be at most 1 day (e.g. \"5m\"); keep the clocks in sync with NTP",
            );
        }
        Ok(())
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_name: None,
            token_file: None,
            port: 9786,
            listen: None,
            poll_interval: Duration::from_secs(5),
            request_timeout: Duration::from_secs(2),
            max_concurrent_nodes: 1,
            max_maintenance: Duration::from_secs(3 * 86_400),
            max_clock_skew: Duration::from_secs(300),
        }
    }
}
