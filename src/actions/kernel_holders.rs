//! Kernel holders of a volume, which no `/proc/PID` walk shows: an nfsd
//! export (`/proc/fs/nfsd/exports`), a loop device backed by a file on it,
//! a swap file on it (`/proc/swaps`). Part of the o2cb restart's holder
//! check (`openfiles.rs`); each keeps the filesystem busy, so an unmount
//! would fail (EBUSY) after services were already stopped.
//!
//! A loop device's backing file is identified by device number through
//! `LOOP_GET_STATUS64` (`lo_device` is the backing inode's `st_dev`), which
//! holds across mount namespaces; only when the device node cannot be opened
//! is its `backing_file` path matched against the host's mount table.
//! Export and swap paths are names in the host namespace and are matched the
//! same way (longest mount point prefix; nothing is stat'ed).

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;

use super::openfiles::{Device, Holder};
use crate::collector::mounts::mountinfo::{parse_mountinfo, unescape, MountEntry};
use crate::host::HostPaths;

/// `LOOP_GET_STATUS64` from linux/loop.h.
const LOOP_GET_STATUS64: libc::c_ulong = 0x4C05;

/// `struct loop_info64` from linux/loop.h.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// The device the loop device's backing file lives on.
fn loop_backing_device(node: &std::path::Path) -> Option<Device> {
    let file = std::fs::File::open(node).ok()?;
    // SAFETY: all-zero bytes are a valid LoopInfo64 (plain integers and arrays).
    let mut info: LoopInfo64 = unsafe { std::mem::zeroed() };
    // SAFETY: LOOP_GET_STATUS64 writes one struct loop_info64 to the pointer,
    // which points to a live value of exactly that layout.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            LOOP_GET_STATUS64 as _,
            &mut info as *mut LoopInfo64,
        )
    };
    (rc == 0).then(|| {
        let dev = info.lo_device as libc::dev_t;
        (libc::major(dev), libc::minor(dev))
    })
}

/// The device of the mount a host path is on: the longest mount point that
/// is a component prefix of `path`, the topmost (last) on ties.
pub fn device_of_path(entries: &[MountEntry], path: &str) -> Option<Device> {
    entries
        .iter()
        .filter(|e| super::openfiles::is_under(path, &e.mount_point))
        .fold(None::<&MountEntry>, |best, e| match best {
            Some(b) if b.mount_point.len() > e.mount_point.len() => Some(b),
            _ => Some(e),
        })
        .map(|e| (e.major, e.minor))
}

/// Paths of `/proc/fs/nfsd/exports` (first field, octal-escaped).
pub fn parse_exports(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .map(unescape)
        .collect()
}

/// Swap files (type `file`) of `/proc/swaps`.
pub fn parse_swap_files(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let name = fields.next()?;
            (fields.next()? == "file").then(|| unescape(name))
        })
        .collect()
}

pub fn holders(paths: &HostPaths, devices: &BTreeSet<Device>) -> Vec<Holder> {
    let host_table = std::fs::read_to_string(paths.proc("1/mountinfo"))
        .map(|t| parse_mountinfo(&t).entries)
        .unwrap_or_default();
    let on_volume = |path: &str| {
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        device_of_path(&host_table, path).is_some_and(|d| devices.contains(&d))
    };
    let kernel = |what: String| Holder {
        pid: None,
        comm: String::new(),
        what,
    };
    let mut found = Vec::new();
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    for export in parse_exports(&read(paths.proc("fs/nfsd/exports"))) {
        if on_volume(&export) {
            found.push(kernel(format!("nfsd export {export}")));
        }
    }
    for swap in parse_swap_files(&read(paths.proc("swaps"))) {
        if on_volume(&swap) {
            found.push(kernel(format!("swap file {swap}")));
        }
    }
    let Ok(blocks) = std::fs::read_dir(paths.sys("block")) else {
        return found;
    };
    let mut loops: Vec<String> = blocks
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("loop"))
        .collect();
    loops.sort();
    for name in loops {
        let backing = read(paths.sys(format!("block/{name}/loop/backing_file")));
        let backing = backing.trim_end_matches('\n');
        if backing.is_empty() {
            continue;
        }
        let held = match loop_backing_device(&paths.root(format!("/dev/{name}"))) {
            Some(device) => devices.contains(&device),
            None => on_volume(backing),
        };
        if held {
            found.push(kernel(format!(
                "loop device /dev/{name} backed by {backing}"
            )));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_and_swaps_parse() {
        let exports = "# Version 1.1\n# Path Client(Flags) # IPs\n\
                       /srv/data/nfs\t*(rw,root_squash,sync,wdelay)\n/with\\040space\t10.0.0.0/8(ro)\n";
        assert_eq!(parse_exports(exports), vec!["/srv/data/nfs", "/with space"]);
        let swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                     /dev/dm-1                               partition\t8388604\t\t0\t\t-2\n\
                     /srv/data/swapfile                      file\t\t1048572\t\t0\t\t-3\n";
        assert_eq!(parse_swap_files(swaps), vec!["/srv/data/swapfile"]);
    }

    #[test]
    fn paths_map_to_the_innermost_mount() {
        let table = parse_mountinfo(
            "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
             2 1 254:0 / /srv/data rw - ocfs2 /dev/vda rw\n\
             3 1 8:2 / /srv/database rw - ext4 /dev/sda2 rw\n",
        )
        .entries;
        assert_eq!(device_of_path(&table, "/srv/data/x/y"), Some((254, 0)));
        assert_eq!(device_of_path(&table, "/srv/data"), Some((254, 0)));
        assert_eq!(device_of_path(&table, "/srv/database/x"), Some((8, 2)));
        assert_eq!(device_of_path(&table, "/etc/fstab"), Some((8, 1)));
    }
}
