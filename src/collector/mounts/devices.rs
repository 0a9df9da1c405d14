//! Device identity: which UUID and label a mounted device carries, whether
//! it still exists, and whether a configured name is a kernel name that can
//! differ from node to node.
//!
//! Reads the udev links `/dev/disk/by-uuid/*` and `/dev/disk/by-label/*`
//! under the root (udev's `60-persistent-storage.rules`; label names escape
//! unsafe bytes as `\xHH`). A link is matched to a mount by the device number
//! it points at when the node exists, and by the resolved path otherwise
//! (fixture trees hold no device nodes). Where udev made no links (minimal
//! hosts, containers without /dev/disk), an OCFS2 volume's UUID still comes
//! from configfs: each local heartbeat region is named by the volume UUID and
//! names its device (`heartbeat/<UUID>/dev`, docs/interfaces.md §1.4).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::host::{resolve_link_target, HostPaths};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskIds {
    by_path: HashMap<String, (String, String)>,
    by_number: HashMap<(u32, u32), (String, String)>,
}

impl DiskIds {
    pub fn read(paths: &HostPaths) -> Self {
        let mut ids = Self::default();
        for (dir, is_uuid) in [("/dev/disk/by-uuid", true), ("/dev/disk/by-label", false)] {
            let Ok(read_dir) = std::fs::read_dir(paths.root(dir)) else {
                continue;
            };
            for entry in read_dir.flatten() {
                let name = unescape_udev(&entry.file_name().to_string_lossy());
                let host_link = Path::new(dir).join(entry.file_name());
                let Ok(target) = std::fs::read_link(entry.path()) else {
                    continue;
                };
                let device = resolve_link_target(&host_link, &target)
                    .to_string_lossy()
                    .into_owned();
                let number = std::fs::metadata(entry.path())
                    .ok()
                    .filter(|m| m.rdev() != 0)
                    .and_then(|m| crate::host::device_numbers(m.rdev()));
                for slot in [ids.by_path.entry(device).or_default()]
                    .into_iter()
                    .chain(number.map(|n| ids.by_number.entry(n).or_default()))
                {
                    if is_uuid {
                        slot.0 = normalize_uuid(&name);
                    } else {
                        slot.1 = name.clone();
                    }
                }
            }
        }
        // Heartbeat regions name the device of every mounted OCFS2 volume.
        if let Ok(Some(cluster)) = crate::collector::configfs::read_cluster(paths) {
            for region in &cluster.regions {
                if let Some(device) = region.device_path() {
                    let slot = ids.by_path.entry(device).or_default();
                    if slot.0.is_empty() {
                        slot.0 = normalize_uuid(&region.uuid);
                    }
                }
            }
        }
        ids
    }

    /// (uuid, label) of the device mounted from `source` with number
    /// `major:minor`; empty strings when unknown.
    pub fn lookup(&self, paths: &HostPaths, source: &str, number: (u32, u32)) -> (String, String) {
        if let Some(found) = self.by_number.get(&number) {
            return found.clone();
        }
        if let Some(found) = self.by_path.get(source) {
            return found.clone();
        }
        // `/dev/mapper/x` is itself a link to `../dm-N`.
        if let Ok(target) = std::fs::read_link(paths.root(source)) {
            let resolved = resolve_link_target(Path::new(source), &target);
            if let Some(found) = self.by_path.get(resolved.to_string_lossy().as_ref()) {
                return found.clone();
            }
        }
        (String::new(), String::new())
    }
}

/// The volume UUID as o2cb writes it (heartbeat region and DLM domain names):
/// 32 uppercase hex digits without dashes, so `uuid` labels join across
/// collectors.
pub fn normalize_uuid(uuid: &str) -> String {
    uuid.chars()
        .filter(|c| *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

/// udev writes unsafe bytes of labels as `\xHH`.
fn unescape_udev(name: &str) -> String {
    let mut out = Vec::new();
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            if let Some(byte) = bytes
                .get(i + 2..i + 4)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A kernel device name (`/dev/sdb1`, `/dev/dm-3`, `/dev/vda`, `/dev/nvme0n1p2`):
/// assigned in probe order, so the same LUN can carry a different one on each
/// node and after each reboot. UUID=, LABEL=, `/dev/disk/by-*` and
/// `/dev/mapper/*` names are stable.
pub fn is_unstable_device_name(source: &str) -> bool {
    let Some(name) = source.strip_prefix("/dev/") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let disk_letters = |s: &str| {
        let letters = s.trim_end_matches(|c: char| c.is_ascii_digit());
        !letters.is_empty() && letters.bytes().all(|b| b.is_ascii_lowercase())
    };
    if let Some(rest) = name.strip_prefix("dm-") {
        return digits(rest);
    }
    if let Some(rest) = name.strip_prefix("loop") {
        return digits(rest);
    }
    if let Some(rest) = name.strip_prefix("nvme") {
        return rest.split(['n', 'p']).all(digits) && rest.contains('n');
    }
    ["sd", "vd", "xvd", "hd"]
        .iter()
        .any(|prefix| name.strip_prefix(prefix).is_some_and(disk_letters))
}

/// The mount's source is a device path that no longer exists on the host.
pub fn source_missing(paths: &HostPaths, source: &str) -> bool {
    source.starts_with("/dev/") && std::fs::symlink_metadata(paths.root(source)).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_are_unstable() {
        for name in [
            "/dev/sdb",
            "/dev/sdab12",
            "/dev/dm-3",
            "/dev/vda",
            "/dev/xvdf1",
            "/dev/nvme0n1",
            "/dev/nvme0n1p2",
            "/dev/loop7",
        ] {
            assert!(is_unstable_device_name(name), "{name}");
        }
        for name in [
            "UUID=dea93192-f087",
            "LABEL=data",
            "/dev/disk/by-id/wwn-0x5000",
            "/dev/mapper/mpatha",
            "/dev/disk/by-uuid/x",
            "tmpfs",
            "/dev/sd",
            "/dev/dm-x",
        ] {
            assert!(!is_unstable_device_name(name), "{name}");
        }
    }

    #[test]
    fn uuid_normalizes_to_the_o2cb_form() {
        assert_eq!(
            normalize_uuid("dea93192-f087-4f53-bb52-90b5205c6b64"),
            "DEA93192F0874F53BB5290B5205C6B64"
        );
    }

    #[test]
    fn label_escapes() {
        assert_eq!(unescape_udev(r"my\x20vol\x2fa"), "my vol/a");
        assert_eq!(unescape_udev(r"bad\xZZ"), r"bad\xZZ");
    }

    #[test]
    fn links_in_a_fixture_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("dev/disk/by-uuid")).unwrap();
        std::fs::create_dir_all(root.join("dev/disk/by-label")).unwrap();
        std::fs::create_dir_all(root.join("dev/mapper")).unwrap();
        std::os::unix::fs::symlink("../../dm-3", root.join("dev/disk/by-uuid/dea93192-f087"))
            .unwrap();
        std::os::unix::fs::symlink("../../dm-3", root.join("dev/disk/by-label/web\\x20vol"))
            .unwrap();
        std::os::unix::fs::symlink("../dm-3", root.join("dev/mapper/mpatha")).unwrap();
        let paths = HostPaths::new(root.to_path_buf(), None, None);
        let ids = DiskIds::read(&paths);
        let found = ids.lookup(&paths, "/dev/mapper/mpatha", (0, 0));
        assert_eq!(found, ("DEA93192F087".to_string(), "web vol".to_string()));
        assert_eq!(
            ids.lookup(&paths, "/dev/sdz", (0, 0)),
            (String::new(), String::new())
        );
        assert!(source_missing(&paths, "/dev/sdz"));
        assert!(!source_missing(&paths, "/dev/mapper/mpatha"));
        assert!(!source_missing(&paths, "tmpfs"));
    }

    #[test]
    fn ocfs2_uuid_from_configfs_without_udev() {
        let dir = tempfile::tempdir().unwrap();
        let region = dir
            .path()
            .join("sys/kernel/config/cluster/labclu/heartbeat/DEA93192F0874F53BB5290B5205C6B64");
        std::fs::create_dir_all(&region).unwrap();
        std::fs::write(region.join("dev"), "vda\n").unwrap();
        std::fs::create_dir_all(dir.path().join("sys/kernel/config/cluster/labclu/node")).unwrap();
        let paths = HostPaths::new(dir.path().to_path_buf(), None, None);
        let ids = DiskIds::read(&paths);
        assert_eq!(
            ids.lookup(&paths, "/dev/vda", (254, 0)),
            (
                "DEA93192F0874F53BB5290B5205C6B64".to_string(),
                String::new()
            )
        );
    }
}
