//! The `o2cb` collector: the cluster stack's running shape and its drift from
//! the configuration files.
//!
//! Reads the configfs tree `/sys/kernel/config/cluster/<cluster>/` (via
//! `configfs::read_cluster`; fs/ocfs2/cluster/nodemanager.c, heartbeat.c),
//! `/etc/sysconfig/o2cb` or else `/etc/default/o2cb` (shell `KEY=value`,
//! ocfs2-tools vendor/common/o2cb.init.sh), `/etc/ocfs2/cluster.conf`
//! (ocfs2-tools o2cb_ctl/jconfig.c), `/etc/hostname` (else the proc
//! `sys/kernel/hostname`) and `/etc/fstab`, all under the root. "Online" is
//! what `o2cb cluster-status` decides (o2cb_ctl/op_status.c). A bad line in a
//! configuration file is counted and logged once, never fatal; a missing or
//! garbage configfs attribute drops only that value.

pub mod cluster_conf;
pub mod drift;
mod families;
pub mod sysconfig;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::configfs::{self, ClusterConfig};
use super::mounts::fstab::parse_fstab;
use super::{read_optional, CollectError, Collector, Context};
use crate::collector::{Facts, Section};
use cluster_conf::ClusterConf;
use drift::{DriftInput, Mismatch};
use sysconfig::{ParseIssue, Sysconfig};

pub struct O2cb;

/// A configuration file line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileIssue {
    /// Host path of the file.
    pub file: PathBuf,
    pub issue: ParseIssue,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct O2cbFacts {
    /// The `o2cb_cluster` label: the running cluster, else the configured one.
    pub cluster_name: String,
    pub cluster: Option<ClusterConfig>,
    pub online: bool,
    pub sysconfig_file: Option<PathBuf>,
    pub mismatches: Vec<Mismatch>,
    /// Every configuration file read, with its unusable lines (maybe none).
    pub files: Vec<(PathBuf, Vec<ParseIssue>)>,
    /// The timeouts the stack last ran with while this daemon watched it,
    /// kept while it is down: what a restart with the bare `o2cb` tool must
    /// write again when the sysconfig file does not say.
    pub last_timeouts: Option<StackTimeouts>,
    /// The host is meant to run a cluster: `O2CB_ENABLED=true`, a
    /// cluster.conf, or an OCFS2 mount expected (fstab or config). An
    /// offline stack on a host with none of these is ocfs2-tools
    /// installed and idle, not an outage.
    pub expected: bool,
}

/// The configfs timeouts peers compare at connect (o2net disconnects on a
/// mismatch), as o2cb.init writes them before starting heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackTimeouts {
    pub dead_threshold: Option<u32>,
    pub idle_timeout_ms: Option<u32>,
    pub keepalive_delay_ms: Option<u32>,
    pub reconnect_delay_ms: Option<u32>,
}

impl StackTimeouts {
    pub fn of(cluster: &ClusterConfig) -> Self {
        Self {
            dead_threshold: cluster.dead_threshold,
            idle_timeout_ms: cluster.idle_timeout_ms,
            keepalive_delay_ms: cluster.keepalive_delay_ms,
            reconnect_delay_ms: cluster.reconnect_delay_ms,
        }
    }

    /// The sysconfig variables (o2cb.init: empty means "leave the kernel's").
    pub fn from_sysconfig(sysconfig: &Sysconfig) -> Self {
        let get = |key| sysconfig.get(key).and_then(|v| v.parse().ok());
        Self {
            dead_threshold: get("O2CB_HEARTBEAT_THRESHOLD"),
            idle_timeout_ms: get("O2CB_IDLE_TIMEOUT_MS"),
            keepalive_delay_ms: get("O2CB_KEEPALIVE_DELAY_MS"),
            reconnect_delay_ms: get("O2CB_RECONNECT_DELAY_MS"),
        }
    }

    /// Each value from `self`, else from `fallback`.
    pub fn or(self, fallback: Option<Self>) -> Self {
        let fallback = fallback.unwrap_or_default();
        Self {
            dead_threshold: self.dead_threshold.or(fallback.dead_threshold),
            idle_timeout_ms: self.idle_timeout_ms.or(fallback.idle_timeout_ms),
            keepalive_delay_ms: self.keepalive_delay_ms.or(fallback.keepalive_delay_ms),
            reconnect_delay_ms: self.reconnect_delay_ms.or(fallback.reconnect_delay_ms),
        }
    }
}

impl Collector for O2cb {
    fn name(&self) -> &'static str {
        "o2cb"
    }

    fn collect(&self, ctx: &Context, previous: Option<&Section>) -> Result<Section, CollectError> {
        let cluster = configfs::read_cluster(&ctx.paths)?;
        let mut files = Vec::new();
        let (sysconfig_file, sysconfig) = read_sysconfig(ctx, &mut files);
        let conf_path = ctx.paths.root("/etc/ocfs2/cluster.conf");
        let cluster_conf = read_config_file(ctx, &conf_path, &mut files, |text| {
            let conf = cluster_conf::parse_cluster_conf(text);
            (conf.issues.clone(), conf)
        });
        if cluster.is_none() && sysconfig.is_none() && cluster_conf.is_none() {
            return Ok(Section {
                absent: Some(
                    "no o2cb cluster registered in configfs and no o2cb configuration".into(),
                ),
                ..Section::default()
            });
        }
        let hostname = read_hostname(ctx);
        let mounts_expected = ocfs2_mounts_expected(ctx)?;
        let expected = mounts_expected
            || cluster_conf.is_some()
            || sysconfig.as_ref().is_some_and(Sysconfig::enabled);
        let mismatches = drift::compare(&DriftInput {
            cluster: cluster.as_ref(),
            sysconfig: sysconfig.as_ref(),
            cluster_conf: cluster_conf.as_ref(),
            hostname: hostname.as_deref(),
            mounts_expected,
        });
        let last_timeouts = cluster
            .as_ref()
            .map(StackTimeouts::of)
            .or_else(|| previous_facts(previous).and_then(|p| p.last_timeouts));
        let facts = O2cbFacts {
            last_timeouts,
            cluster_name: cluster_label(
                cluster.as_ref(),
                sysconfig.as_ref(),
                cluster_conf.as_ref(),
            ),
            online: cluster.as_ref().is_some_and(ClusterConfig::is_online),
            cluster,
            sysconfig_file,
            mismatches,
            files,
            expected,
        };
        log_changes(&facts, previous_facts(previous));
        Ok(Section {
            families: families::families(&facts),
            facts: Facts::O2cb(Arc::new(facts)),
            absent: None,
        })
    }
}

fn previous_facts(previous: Option<&Section>) -> Option<&O2cbFacts> {
    previous.and_then(|p| match &p.facts {
        Facts::O2cb(facts) => Some(facts.as_ref()),
        _ => None,
    })
}

/// `/etc/sysconfig/o2cb` if it exists, else `/etc/default/o2cb` (o2cb.init).
fn read_sysconfig(
    ctx: &Context,
    files: &mut Vec<(PathBuf, Vec<ParseIssue>)>,
) -> (Option<PathBuf>, Option<Sysconfig>) {
    for candidate in ["/etc/sysconfig/o2cb", "/etc/default/o2cb"] {
        let path = ctx.paths.root(candidate);
        if path.exists() {
            let parsed = read_config_file(ctx, &path, files, |text| {
                let sysconfig = sysconfig::parse_sysconfig(text);
                (sysconfig.issues.clone(), sysconfig)
            });
            return (Some(ctx.paths.host_path(&path)), parsed);
        }
    }
    (None, None)
}

/// Reads and parses one configuration file; an unreadable file is recorded
/// as an issue on line 0 rather than failing the collector.
fn read_config_file<T>(
    ctx: &Context,
    path: &Path,
    files: &mut Vec<(PathBuf, Vec<ParseIssue>)>,
    parse: impl Fn(&str) -> (Vec<ParseIssue>, T),
) -> Option<T> {
    let host_path = ctx.paths.host_path(path);
    match read_optional(path) {
        Ok(None) => None,
        Ok(Some(text)) => {
            let (issues, parsed) = parse(&text);
            files.push((host_path, issues));
            Some(parsed)
        }
        Err(e) => {
            let issue = ParseIssue {
                line: 0,
                message: format!("cannot read: {}", e.message),
            };
            files.push((host_path, vec![issue]));
            None
        }
    }
}

/// The short host name o2cb matches node names against.
fn read_hostname(ctx: &Context) -> Option<String> {
    let from_etc = read_optional(&ctx.paths.root("/etc/hostname"))
        .ok()
        .flatten()
        .and_then(|text| first_word(&text));
    from_etc.or_else(|| {
        read_optional(&ctx.paths.proc("sys/kernel/hostname"))
            .ok()
            .flatten()
            .and_then(|text| first_word(&text))
    })
}

fn first_word(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
}

/// OCFS2 mounts the node is told to have: fstab entries without `noauto`, or
/// configured ones (the same sources as the mounts collector).
fn ocfs2_mounts_expected(ctx: &Context) -> Result<bool, CollectError> {
    if ctx
        .config
        .mounts
        .expected
        .iter()
        .any(|m| m.fstype == "ocfs2")
    {
        return Ok(true);
    }
    if !ctx.config.mounts.use_fstab {
        return Ok(false);
    }
    let fstab = read_optional(&ctx.paths.root("/etc/fstab"))?.unwrap_or_default();
    Ok(parse_fstab(&fstab)
        .entries
        .iter()
        .any(|e| e.fstype == "ocfs2" && !e.is_noauto()))
}

fn cluster_label(
    cluster: Option<&ClusterConfig>,
    sysconfig: Option<&Sysconfig>,
    conf: Option<&ClusterConf>,
) -> String {
    if let Some(cluster) = cluster {
        return cluster.name.clone();
    }
    if let Some(boot) = sysconfig.and_then(|s| s.get("O2CB_BOOTCLUSTER")) {
        return boot.to_string();
    }
    match conf.map(|c| c.clusters.as_slice()) {
        Some([only]) => only.name.clone(),
        _ => String::new(),
    }
}

/// One warning per new problem, not one per tick.
fn log_changes(facts: &O2cbFacts, previous: Option<&O2cbFacts>) {
    for (file, issues) in &facts.files {
        let known = previous
            .and_then(|p| p.files.iter().find(|(f, _)| f == file))
            .map(|(_, issues)| issues.as_slice())
            .unwrap_or_default();
        for issue in issues.iter().filter(|i| !known.contains(i)) {
            tracing::warn!(file = %file.display(), line = issue.line, error = %issue.message, "Cannot parse o2cb configuration line.");
        }
    }
    for mismatch in facts.mismatches.iter().filter(|m| m.mismatch) {
        let known = previous.is_some_and(|p| p.mismatches.iter().any(|m2| m2 == mismatch));
        if !known {
            tracing::warn!(setting = mismatch.setting, detail = %mismatch.detail, "o2cb configuration differs from the running cluster.");
        }
    }
}
