//! Who holds a volume, found by device number, never by path name.
//!
//! The o2cb restart (`o2cb.rs`) may only take a volume down when nothing but
//! the mounts it will put back uses it. A path-name comparison misses most
//! holders: processes in other mount namespaces (containers, services with
//! `PrivateTmp`) and binds elsewhere name the same files differently. So the
//! volume is its superblock's device number (`major:minor`, mountinfo field
//! 3, the `st_dev` of every inode on it), and a process holds it when:
//! - an open fd's `mnt_id` (`/proc/PID/fdinfo/N`) is a mount of that device
//!   (mount IDs are unique system-wide; every namespace's mountinfo is read
//!   once, from the first process found in it);
//! - its cwd or root is on such a mount: the `/proc/PID/{cwd,root}` magic
//!   link is opened `O_PATH` (no filesystem call) and our own fdinfo for it
//!   names the `mnt_id`;
//! - a mapping's device (`/proc/PID/maps` field 4) is the volume's.
//!
//! A mount of the volume in another namespace holds it too, unless it is a
//! slave (`master:N`) of a peer group the restart unmounts (the unmount
//! propagates to it); so does a mount in the host namespace the restart does
//! not know about. Kernel holders (nfsd exports, loop devices, swap files)
//! are in `kernel_holders.rs`. Nothing here stats a file on the volume, so a
//! dead SAN cannot block the scan. `fuser`/`lsof` treat the same four kinds
//! (fd, cwd, root, mapping) as use.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::collector::mounts::mountinfo::{parse_mountinfo, MountEntry};
use crate::host::HostPaths;

/// A device number, `major:minor`.
pub type Device = (u32, u32);

/// What the scan is asked about.
#[derive(Debug, Clone, Default)]
pub struct HolderQuery {
    /// The volumes' device numbers.
    pub devices: BTreeSet<Device>,
    /// Host mount points the restart unmounts and restores itself.
    pub planned_mounts: BTreeSet<String>,
    /// systemd units the restart stops first: their processes (by cgroup)
    /// and namespaces are not holders.
    pub stopping_units: Vec<String>,
}

/// One user of the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The process, or `None` for a kernel holder.
    pub pid: Option<u32>,
    pub comm: String,
    /// What is held: `fd 3 /srv/data/f`, `cwd /x`, `mount /x in mnt:[…]`, …
    pub what: String,
}

impl Holder {
    pub fn describe(&self) -> String {
        match self.pid {
            Some(pid) => format!("pid {pid} ({}): {}", self.comm, self.what),
            None => format!("kernel: {}", self.what),
        }
    }
}

/// Every mount namespace's table, keyed by mount ID.
struct Mounts {
    by_id: HashMap<u32, MountEntry>,
    /// Namespace → (a process in it, its entries).
    namespaces: BTreeMap<String, (u32, Vec<MountEntry>)>,
}

impl Mounts {
    fn device(&self, mnt_id: u32) -> Option<Device> {
        self.by_id.get(&mnt_id).map(|e| (e.major, e.minor))
    }
}

fn pids(paths: &HostPaths) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(paths.proc("")) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids
}

fn namespace_of(paths: &HostPaths, pid: u32) -> Option<String> {
    std::fs::read_link(paths.proc(format!("{pid}/ns/mnt")))
        .ok()
        .map(|l| l.to_string_lossy().into_owned())
}

fn read_mounts(paths: &HostPaths, pids: &[u32]) -> Mounts {
    let mut mounts = Mounts {
        by_id: HashMap::new(),
        namespaces: BTreeMap::new(),
    };
    for &pid in pids {
        let Some(ns) = namespace_of(paths, pid) else {
            continue;
        };
        if mounts.namespaces.contains_key(&ns) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(paths.proc(format!("{pid}/mountinfo"))) else {
            continue;
        };
        let entries = parse_mountinfo(&text).entries;
        for entry in &entries {
            mounts.by_id.insert(entry.id, entry.clone());
        }
        mounts.namespaces.insert(ns, (pid, entries));
    }
    mounts
}

/// True when `path` is `mount` or below it (whole components).
pub fn is_under(path: &str, mount: &str) -> bool {
    let mount = mount.trim_end_matches('/');
    mount.is_empty()
        || path == mount
        || path
            .strip_prefix(mount)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The `mnt_id:` line of an fdinfo text.
pub fn parse_fdinfo_mnt_id(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Mappings in a `maps` text whose device (field 4, hex `major:minor`) is
/// one of `devices`: the mapped paths (or `[anon]` for a nameless one).
pub fn maps_on_devices(text: &str, devices: &BTreeSet<Device>) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(6, ' ');
            let device = fields.nth(3)?;
            let (major, minor) = device.split_once(':')?;
            let device = (
                u32::from_str_radix(major, 16).ok()?,
                u32::from_str_radix(minor, 16).ok()?,
            );
            let path = fields.nth(1).map(str::trim_start).unwrap_or_default();
            devices.contains(&device).then(|| {
                if path.is_empty() {
                    "[anon]".to_string()
                } else {
                    path.to_string()
                }
            })
        })
        .collect()
}

/// The systemd units a process's cgroup path names (`…/app.service`).
pub fn cgroup_units(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .flat_map(|path| path.split('/'))
        .filter(|part| part.contains('.') && !part.is_empty())
        .map(str::to_string)
        .collect()
}

/// The mount ID of what a `/proc/PID/{cwd,root,fd/N}` magic link points to,
/// without calling into its filesystem: `O_PATH` opens only the reference.
fn link_mnt_id(link: &Path) -> Option<u32> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(link)
        .ok()?;
    let fd = file.as_raw_fd();
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    parse_fdinfo_mnt_id(&text)
}

fn comm(paths: &HostPaths, pid: u32) -> String {
    std::fs::read_to_string(paths.proc(format!("{pid}/comm")))
        .map(|c| c.trim().to_string())
        .unwrap_or_default()
}

/// What one process holds on the volume, if anything (first finding).
fn process_holds(
    paths: &HostPaths,
    pid: u32,
    mounts: &Mounts,
    devices: &BTreeSet<Device>,
) -> Option<String> {
    let base = paths.proc(pid.to_string());
    let on_volume = |mnt_id: Option<u32>| {
        mnt_id
            .and_then(|id| mounts.device(id))
            .is_some_and(|d| devices.contains(&d))
    };
    let name = |p: &Path| {
        std::fs::read_link(p)
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    for link in ["cwd", "root"] {
        let path = base.join(link);
        if on_volume(link_mnt_id(&path)) {
            return Some(format!("{link} {}", name(&path)));
        }
    }
    if let Ok(fds) = std::fs::read_dir(base.join("fdinfo")) {
        for fd in fds.flatten() {
            let text = std::fs::read_to_string(fd.path()).unwrap_or_default();
            if on_volume(parse_fdinfo_mnt_id(&text)) {
                let fd = fd.file_name().to_string_lossy().into_owned();
                return Some(format!("fd {fd} {}", name(&base.join("fd").join(&fd))));
            }
        }
    }
    let maps = std::fs::read_to_string(base.join("maps")).unwrap_or_default();
    maps_on_devices(&maps, devices)
        .into_iter()
        .next()
        .map(|path| format!("mapping {path}"))
}

/// Every holder of the volume (processes, namespaces, the kernel), at most
/// `limit` of them. An empty answer is the only one that allows a change.
pub fn holders(paths: &HostPaths, query: &HolderQuery, limit: usize) -> Vec<Holder> {
    let pids = pids(paths);
    let mounts = read_mounts(paths, &pids);
    let own = std::process::id();
    let stopping = |pid: u32| {
        !query.stopping_units.is_empty()
            && cgroup_units(
                &std::fs::read_to_string(paths.proc(format!("{pid}/cgroup"))).unwrap_or_default(),
            )
            .iter()
            .any(|u| query.stopping_units.contains(u))
    };
    let mut found = Vec::new();
    for &pid in &pids {
        if found.len() >= limit {
            return found;
        }
        if pid == own || stopping(pid) {
            continue;
        }
        if let Some(what) = process_holds(paths, pid, &mounts, &query.devices) {
            found.push(Holder {
                pid: Some(pid),
                comm: comm(paths, pid),
                what,
            });
        }
    }
    found.extend(namespace_holders(paths, &mounts, query, &stopping));
    found.extend(super::kernel_holders::holders(paths, &query.devices));
    found.truncate(limit);
    found
}

/// Mounts of the volume the restart does not undo itself: in another
/// namespace, or in the host namespace at a path outside the plan, unless a
/// shared peer or a slave of a peer group being unmounted (the unmount
/// propagates to it).
fn namespace_holders(
    paths: &HostPaths,
    mounts: &Mounts,
    query: &HolderQuery,
    stopping: &dyn Fn(u32) -> bool,
) -> Vec<Holder> {
    let host_ns = namespace_of(paths, 1);
    let on_volume = |e: &&MountEntry| query.devices.contains(&(e.major, e.minor));
    let host_groups: BTreeSet<u32> = host_ns
        .as_ref()
        .and_then(|ns| mounts.namespaces.get(ns))
        .map(|(_, entries)| {
            entries
                .iter()
                .filter(on_volume)
                .filter(|e| query.planned_mounts.contains(&e.mount_point))
                .filter_map(MountEntry::shared_group)
                .collect()
        })
        .unwrap_or_default();
    let mut found = Vec::new();
    for (ns, (pid, entries)) in &mounts.namespaces {
        let is_host = host_ns.as_deref() == Some(ns.as_str());
        if !is_host && stopping(*pid) {
            continue;
        }
        for entry in entries.iter().filter(on_volume) {
            // An unmount propagates along the parent's propagation: to the
            // copy at the same place under every peer or slave of the parent.
            // A slave or shared copy of a planned mount is such a copy only
            // at the planned path itself or under a copy of the root (a pod's
            // `/host/<path>`), not a bind of it somewhere else (a pod's
            // hostPath volume at `/data`), which the unmount leaves in place.
            let in_group = |prefix: &str| {
                entry
                    .optional
                    .iter()
                    .filter_map(|t| t.strip_prefix(prefix)?.parse().ok())
                    .any(|group: u32| host_groups.contains(&group))
            };
            let at_a_planned_place = query.planned_mounts.iter().any(|planned| {
                entry.mount_point == *planned
                    || entry
                        .mount_point
                        .strip_suffix(planned.as_str())
                        .is_some_and(|root| !root.is_empty() && !root.ends_with('/'))
            });
            let propagated = (in_group("master:") || in_group("shared:")) && at_a_planned_place;
            let released =
                propagated || (is_host && query.planned_mounts.contains(&entry.mount_point));
            if !released {
                let place = if is_host {
                    "not in the restart plan".to_string()
                } else {
                    format!("in namespace {ns}")
                };
                found.push(Holder {
                    pid: Some(*pid),
                    comm: comm(paths, *pid),
                    what: format!("mount {} {place}", entry.mount_point),
                });
            }
        }
    }
    found
}

/// Mounts of any of `devices` left in any namespace (after the unmounts,
/// there must be none, or the stack cannot stop).
pub fn remaining_mounts(paths: &HostPaths, devices: &BTreeSet<Device>) -> Vec<String> {
    let mounts = read_mounts(paths, &pids(paths));
    mounts
        .namespaces
        .iter()
        .flat_map(|(ns, (_, entries))| {
            entries
                .iter()
                .filter(|e| devices.contains(&(e.major, e.minor)))
                .map(move |e| format!("{} in {ns}", e.mount_point))
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_match_respects_path_components() {
        assert!(is_under("/srv/data/file", "/srv/data"));
        assert!(is_under("/srv/data", "/srv/data/"));
        assert!(is_under("/etc", "/"));
        assert!(!is_under("/srv/database", "/srv/data"));
    }

    #[test]
    fn fdinfo_mnt_id_is_read() {
        let text = "pos:\t0\nflags:\t02100002\nmnt_id:\t29\nino:\t1234\n";
        assert_eq!(parse_fdinfo_mnt_id(text), Some(29));
        assert_eq!(parse_fdinfo_mnt_id("pos:\t0\n"), None);
        assert_eq!(parse_fdinfo_mnt_id("mnt_id:\tx\n"), None);
    }

    #[test]
    fn maps_are_matched_by_device() {
        let maps = concat!(
            "55d0c0a00000-55d0c0a02000 r--p 00000000 08:01 1234 /usr/bin/cat\n",
            "7f00 rw-p 00000000 00:00 0 \n",
            "7f01 r--p 00000000 fe:00 99 /srv/data/lib with space.so\n",
            "7f02 rw-s 00000000 fe:00 98\n",
            "garbage\n",
        );
        let devices = BTreeSet::from([(254, 0)]);
        assert_eq!(
            maps_on_devices(maps, &devices),
            vec!["/srv/data/lib with space.so", "[anon]"]
        );
        assert!(maps_on_devices(maps, &BTreeSet::from([(8, 2)])).is_empty());
    }

    #[test]
    fn cgroup_paths_name_units() {
        let text = "0::/system.slice/app.service\n";
        assert_eq!(cgroup_units(text), vec!["system.slice", "app.service"]);
        let v1 = "12:pids:/system.slice/db.service\n1:name=systemd:/user.slice/user-0.slice/session-3.scope\n";
        assert_eq!(
            cgroup_units(v1),
            vec![
                "system.slice",
                "db.service",
                "user.slice",
                "user-0.slice",
                "session-3.scope"
            ]
        );
    }

    #[test]
    fn a_child_working_in_a_tmpfs_is_found_by_device() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .current_dir(dir.path())
            .spawn()
            .unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        let dev = std::os::unix::fs::MetadataExt::dev(&meta);
        let device = (libc::major(dev), libc::minor(dev));
        let query = HolderQuery {
            devices: BTreeSet::from([device]),
            planned_mounts: BTreeSet::new(),
            stopping_units: Vec::new(),
        };
        let found = holders(&HostPaths::default(), &query, 1000);
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.iter().any(|h| h.pid == Some(child.id())), "{found:?}");
        assert!(found.iter().all(|h| h.pid != Some(std::process::id())));
    }
}
