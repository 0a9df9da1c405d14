//! Collectors: one per source of facts, each a unit struct in its own file,
//! listed once in `COLLECTORS`.
//!
//! A collector reads its host files (through `HostPaths`), parses them with
//! pure `parse_*` functions kept apart from the reading, and returns a
//! `Section`: metric families plus typed facts for the rules. The sampler runs
//! every collector on its own deadline thread (see `probe.rs`), so a collector
//! may block; anything that can hang on the SAN *inside* a collector still goes
//! through a deadline probe from `Context` so the collector itself stays
//! bounded. State that must survive a tick (counters) is carried in the
//! collector's previous `Section`, which the sampler passes back in.
//!
//! Adding a collector: one file, one entry in `COLLECTORS`, one
//! `family_table!` declaring its families (`crate::metrics`), a `Facts`
//! variant in `section.rs` if the rules read it, one fixture scenario, one
//! golden diff, one row per family in `docs/metrics.md`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::config::Config;
use crate::host::HostPaths;
use crate::kernel_log::state::KernelLogState;
use crate::probe::{ProbePool, Prober};

pub mod configfs;
pub mod dlm;
pub mod failure_log;
pub mod fs_state;
pub mod heartbeat;
pub mod heartbeat_disk;
pub mod kernel_log;
pub mod mounts;
pub mod net;
pub mod nodemap;
pub mod o2cb;
pub mod parse_error;
pub mod section;
pub mod storage;

pub use section::{Facts, Section};

/// Everything a collector may use: where host files are, the configuration,
/// and the shared probers for calls that can hang.
pub struct Context {
    pub paths: HostPaths,
    pub config: Arc<Config>,
    pub pool: ProbePool,
    pub mount_probes: Prober<mounts::ProbeOutcome>,
    pub heartbeat_disk_probes: Prober<heartbeat_disk::SlotsOutcome>,
    /// Fed by the kernel log reader thread between ticks.
    pub kernel_log: Arc<KernelLogState>,
    /// The parsed mount table, kept until the kernel reports a change.
    pub mount_table: mounts::table::TableCache,
    /// `mounts.mount_points_exclude`, compiled once (`None`: excludes nothing).
    pub mount_points_exclude: Option<regex::Regex>,
}

impl Context {
    pub fn new(paths: HostPaths, config: Arc<Config>) -> Self {
        let pool = ProbePool::new(config.probe.max_threads);
        Self {
            mount_probes: Prober::new("mount", pool.clone()),
            heartbeat_disk_probes: Prober::new("heartbeat-disk", pool.clone()),
            kernel_log: Arc::new(KernelLogState::new(config.kernel_log.recent_events)),
            mount_table: mounts::table::TableCache::default(),
            mount_points_exclude: mounts::compile_exclude(&config.mounts.mount_points_exclude),
            paths,
            config,
            pool,
        }
    }
}

pub trait Collector: Sync {
    /// The `collector` label value.
    fn name(&self) -> &'static str;

    /// Reads and parses the collector's sources. `previous` is this
    /// collector's last successful section, for counters and spike tracking.
    fn collect(&self, ctx: &Context, previous: Option<&Section>) -> Result<Section, CollectError>;
}

/// Every collector the daemon runs, in `/metrics` order of their sections.
pub static COLLECTORS: &[&dyn Collector] = &[
    &mounts::Mounts,
    &o2cb::O2cb,
    &heartbeat::Heartbeat,
    &net::Net,
    &dlm::Dlm,
    &fs_state::FsState,
    &storage::Iscsi,
    &storage::Storage,
    &kernel_log::KernelLog,
];

/// The fixed set of reasons a collector can fail with, exported as the
/// `reason` label of `ocfs2_watchdog_collector_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    PermissionDenied,
    Parse,
    Io,
    Timeout,
    Panicked,
    NoCapacity,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::PermissionDenied => "permission_denied",
            Self::Parse => "parse",
            Self::Io => "io",
            Self::Timeout => "timeout",
            Self::Panicked => "panicked",
            Self::NoCapacity => "no_capacity",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct CollectError {
    pub kind: ErrorKind,
    pub path: PathBuf,
    pub message: String,
}

impl CollectError {
    pub fn new(kind: ErrorKind, path: &Path, message: impl Into<String>) -> Self {
        Self {
            kind,
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    pub fn io(path: &Path, error: &std::io::Error) -> Self {
        let kind = match error.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            _ => ErrorKind::Io,
        };
        Self::new(kind, path, error.to_string())
    }

    pub fn parse(path: &Path, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Parse, path, message)
    }
}

/// Reads a whole host file; proc, sys and debugfs files are generated at open,
/// so they are opened afresh on every call.
pub fn read_host_file(path: &Path) -> Result<String, CollectError> {
    std::fs::read_to_string(path).map_err(|e| CollectError::io(path, &e))
}

/// Like `read_host_file`, but a missing file is `Ok(None)`: for optional
/// sources whose absence is not an error.
pub fn read_optional(path: &Path) -> Result<Option<String>, CollectError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CollectError::io(path, &e)),
    }
}

/// Sorted names of the subdirectories of `dir`; `None` when `dir` is absent.
pub fn list_dirs(dir: &Path) -> Result<Option<Vec<String>>, CollectError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CollectError::io(dir, &e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(Some(names))
}
