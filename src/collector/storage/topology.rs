//! From a mounted device down to the disks under it.
//!
//! A mount's `major:minor` (mountinfo field 3) names its block device through
//! `/sys/dev/block/<major>:<minor>`; when that link is missing the source path
//! is resolved instead (`/dev/mapper/x` → `../dm-3`, `/dev/sdb1`) to
//! `/sys/class/block/<name>`. From there: a partition (`partition` file)
//! goes to its parent disk, a device-mapper device to its `slaves/`, until
//! disks without slaves remain (block/genhd.c, drivers/md/dm-sysfs.c).
//! Stable identities come from udev links under the root:
//! `/dev/disk/by-uuid` (filesystem UUID) and `/dev/disk/by-id/scsi-*`,
//! `wwn-*` (LUN WWID, the form multipath uses), or the dm uuid.

use std::collections::BTreeMap;
use std::path::Path;

use super::sysfs::{attr, list_dir, real_dir};
use crate::host::{resolve_link_target, HostPaths};

/// What lies under one block device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stack {
    /// Kernel name of the device the source resolves to (`dm-1`, `sdb1`).
    pub top: String,
    /// Multipath maps met on the way down (kernel names, `dm-0`).
    pub maps: Vec<String>,
    /// Disks at the bottom (`sdb`).
    pub disks: Vec<String>,
}

/// The kernel name of a mount's block device.
pub fn block_name(paths: &HostPaths, source: &str, major: u32, minor: u32) -> Option<String> {
    let by_number = paths.sys(format!("dev/block/{major}:{minor}"));
    if let Some(name) = real_dir(&by_number).and_then(|d| file_name(&d)) {
        return Some(name);
    }
    let source = source.strip_prefix("/dev/")?;
    let host = Path::new("/dev").join(source);
    let resolved = match std::fs::read_link(paths.root(&host)) {
        Ok(target) => resolve_link_target(&host, &target),
        Err(_) => host,
    };
    let name = file_name(&resolved)?;
    paths
        .sys("class/block")
        .join(&name)
        .exists()
        .then_some(name)
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Walks partitions and dm slaves from `name` down to disks.
pub fn walk(paths: &HostPaths, name: &str) -> Stack {
    let mut stack = Stack {
        top: name.to_string(),
        ..Stack::default()
    };
    descend(paths, name, &mut stack, 0);
    stack.maps.dedup();
    stack.disks.sort();
    stack.disks.dedup();
    stack
}

fn descend(paths: &HostPaths, name: &str, stack: &mut Stack, depth: usize) {
    // dm stacks are shallow; the bound only guards against a looping tree.
    if depth > 16 {
        return;
    }
    let class = paths.sys("class/block").join(name);
    if class.join("partition").exists() {
        let parent = real_dir(&class).and_then(|d| d.parent().and_then(file_name));
        if let Some(parent) = parent {
            descend(paths, &parent, stack, depth + 1);
        }
        return;
    }
    let uuid = attr(&class.join("dm"), "uuid");
    if uuid.as_deref().is_some_and(|u| u.starts_with("mpath-")) {
        stack.maps.push(name.to_string());
    }
    let slaves = list_dir(&class.join("slaves"));
    if slaves.is_empty() {
        if uuid.is_none() {
            stack.disks.push(name.to_string());
        }
        return;
    }
    for slave in slaves {
        descend(paths, &slave, stack, depth + 1);
    }
}

/// udev links: kernel name → filesystem UUID (o2cb form) and → WWID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identities {
    pub uuid_by_device: BTreeMap<String, String>,
    pub wwid_by_device: BTreeMap<String, String>,
}

impl Identities {
    pub fn read(paths: &HostPaths) -> Self {
        let mut ids = Self::default();
        for (link, target) in links(paths, "/dev/disk/by-uuid") {
            ids.uuid_by_device
                .insert(target, crate::collector::mounts::normalize_uuid(&link));
        }
        // scsi-3… is the form multipath and scsi_id use; it wins over wwn-0x….
        for (link, target) in links(paths, "/dev/disk/by-id") {
            if let Some(wwid) = wwid_from_by_id(&link) {
                let scsi = link.starts_with("scsi-");
                if scsi || !ids.wwid_by_device.contains_key(&target) {
                    ids.wwid_by_device.insert(target, wwid);
                }
            }
        }
        ids
    }
}

/// `scsi-36001405…` → `36001405…`; `wwn-0x6001405…` → `36001405…` (NAA
/// designators carry the `3` prefix in scsi_id's form); partition links
/// (`-part1`) and other bus ids give nothing.
pub fn wwid_from_by_id(link: &str) -> Option<String> {
    if link.contains("-part") {
        return None;
    }
    if let Some(id) = link.strip_prefix("scsi-") {
        return (!id.is_empty()).then(|| id.to_string());
    }
    let hex = link.strip_prefix("wwn-0x")?;
    (!hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("3{hex}"))
}

/// (link name, kernel name it points at) for each link in a `/dev` dir.
fn links(paths: &HostPaths, dir: &str) -> Vec<(String, String)> {
    list_dir(&paths.root(dir))
        .into_iter()
        .filter_map(|link| {
            let host_link = Path::new(dir).join(&link);
            let target = std::fs::read_link(paths.root(&host_link)).ok()?;
            let name = file_name(&resolve_link_target(&host_link, &target))?;
            Some((link, name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_id_names() {
        for (link, expected) in [
            ("scsi-36001405abcdef", Some("36001405abcdef")),
            ("wwn-0x6001405abcdef", Some("36001405abcdef")),
            ("wwn-0x6001405abcdef-part1", None),
            ("scsi-36001405abcdef-part1", None),
            ("dm-uuid-mpath-36001405abcdef", None),
            ("wwn-0xnothex", None),
            ("scsi-", None),
        ] {
            assert_eq!(wwid_from_by_id(link).as_deref(), expected, "{link}");
        }
    }

    #[test]
    fn walks_partition_on_multipath() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        let mk = |p: &str| std::fs::create_dir_all(sys.join(p)).unwrap();
        let ln =
            |target: &str, link: &str| std::os::unix::fs::symlink(target, sys.join(link)).unwrap();
        mk("devices/virtual/block/dm-0/dm");
        mk("devices/virtual/block/dm-0/slaves");
        mk("devices/virtual/block/dm-1/dm");
        mk("devices/virtual/block/dm-1/slaves");
        mk("devices/disk/block/sdb");
        mk("devices/disk/block/sdc/sdc1");
        mk("class/block");
        mk("dev/block");
        std::fs::write(
            sys.join("devices/virtual/block/dm-0/dm/uuid"),
            "mpath-3600\n",
        )
        .unwrap();
        std::fs::write(
            sys.join("devices/virtual/block/dm-1/dm/uuid"),
            "part1-mpath-3600\n",
        )
        .unwrap();
        std::fs::write(sys.join("devices/disk/block/sdc/sdc1/partition"), "1\n").unwrap();
        ln("../../devices/virtual/block/dm-0", "class/block/dm-0");
        ln("../../devices/virtual/block/dm-1", "class/block/dm-1");
        ln("../../devices/disk/block/sdb", "class/block/sdb");
        ln("../../devices/disk/block/sdc", "class/block/sdc");
        ln("../../devices/disk/block/sdc/sdc1", "class/block/sdc1");
        ln(
            "../../../../devices/disk/block/sdb",
            "devices/virtual/block/dm-0/slaves/sdb",
        );
        ln(
            "../../../../devices/virtual/block/dm-0",
            "devices/virtual/block/dm-1/slaves/dm-0",
        );
        ln("../../devices/virtual/block/dm-1", "dev/block/253:1");
        let paths = HostPaths::new(dir.path().to_path_buf(), None, None);
        let name = block_name(&paths, "/dev/mapper/mpatha-part1", 253, 1).unwrap();
        assert_eq!(name, "dm-1");
        let stack = walk(&paths, &name);
        assert_eq!(stack.maps, ["dm-0"]);
        assert_eq!(stack.disks, ["sdb"]);
        assert_eq!(walk(&paths, "sdc1").disks, ["sdc"]);
        assert_eq!(
            block_name(&paths, "/dev/sdc1", 8, 33).as_deref(),
            Some("sdc1")
        );
        assert_eq!(block_name(&paths, "/dev/sdz", 8, 99), None);
        assert_eq!(block_name(&paths, "tmpfs", 0, 40), None);
    }
}
