//! The storage path under OCFS2: iSCSI sessions, SCSI disks, dm-multipath
//! maps, the chain from each watched mount down to its LUN, and the timeout
//! invariants between the o2cb heartbeat and that path.
//!
//! Two collectors: `iscsi` reads the iSCSI transport class (`iscsi.rs`);
//! `storage` reads SCSI disk state and counters (`scsi.rs`), multipath maps
//! and `dmsetup status` (`multipath.rs`), `/etc/multipath.conf`
//! (`mpconf.rs`), the mount table (the one the mounts collector keeps in
//! `Context::mount_table`) and the sysfs block tree (`topology.rs`), and o2cb
//! configfs timeouts (`timeouts.rs`). Host file formats are cited in each module.

mod families;
pub mod iscsi;
pub mod mpconf;
pub mod multipath;
pub mod scsi;
pub(crate) mod sysfs;
pub mod timeouts;
pub mod topology;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::mounts::mountinfo::MountEntry;
use super::{CollectError, Collector, Context};
use crate::collector::{Facts, Section};

pub struct Iscsi;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IscsiFacts {
    pub sessions: Vec<iscsi::Session>,
}

impl Collector for Iscsi {
    fn name(&self) -> &'static str {
        "iscsi"
    }

    fn collect(&self, ctx: &Context, _previous: Option<&Section>) -> Result<Section, CollectError> {
        if let Some(reason) = iscsi::absent_reason(&ctx.paths) {
            return Ok(Section {
                absent: Some(reason),
                ..Section::default()
            });
        }
        let facts = IscsiFacts {
            sessions: iscsi::read_sessions(&ctx.paths),
        };
        Ok(Section {
            families: families::iscsi(&facts),
            facts: Facts::Iscsi(Arc::new(facts)),
            absent: None,
        })
    }
}

pub struct Storage;

/// One path (disk) of a multipath map and whether dm (or its SCSI state) says
/// it is usable; `None` when neither is known.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapView {
    pub map: multipath::Map,
    pub paths: Vec<(String, Option<bool>)>,
    pub queueing: Option<bool>,
    pub stall_seconds: f64,
}

/// One watched mount and everything under it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MountPath {
    pub mountpoint: String,
    pub device: String,
    pub uuid: String,
    /// Kernel name of the mounted device, empty when unresolved.
    pub top: String,
    pub maps: Vec<String>,
    pub disks: Vec<String>,
    pub stall_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StorageFacts {
    pub disks: Vec<scsi::Disk>,
    pub maps: Vec<MapView>,
    pub mounts: Vec<MountPath>,
    /// `sdX` → (session name, target).
    pub sessions_by_disk: BTreeMap<String, (String, String)>,
    pub wwid_by_disk: BTreeMap<String, String>,
    pub dmsetup_skipped: Option<multipath::DmsetupSkip>,
    pub multipath_conf_invalid_values: usize,
    pub o2cb: Option<timeouts::O2cbTimeouts>,
    pub invariants: Vec<timeouts::Invariant>,
}

const DMSETUP_TIMEOUT: Duration = Duration::from_secs(5);

impl Collector for Storage {
    fn name(&self) -> &'static str {
        "storage"
    }

    fn collect(&self, ctx: &Context, previous: Option<&Section>) -> Result<Section, CollectError> {
        let previous = previous.and_then(|p| match &p.facts {
            Facts::Storage(facts) => Some(facts.as_ref()),
            _ => None,
        });
        let paths = &ctx.paths;
        let sessions = match iscsi::absent_reason(paths) {
            None => iscsi::read_sessions(paths),
            Some(_) => Vec::new(),
        };
        let ids = topology::Identities::read(paths);
        let mut mounts = watched_mounts(ctx, &ids);
        let raw_maps = multipath::read_maps(paths);

        let mut sessions_by_disk = BTreeMap::new();
        for session in &sessions {
            for disk in &session.disks {
                sessions_by_disk.insert(
                    disk.clone(),
                    (session.name.clone(), session.target_label().to_string()),
                );
            }
        }
        let mut wanted: BTreeSet<String> = sessions_by_disk.keys().cloned().collect();
        wanted.extend(mounts.iter().flat_map(|m| m.disks.iter().cloned()));
        wanted.extend(
            raw_maps
                .iter()
                .flat_map(|m| m.slaves.iter().map(|s| s.0.clone())),
        );
        let disks: Vec<scsi::Disk> = wanted
            .iter()
            .map(|name| {
                let before = previous.and_then(|p| p.disks.iter().find(|d| &d.name == name));
                scsi::read_disk(paths, name, before)
            })
            .collect();

        let (statuses, dmsetup_skipped) = if raw_maps.is_empty() {
            (Vec::new(), None)
        } else {
            let timeout = DMSETUP_TIMEOUT.min(ctx.config.sampler.collector_timeout / 2);
            match multipath::dmsetup_status(paths, timeout) {
                Ok(text) => {
                    let mut statuses = multipath::parse_dmsetup_status(&text);
                    // Without the table the status's own queue_io field stands.
                    if let Ok(table) = multipath::dmsetup_table(paths, timeout) {
                        multipath::mark_queueing_without_path(&mut statuses, &table);
                    }
                    (statuses, None)
                }
                Err(skip) => {
                    if previous.map(|p| p.dmsetup_skipped) != Some(Some(skip)) {
                        tracing::info!(
                            reason = skip.as_str(),
                            "Multipath path states come from SCSI device states, not dmsetup."
                        );
                    }
                    (Vec::new(), Some(skip))
                }
            }
        };
        let conf_path = paths.root("/etc/multipath.conf");
        let conf = match super::read_optional(&conf_path) {
            Ok(text) => text
                .map(|t| mpconf::parse_multipath_conf(&t))
                .unwrap_or_default(),
            Err(e) => {
                tracing::warn!(file = %conf_path.display(), error = %e, "Cannot read multipath.conf; using multipath defaults.");
                mpconf::MultipathConf::default()
            }
        };
        let maps: Vec<MapView> = raw_maps
            .into_iter()
            .map(|map| map_view(paths, map, &statuses, &disks, &conf))
            .collect();

        let mut wwid_by_disk = BTreeMap::new();
        for disk in &wanted {
            let from_map = maps
                .iter()
                .find(|m| m.map.slaves.iter().any(|s| &s.0 == disk))
                .map(|m| m.map.wwid.clone());
            if let Some(wwid) = ids.wwid_by_device.get(disk).cloned().or(from_map) {
                wwid_by_disk.insert(disk.clone(), wwid);
            }
        }
        for mount in &mut mounts {
            mount.stall_seconds = mount_stall(mount, &maps, &sessions);
        }
        let storage_stall = longest_stall(&mounts, &maps, &sessions);
        // A configfs error is the o2cb collector's to report; here it only
        // means the invariants cannot be checked.
        let o2cb = crate::collector::configfs::read_cluster(paths)
            .ok()
            .flatten()
            .map(|cluster| timeouts::O2cbTimeouts::from(&cluster));
        let invariants = o2cb
            .as_ref()
            .map(|t| timeouts::invariants(t, storage_stall))
            .unwrap_or_default();

        let facts = StorageFacts {
            disks,
            maps,
            mounts,
            sessions_by_disk,
            wwid_by_disk,
            dmsetup_skipped,
            multipath_conf_invalid_values: conf.invalid_values,
            o2cb,
            invariants,
        };
        let absent = (facts.disks.is_empty()
            && facts.maps.is_empty()
            && facts.mounts.iter().all(|m| m.disks.is_empty())
            && facts.o2cb.is_none())
        .then(|| "no SCSI disks, multipath maps, watched mounts or o2cb cluster".to_string());
        Ok(Section {
            families: families::storage(&facts),
            facts: Facts::Storage(Arc::new(facts)),
            absent,
        })
    }
}

fn map_view(
    paths: &crate::host::HostPaths,
    map: multipath::Map,
    statuses: &[multipath::MapStatus],
    disks: &[scsi::Disk],
    conf: &mpconf::MultipathConf,
) -> MapView {
    let status = statuses.iter().find(|s| s.name == map.name);
    let path_states = map
        .slaves
        .iter()
        .map(|(slave, number)| {
            let from_dm = status
                .and_then(|s| s.paths.iter().find(|p| &p.device == number))
                .map(|p| p.active);
            let from_scsi = disks
                .iter()
                .find(|d| &d.name == slave)
                .and_then(scsi::Disk::is_running);
            (slave.clone(), from_dm.or(from_scsi))
        })
        .collect();
    let (vendor, product) = map
        .slaves
        .first()
        .map(|(slave, _)| {
            let device = paths.sys("class/block").join(slave).join("device");
            (
                sysfs::attr(&device, "vendor").unwrap_or_default(),
                sysfs::attr(&device, "model").unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    MapView {
        stall_seconds: conf.effective(&map.wwid, &vendor, &product).stall_seconds(),
        queueing: status.map(|s| s.queueing),
        paths: path_states,
        map,
    }
}

/// How long I/O to this mount can hang before it fails: the multipath queue
/// time when it sits on a map, else the iSCSI recovery timeout of its sessions.
fn mount_stall(mount: &MountPath, maps: &[MapView], sessions: &[iscsi::Session]) -> Option<f64> {
    let map_stalls = maps
        .iter()
        .filter(|m| mount.maps.contains(&m.map.dm))
        .map(|m| m.stall_seconds);
    if let Some(stall) = max(map_stalls) {
        return Some(stall);
    }
    max(sessions
        .iter()
        .filter(|s| s.disks.iter().any(|d| mount.disks.contains(d)))
        .filter_map(|s| s.recovery_tmo_seconds))
}

/// The stall the heartbeat must outlast: over the watched mounts when any
/// resolves, else over every map, else over every session.
fn longest_stall(
    mounts: &[MountPath],
    maps: &[MapView],
    sessions: &[iscsi::Session],
) -> Option<f64> {
    max(mounts.iter().filter_map(|m| m.stall_seconds))
        .or_else(|| max(maps.iter().map(|m| m.stall_seconds)))
        .or_else(|| max(sessions.iter().filter_map(|s| s.recovery_tmo_seconds)))
}

fn max(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.fold(None, |acc, v| Some(acc.map_or(v, |a: f64| a.max(v))))
}

/// Watched mounts (topmost layer per mount point) resolved down to disks,
/// from the table the mounts collector keeps (`Context::mount_table`, read
/// again only when the kernel reports a change). Each device is resolved
/// once. Paths matched by `mounts.mount_points_exclude` (pod binds) are left
/// out when their device is shown on another path, and one of them stands
/// for a device that has no other: the storage path of a volume is the same
/// on every bind, and 2000 binds must not make 2000 series sets.
fn watched_mounts(ctx: &Context, ids: &topology::Identities) -> Vec<MountPath> {
    let read = match ctx.mount_table.current_watched(ctx) {
        Ok(read) => read,
        Err(error) => {
            tracing::warn!(error = %error, "Cannot read the mount table; storage paths of mounts not reported.");
            return Vec::new();
        }
    };
    // Later lines are mounted on top: the last one is what the path shows.
    let mut tops: BTreeMap<&str, &MountEntry> = BTreeMap::new();
    for entry in read
        .table
        .entries
        .iter()
        .filter(|e| ctx.config.mounts.fstypes.contains(&e.fstype))
    {
        tops.insert(entry.mount_point.as_str(), entry);
    }
    let excluded = |point: &str| {
        ctx.mount_points_exclude
            .as_ref()
            .is_some_and(|re| re.is_match(point))
    };
    let mut shown: HashSet<(u32, u32)> = tops
        .iter()
        .filter(|(point, _)| !excluded(point))
        .map(|(_, e)| (e.major, e.minor))
        .collect();
    let mut stacks: HashMap<(u32, u32), topology::Stack> = HashMap::new();
    let mut mounts = Vec::new();
    for (point, entry) in tops {
        let device = (entry.major, entry.minor);
        if excluded(point) && !shown.insert(device) {
            continue;
        }
        let stack = stacks
            .entry(device)
            .or_insert_with(|| {
                topology::block_name(&ctx.paths, &entry.source, entry.major, entry.minor)
                    .map(|name| topology::walk(&ctx.paths, &name))
                    .unwrap_or_default()
            })
            .clone();
        mounts.push(MountPath {
            mountpoint: point.to_string(),
            device: entry.source.clone(),
            uuid: ids
                .uuid_by_device
                .get(&stack.top)
                .cloned()
                .unwrap_or_default(),
            top: stack.top,
            maps: stack.maps,
            disks: stack.disks,
            stall_seconds: None,
        });
    }
    mounts
}

#[cfg(test)]
mod tests;
