//! Which block device carries an OCFS2 volume, from the devices themselves.
//!
//! udev's `/dev/disk/by-uuid` link names one device per UUID (the last one
//! probed wins), hosts and containers without udev have no links at all, and
//! a kernel name (`/dev/sdb`) can be another volume of the same cluster after
//! an iSCSI re-login or a reboot. So before mounting, every block device in
//! `/sys/class/block` has its superblock read (O_DIRECT,
//! `collector::mounts::superblock`), each on a deadline probe in parallel, and
//! the volume is looked for among them: by UUID, by label, or as the device a
//! path names. A multipath member path shows the same superblock as its map;
//! members whose holder carries the same volume are dropped, so the map is
//! what is mounted. Anything left ambiguous refuses: two devices with one
//! UUID (a cloned LUN or snapshot), a device that does not answer (it might
//! be the second copy), a path that shows another volume than expected.
//! Used by `remount` (and the leaked-heartbeat check, for mounted devices).

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::HostActions;
use crate::collector::mounts::superblock::{read_identity, VolumeIdentity};
use crate::collector::mounts::{is_unstable_device_name, normalize_uuid};
use crate::collector::storage::sysfs::list_dir;
use crate::collector::storage::topology::block_name;
use crate::collector::CollectError;
use crate::host::resolve_in_root;
use crate::probe::{ProbePool, ProbeState, Prober};

/// What one superblock read gave.
type ReadOutcome = Result<Option<VolumeIdentity>, CollectError>;

/// Why no single device can be named as the volume's.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "no superblock read from {} within {}; cannot rule out a second copy of the volume",
        .unanswered.join(", "),
        humantime::format_duration(*.deadline)
    )]
    Unanswered {
        unanswered: Vec<String>,
        deadline: Duration,
    },
    #[error("source {0} is neither UUID=, LABEL= nor a device path")]
    UnknownSource(String),
    #[error("cannot resolve {source_name}: {error}")]
    Unresolved {
        source_name: String,
        error: std::io::Error,
    },
    #[error("{source_name} resolves to {}, not a device", resolved.display())]
    NotADevice {
        source_name: String,
        resolved: std::path::PathBuf,
    },
    #[error(
        "source {0} is a kernel name that can name another volume after a re-login or \
         reboot; use UUID= or LABEL= ([mounts] allow_kernel_names = true accepts it)"
    )]
    KernelName(String),
    #[error("source {0} is a kernel name and no UUID is known to check it against")]
    KernelNameUnchecked(String),
    #[error("no device carries an OCFS2 volume labelled {0:?}")]
    NoLabel(String),
    #[error("{} volumes are labelled {label:?} ({volumes}); refusing to guess", .count)]
    LabelAmbiguous {
        label: String,
        count: usize,
        volumes: String,
    },
    #[error(
        "{source_name} ({name}) is a loop device, left out of the device scan \
         ([remediation] identity_include_loop = true reads loop devices)"
    )]
    LoopDevice { source_name: String, name: String },
    #[error("{source_name} ({name}) carries no OCFS2 superblock")]
    NoSuperblock { source_name: String, name: String },
    #[error(
        "{source_name} is volume {uuid}, expected {expected}; refusing to mount another volume"
    )]
    OtherVolume {
        source_name: String,
        uuid: String,
        expected: String,
    },
    #[error("no device carries volume {0}")]
    NoCarrier(String),
    #[error(
        "volume {uuid} is on {} devices ({}): a cloned LUN or snapshot; refusing to guess",
        .devices.len(),
        .devices.join(", ")
    )]
    Cloned { uuid: String, devices: Vec<String> },
    #[error(
        "{source_name} ({name}) is a path of /dev/{map} which carries the same volume; mount the \
         multipath map, not one of its paths"
    )]
    MemberPath {
        source_name: String,
        name: String,
        map: String,
    },
}

/// Superblock reads that may still hang keep their thread across actions:
/// one per device, never a second while the first blocks.
const MAX_READ_THREADS: usize = 64;
/// Devices read at once by one scan.
const BATCH: usize = 32;

fn reads() -> &'static Prober<ReadOutcome> {
    static READS: OnceLock<Prober<ReadOutcome>> = OnceLock::new();
    READS.get_or_init(|| Prober::new("superblock", ProbePool::new(MAX_READ_THREADS)))
}

/// One block device that carries an OCFS2 volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carrier {
    /// Kernel name (`sdb`, `dm-0`).
    pub name: String,
    pub identity: VolumeIdentity,
    /// Devices stacked on this one (`holders/`): a multipath map over a path.
    pub holders: Vec<String>,
}

/// How long the reads of one scan may take together.
pub fn scan_deadline(host: &HostActions) -> Duration {
    host.timeout.min(Duration::from_secs(10))
}

/// Reads the superblock of every non-empty block device (loop devices only
/// when `[remediation] identity_include_loop` is on). `Err` when some
/// device did not answer in time: its volume is unknown, so nothing can be
/// said about which devices carry a UUID.
pub fn scan(host: &HostActions) -> Result<Vec<Carrier>, IdentityError> {
    let class = host.paths.sys("class/block");
    let names: Vec<String> = list_dir(&class)
        .into_iter()
        .filter(|name| host.identity_include_loop || !is_loop(&class, name))
        .collect();
    scan_names(host, &names)
}

/// A loop device or one of its partitions: a file anyone with the right to
/// set up loop devices filled, not a disk. Kernel names are `loopN` and
/// `loopNpM`; a bound device also has a `loop/` directory in sysfs.
fn is_loop(class: &Path, name: &str) -> bool {
    name.strip_prefix("loop")
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| c.is_ascii_digit())
        || class.join(name).join("loop").is_dir()
}

/// Reads the superblocks of the named devices (kernel names), `BATCH` at a
/// time so a SAN host with hundreds of paths stays within the thread pool;
/// all batches share one deadline.
pub fn scan_names(host: &HostActions, names: &[String]) -> Result<Vec<Carrier>, IdentityError> {
    let class = host.paths.sys("class/block");
    let deadline = scan_deadline(host);
    let until = crate::input::deadline(deadline);
    let prober = reads();
    let mut carriers = Vec::new();
    let mut unanswered = Vec::new();
    for batch in names.chunks(BATCH) {
        let mut started = Vec::new();
        for name in batch {
            let size = std::fs::read_to_string(class.join(name).join("size")).unwrap_or_default();
            if size.trim() == "0" {
                continue; // an unbound loop device, an empty drive
            }
            let device = host.paths.root(Path::new("/dev").join(name));
            let key = device.to_string_lossy().into_owned();
            // A result left over from an earlier scan that stopped waiting
            // is stale: take it out of the way so this scan reads afresh.
            let _ = prober.wait(&key, Instant::now());
            let reader = move || read_identity(&device);
            if prober.start(&key, deadline, reader) {
                started.push((name.clone(), key));
            } else {
                unanswered.push(format!("/dev/{name} (no probe thread free)"));
            }
        }
        for (name, key) in started {
            match prober.wait(&key, until) {
                ProbeState::Done {
                    value: Ok(Some(identity)),
                    ..
                } => carriers.push(Carrier {
                    holders: list_dir(&class.join(&name).join("holders")),
                    name,
                    identity,
                }),
                // No OCFS2 volume, or a device that cannot be read at all (no
                // node under /dev, no medium, I/O error): mount.ocfs2 could
                // not use it either.
                ProbeState::Done { value, .. } => {
                    if let Err(e) = value {
                        tracing::debug!(device = %name, error = %e, "Superblock not readable; device skipped.");
                    }
                }
                ProbeState::Panicked => unanswered.push(format!("/dev/{name} (read panicked)")),
                _ => unanswered.push(format!("/dev/{name}")),
            }
        }
    }
    if unanswered.is_empty() {
        Ok(carriers)
    } else {
        Err(IdentityError::Unanswered {
            unanswered,
            deadline,
        })
    }
}

/// The devices that carry `uuid`, without member paths whose holder (the
/// multipath map) carries it too.
pub fn carriers_of<'a>(found: &'a [Carrier], uuid: &str) -> Vec<&'a Carrier> {
    let matching: Vec<&Carrier> = found.iter().filter(|c| c.identity.uuid == uuid).collect();
    matching
        .iter()
        .filter(|c| {
            !c.holders
                .iter()
                .any(|h| matching.iter().any(|m| &m.name == h))
        })
        .copied()
        .collect()
}

/// What the configured source says about the volume it wants.
enum Wanted {
    Uuid(String),
    Label(String),
    /// A device path; the kernel name it resolves to.
    Device {
        source: String,
        name: String,
    },
}

fn wanted(host: &HostActions, source: &str) -> Result<Wanted, IdentityError> {
    if let Some(uuid) = source.strip_prefix("UUID=") {
        return Ok(Wanted::Uuid(normalize_uuid(uuid.trim_matches('"'))));
    }
    if let Some(label) = source.strip_prefix("LABEL=") {
        return Ok(Wanted::Label(label.trim_matches('"').to_string()));
    }
    if !source.starts_with("/dev/") {
        return Err(IdentityError::UnknownSource(source.to_string()));
    }
    let resolved = resolve_in_root(&host.paths, Path::new(source)).map_err(|error| {
        IdentityError::Unresolved {
            source_name: source.to_string(),
            error,
        }
    })?;
    // Without udev, dmsetup makes /dev/mapper/<map> a device node, not a
    // link: a node is named by its number, as the kernel knows it.
    if let Some((major, minor)) = std::fs::metadata(host.paths.root(&resolved))
        .ok()
        .filter(|m| m.file_type().is_block_device())
        .and_then(|m| crate::host::device_numbers(m.rdev()))
    {
        if let Some(name) = block_name(&host.paths, &resolved.to_string_lossy(), major, minor) {
            return Ok(Wanted::Device {
                source: source.to_string(),
                name,
            });
        }
    }
    let name = resolved
        .strip_prefix("/dev")
        .ok()
        .and_then(|rest| rest.to_str())
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
        .ok_or_else(|| IdentityError::NotADevice {
            source_name: source.to_string(),
            resolved: resolved.clone(),
        })?;
    Ok(Wanted::Device {
        source: source.to_string(),
        name: name.to_string(),
    })
}

/// The one device (kernel name) that carries the volume `source` names and,
/// when known, the UUID `expected` (o2cb form), or why there is none.
pub fn locate(
    host: &HostActions,
    source: &str,
    expected: Option<&str>,
    allow_kernel_names: bool,
) -> Result<Carrier, IdentityError> {
    if is_unstable_device_name(source) {
        if !allow_kernel_names {
            return Err(IdentityError::KernelName(source.to_string()));
        }
        if expected.is_none() {
            return Err(IdentityError::KernelNameUnchecked(source.to_string()));
        }
    }
    let wanted = wanted(host, source)?;
    let found = scan(host)?;
    let uuid = match &wanted {
        Wanted::Uuid(uuid) => uuid.clone(),
        Wanted::Label(label) => {
            let uuids: BTreeMap<&str, Vec<&str>> = found
                .iter()
                .filter(|c| &c.identity.label == label)
                .fold(BTreeMap::new(), |mut by_uuid, c| {
                    by_uuid
                        .entry(c.identity.uuid.as_str())
                        .or_default()
                        .push(c.name.as_str());
                    by_uuid
                });
            match uuids.len() {
                0 => return Err(IdentityError::NoLabel(label.clone())),
                1 => uuids
                    .keys()
                    .next()
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                _ => {
                    return Err(IdentityError::LabelAmbiguous {
                        label: label.clone(),
                        count: uuids.len(),
                        volumes: describe_uuids(&uuids),
                    })
                }
            }
        }
        Wanted::Device { source, name } => match found.iter().find(|c| &c.name == name) {
            Some(carrier) => carrier.identity.uuid.clone(),
            None if !host.identity_include_loop
                && is_loop(&host.paths.sys("class/block"), name) =>
            {
                return Err(IdentityError::LoopDevice {
                    source_name: source.clone(),
                    name: name.clone(),
                })
            }
            None => {
                return Err(IdentityError::NoSuperblock {
                    source_name: source.clone(),
                    name: name.clone(),
                })
            }
        },
    };
    if let Some(expected) = expected {
        if expected != uuid {
            return Err(IdentityError::OtherVolume {
                source_name: source.to_string(),
                uuid,
                expected: expected.to_string(),
            });
        }
    }
    let carriers = carriers_of(&found, &uuid);
    let chosen = match carriers.as_slice() {
        [one] => (*one).clone(),
        [] => return Err(IdentityError::NoCarrier(uuid)),
        many => {
            return Err(IdentityError::Cloned {
                uuid,
                devices: many.iter().map(|c| format!("/dev/{}", c.name)).collect(),
            })
        }
    };
    if let Wanted::Device { source, name } = &wanted {
        if &chosen.name != name {
            return Err(IdentityError::MemberPath {
                source_name: source.clone(),
                name: name.clone(),
                map: chosen.name,
            });
        }
    }
    Ok(chosen)
}

fn describe_uuids(uuids: &BTreeMap<&str, Vec<&str>>) -> String {
    uuids
        .iter()
        .map(|(uuid, names)| format!("{uuid} on {}", names.join(" ")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carrier(name: &str, uuid: &str, holders: &[&str]) -> Carrier {
        Carrier {
            name: name.into(),
            identity: VolumeIdentity {
                uuid: uuid.into(),
                label: String::new(),
                block_size: 4096,
            },
            holders: holders.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn the_multipath_map_wins_over_its_paths_but_a_clone_is_ambiguous() {
        let found = [
            carrier("sdb", "AA", &["dm-0"]),
            carrier("sdc", "AA", &["dm-0"]),
            carrier("dm-0", "AA", &[]),
            carrier("sdd", "BB", &[]),
        ];
        let names = |c: Vec<&Carrier>| c.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(carriers_of(&found, "AA")), ["dm-0"]);
        assert_eq!(names(carriers_of(&found, "BB")), ["sdd"]);
        assert!(carriers_of(&found, "CC").is_empty());
        // A cloned LUN outside multipath: two carriers.
        let cloned = [carrier("sdb", "AA", &[]), carrier("sde", "AA", &[])];
        assert_eq!(names(carriers_of(&cloned, "AA")), ["sdb", "sde"]);
    }

    #[test]
    fn loop_devices_are_known_by_name_or_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("weird/loop")).unwrap();
        std::fs::create_dir_all(dir.path().join("sdb")).unwrap();
        assert!(is_loop(dir.path(), "loop0"));
        assert!(is_loop(dir.path(), "loop12p1"));
        assert!(is_loop(dir.path(), "weird"));
        assert!(!is_loop(dir.path(), "sdb"));
        assert!(!is_loop(dir.path(), "loopy"));
        assert!(!is_loop(dir.path(), "dm-0"));
    }
}
