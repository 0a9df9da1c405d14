//! The `mounts` collector: health of every watched (OCFS2) mount point.
//!
//! Reads the host's mount table (`/proc/1/mountinfo` under the proc root, or
//! `/proc/self/mountinfo` when PID 1's is unreadable), `/etc/fstab` and the
//! udev `/dev/disk/by-{uuid,label}` links under the root, and probes each
//! watched mount point with stat+statfs on a deadline thread, because those
//! calls block forever on a dead SAN or FUSE server. A stuck probe marks the
//! mount `stuck` and is never doubled (see `probe.rs`). Metrics are per mount
//! point (never per layer: a path can carry thousands), and the facts feed the
//! remount and unstack rules.

mod devices;
mod families;
pub mod fstab;
pub mod mountinfo;
pub mod stack;
pub mod superblock;
pub mod table;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use devices::{is_unstable_device_name, normalize_uuid};
use mountinfo::{MountEntry, MountTable};

use super::{CollectError, Collector, Context};
use crate::collector::{Facts, Section};
use crate::probe::ProbeState;

pub struct Mounts;

/// Where an expected mount comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedOrigin {
    Fstab,
    Config,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expected {
    pub source: String,
    pub fstype: String,
    pub options: String,
    pub origin: ExpectedOrigin,
}

/// What the last stat+statfs probe of a mount point found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProbeView {
    /// Blocked past `mounts.probe_timeout` and not returned yet.
    pub stuck: bool,
    /// The path shows the mounted filesystem (st_dev matches the top layer).
    pub reachable: bool,
    pub size_bytes: Option<f64>,
    pub avail_bytes: Option<f64>,
    pub duration_seconds: Option<f64>,
    pub error: Option<String>,
}

/// One watched or expected mount point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MountPoint {
    pub mountpoint: String,
    /// Layers on the path (visible parent-ID chain); 0 when not mounted.
    pub stacked: usize,
    pub duplicate_layers: usize,
    pub shadowed: bool,
    /// The topmost layer of a watched type, when any.
    pub top: Option<MountEntry>,
    /// The visible top layer's mount ID and whether it is in a shared peer
    /// group (umount there propagates), for the unstack action.
    pub top_id: Option<u32>,
    pub shared: bool,
    pub uuid: String,
    /// UUID of the volume last seen mounted here, kept while the path is
    /// unmounted: what a remount must find on the device again.
    pub last_uuid: String,
    pub label: String,
    pub readonly: bool,
    pub error_readonly: bool,
    pub device_missing: bool,
    pub mountpoint_deleted: bool,
    pub expected: Option<Expected>,
    pub unstable_device_name: Option<bool>,
    pub probe: ProbeView,
    /// Per-mount-point series are exported: the mount is expected, has a
    /// problem, or is not excluded by `mounts.mount_points_exclude`.
    pub detailed: bool,
}

impl MountPoint {
    pub fn is_mounted(&self) -> bool {
        self.top.is_some()
    }

    pub fn is_missing(&self) -> bool {
        self.expected.is_some() && !self.is_mounted()
    }

    /// Something an operator (or a rule) must see on this path; such a
    /// path keeps its per-mount-point series even where it is excluded.
    pub fn has_problem(&self) -> bool {
        self.stacked > 1
            || self.duplicate_layers > 0
            || self.shadowed
            || self.readonly
            || self.error_readonly
            || self.device_missing
            || self.mountpoint_deleted
            || self.is_missing()
            || self.probe.stuck
            || (self.is_mounted() && !self.probe.reachable && self.probe.error.is_some())
    }
}

/// Compiles `mounts.mount_points_exclude` (validated with the configuration);
/// empty means nothing is excluded.
pub fn compile_exclude(pattern: &str) -> Option<regex::Regex> {
    if pattern.is_empty() {
        return None;
    }
    regex::Regex::new(pattern)
        .inspect_err(|e| {
            tracing::error!(error = %e, "Invalid mounts.mount_points_exclude; excluding nothing.");
        })
        .ok()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MountFacts {
    pub table_path: PathBuf,
    pub table_entries: usize,
    pub invalid_lines: usize,
    pub fstab_invalid_lines: usize,
    /// How long the last read and parse of the table took.
    pub read_seconds: f64,
    /// Reads of the table since start (it is re-read only on change).
    pub table_reads: u64,
    /// The table is polled for changes (false: read on every tick).
    pub change_detection: bool,
    /// Watched mount points whose per-mount-point series are left out.
    pub excluded: usize,
    pub mounts: Vec<MountPoint>,
}

/// Result of one probe thread.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    pub device: Option<(u32, u32)>,
    pub size_bytes: f64,
    pub avail_bytes: f64,
    pub error: Option<String>,
}

const DELETED_SUFFIX: &str = " (deleted)";

impl Collector for Mounts {
    fn name(&self) -> &'static str {
        "mounts"
    }

    fn collect(&self, ctx: &Context, previous: Option<&Section>) -> Result<Section, CollectError> {
        let config = &ctx.config.mounts;
        let fstab_path = ctx.paths.root("/etc/fstab");
        let fstab = if config.use_fstab {
            super::read_optional(&fstab_path)?
                .map(|text| fstab::parse_fstab(&text))
                .unwrap_or_default()
        } else {
            fstab::Fstab::default()
        };
        if fstab.invalid_lines > 0 {
            tracing::warn!(file = %fstab_path.display(), invalid_lines = fstab.invalid_lines, "Skipped unreadable fstab lines.");
        }
        let expected = expected_mounts(ctx, &fstab);
        let keep: BTreeSet<String> = expected.keys().cloned().collect();
        let read = ctx.mount_table.current(ctx, &keep)?;
        let mut mounts = analyse(ctx, &read.table, &expected);
        let previous_facts = previous.and_then(|p| match &p.facts {
            Facts::Mounts(facts) => Some(facts.as_ref()),
            _ => None,
        });
        probe_all(ctx, &mut mounts, previous_facts);
        remember_uuids(&mut mounts, previous_facts);
        let exclude = ctx.mount_points_exclude.as_ref();
        for mount in &mut mounts {
            mount.detailed = mount.expected.is_some()
                || mount.has_problem()
                || !exclude.is_some_and(|re| re.is_match(&mount.mountpoint));
        }

        let facts = MountFacts {
            table_path: ctx.paths.host_path(&read.path),
            table_entries: read.total_entries,
            invalid_lines: read.table.invalid_lines,
            fstab_invalid_lines: fstab.invalid_lines,
            read_seconds: read.read_seconds,
            table_reads: read.reads,
            change_detection: read.change_detection,
            excluded: mounts.iter().filter(|m| !m.detailed).count(),
            mounts,
        };
        let absent = facts.mounts.is_empty().then(|| {
            format!(
                "no mounts of watched types ({}) and none expected",
                config.fstypes.join(", ")
            )
        });
        Ok(Section {
            families: families::families(&facts),
            facts: Facts::Mounts(std::sync::Arc::new(facts)),
            absent,
        })
    }
}

/// Keeps the UUID last seen at a path while nothing (or a volume of unknown
/// UUID) is mounted there.
fn remember_uuids(mounts: &mut [MountPoint], previous: Option<&MountFacts>) {
    let Some(previous) = previous else {
        return;
    };
    for mount in mounts.iter_mut().filter(|m| m.last_uuid.is_empty()) {
        if let Some(earlier) = previous
            .mounts
            .iter()
            .find(|p| p.mountpoint == mount.mountpoint)
        {
            mount.last_uuid = earlier.last_uuid.clone();
        }
    }
}

fn expected_mounts(ctx: &Context, fstab: &fstab::Fstab) -> BTreeMap<String, Expected> {
    let config = &ctx.config.mounts;
    let mut expected = BTreeMap::new();
    for entry in &fstab.entries {
        if config.fstypes.contains(&entry.fstype) && !entry.is_noauto() {
            expected.insert(
                entry.mountpoint.clone(),
                Expected {
                    source: entry.source.clone(),
                    fstype: entry.fstype.clone(),
                    options: entry.options.clone(),
                    origin: ExpectedOrigin::Fstab,
                },
            );
        }
    }
    // The configuration wins over fstab for the same path: it is the more
    // deliberate statement.
    for entry in &config.expected {
        expected.insert(
            entry.mountpoint.clone(),
            Expected {
                source: entry.source.clone(),
                fstype: entry.fstype.clone(),
                options: entry.options.clone(),
                origin: ExpectedOrigin::Config,
            },
        );
    }
    expected
}

fn analyse(
    ctx: &Context,
    table: &MountTable,
    expected: &BTreeMap<String, Expected>,
) -> Vec<MountPoint> {
    let watched = |entry: &MountEntry| ctx.config.mounts.fstypes.contains(&entry.fstype);
    let index = stack::TableIndex::new(&table.entries);
    let mut paths: BTreeSet<&str> = expected.keys().map(String::as_str).collect();
    let with_watched: BTreeSet<&str> = table
        .entries
        .iter()
        .filter(|e| watched(e))
        .map(|e| e.mount_point.as_str())
        .collect();
    paths.extend(&with_watched);
    let disk_ids = devices::DiskIds::read(&ctx.paths);

    let mut mounts = Vec::new();
    for path in paths {
        let layers = index.layers(path);
        let shape = stack::shape(&layers);
        let top = layers.iter().find(|e| watched(e)).map(|e| (*e).clone());
        if top.is_none() && !expected.contains_key(path) {
            // A watched filesystem hidden under another path's chain only.
            continue;
        }
        let (uuid, label) = top
            .as_ref()
            .map(|e| disk_ids.lookup(&ctx.paths, &e.source, (e.major, e.minor)))
            .unwrap_or_default();
        let expected = expected.get(path).cloned();
        let deleted = path.ends_with(DELETED_SUFFIX);
        mounts.push(MountPoint {
            mountpoint: path
                .strip_suffix(DELETED_SUFFIX)
                .unwrap_or(path)
                .to_string(),
            stacked: shape.layers,
            duplicate_layers: shape.duplicates,
            shadowed: shape.shadowed,
            top_id: layers.first().map(|e| e.id),
            shared: layers.first().is_some_and(|e| e.shared_group().is_some()),
            last_uuid: uuid.clone(),
            uuid,
            label,
            readonly: top.as_ref().is_some_and(MountEntry::is_readonly),
            error_readonly: top.as_ref().is_some_and(MountEntry::is_error_readonly),
            device_missing: top
                .as_ref()
                .is_some_and(|e| devices::source_missing(&ctx.paths, &e.source)),
            mountpoint_deleted: deleted,
            unstable_device_name: expected
                .as_ref()
                .map(|e| devices::is_unstable_device_name(&e.source)),
            expected,
            top,
            probe: ProbeView::default(),
            detailed: true,
        });
    }
    mounts
}

/// Probes every mounted filesystem at once and waits for them together, at
/// most half an interval: a probe still running then is looked at again next
/// tick, and reported stuck once past `mounts.probe_timeout`. One probe per
/// device, not per path: bind copies share one superblock, so one statfs says
/// whether it hangs, and a table with thousands of binds of a few volumes
/// costs a few threads.
fn probe_all(ctx: &Context, mounts: &mut [MountPoint], previous: Option<&MountFacts>) {
    let deadline = ctx.config.mounts.probe_timeout;
    let wait = deadline.min(ctx.config.sampler.interval / 2);
    let started = Instant::now();
    let probes = &ctx.mount_probes;
    let mut targets: BTreeMap<String, String> = BTreeMap::new();
    for mount in mounts
        .iter()
        .filter(|m| !m.shadowed && !m.mountpoint_deleted)
    {
        if let Some(key) = probe_key(mount) {
            targets
                .entry(key)
                .or_insert_with(|| mount.mountpoint.clone());
        }
    }
    for (key, mountpoint) in &targets {
        let path = ctx.paths.root(mountpoint);
        if !probes.start(key, deadline, move || stat_probe(path)) {
            tracing::warn!(mountpoint = %mountpoint, "No probe thread available; mount not probed.");
        }
    }
    let mut results: HashMap<String, ProbeState<ProbeOutcome>> = targets
        .keys()
        .map(|key| {
            (
                key.clone(),
                probes.wait(key, crate::input::saturating_instant(started, wait)),
            )
        })
        .collect();
    let earlier: HashMap<&str, &ProbeView> = previous
        .map(|p| {
            p.mounts
                .iter()
                .map(|m| (m.mountpoint.as_str(), &m.probe))
                .collect()
        })
        .unwrap_or_default();
    for mount in mounts.iter_mut() {
        let Some(key) = probe_key(mount) else {
            continue;
        };
        let earlier = earlier
            .get(mount.mountpoint.as_str())
            .map(|v| (*v).clone())
            .unwrap_or_default();
        mount.probe = match results.get_mut(&key) {
            Some(ProbeState::Done { value, elapsed }) => view_of(mount, value, *elapsed),
            Some(ProbeState::Pending { .. }) => ProbeView {
                stuck: false,
                ..earlier
            },
            Some(ProbeState::Stuck { elapsed }) => ProbeView {
                stuck: true,
                reachable: false,
                size_bytes: None,
                avail_bytes: None,
                duration_seconds: Some(elapsed.as_secs_f64()),
                error: Some(format!(
                    "no answer after {}",
                    humantime::format_duration(Duration::from_millis(elapsed.as_millis() as u64))
                )),
            },
            Some(ProbeState::Panicked) => ProbeView {
                error: Some("probe panicked".into()),
                ..ProbeView::default()
            },
            // Shadowed or deleted paths, and probes that found no thread.
            Some(ProbeState::NoCapacity | ProbeState::Idle) | None => ProbeView {
                error: Some("not probed".into()),
                ..earlier
            },
        };
    }
    probes.retain_keys(&|key| targets.contains_key(key));
}

/// The filesystem a path shows: its top watched layer's device and root.
fn probe_key(mount: &MountPoint) -> Option<String> {
    mount
        .top
        .as_ref()
        .map(|top| format!("{}:{}:{}", top.major, top.minor, top.root))
}

fn view_of(mount: &MountPoint, outcome: &ProbeOutcome, elapsed: Duration) -> ProbeView {
    // What path lookup sees is the top layer, which may be a shadow.
    let visible = mount
        .top
        .as_ref()
        .map(|top| (top.major, top.minor))
        .filter(|_| !mount.shadowed);
    let reachable = outcome.error.is_none() && visible.is_some() && outcome.device == visible;
    ProbeView {
        stuck: false,
        reachable,
        size_bytes: reachable.then_some(outcome.size_bytes),
        avail_bytes: reachable.then_some(outcome.avail_bytes),
        duration_seconds: Some(elapsed.as_secs_f64()),
        error: outcome.error.clone().or_else(|| {
            (!reachable)
                .then(|| "path does not show the mounted filesystem in this namespace".to_string())
        }),
    }
}

/// Runs on a probe thread: both calls can block forever on a dead device.
fn stat_probe(path: PathBuf) -> ProbeOutcome {
    let device = match std::fs::metadata(&path) {
        Ok(meta) => crate::host::device_numbers(meta.dev()),
        Err(e) => {
            return ProbeOutcome {
                device: None,
                size_bytes: 0.0,
                avail_bytes: 0.0,
                error: Some(format!("stat: {e}")),
            }
        }
    };
    match nix::sys::statvfs::statvfs(&path) {
        Ok(vfs) => {
            let unit = vfs.fragment_size() as f64;
            ProbeOutcome {
                device,
                size_bytes: vfs.blocks() as f64 * unit,
                avail_bytes: vfs.blocks_available() as f64 * unit,
                error: None,
            }
        }
        Err(e) => ProbeOutcome {
            device,
            size_bytes: 0.0,
            avail_bytes: 0.0,
            error: Some(format!("statvfs: {e}")),
        },
    }
}
