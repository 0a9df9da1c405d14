//! The one owner of every scratch tree a test mounts under.
//!
//! A machine once lost its `/etc` to a test that deleted its temporary
//! directory through a bind of `/`: `remove_dir_all` crosses mount points.
//! `ScratchDir` makes that impossible in three layers. It works on the
//! canonical path (mountinfo shows resolved paths, so a `/tmp` behind a
//! symlink would otherwise match nothing). On drop it reads
//! `/proc/self/mountinfo`, takes every mount at or below the tree out of its
//! peer group (so no unmount propagates to the host's mounts through an rbind
//! of a shared `/`), unmounts them (plainly, then lazily), reads the table again, and keeps the directory, saying so on
//! stderr, when the table cannot be read or anything is still mounted. Only
//! then does it delete, and the deletion itself never leaves the tree's
//! filesystem or mount: every directory's device and mount id are compared
//! with the root's before it is entered, and symlinks are removed, never
//! followed. The table reader and the unmount are injectable so a test can
//! prove each refusal without a broken host.

use std::io;
use std::path::{Path, PathBuf};

/// Reads the mount table; `/proc/self/mountinfo` unless a test injects one.
pub type TableReader = fn() -> io::Result<String>;
/// Detaches one mount; `umount2` unless a test injects one.
pub type Unmounter = fn(&Path) -> nix::Result<()>;

pub fn read_own_mountinfo() -> io::Result<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
}

/// A plain unmount first, a lazy one if the mount is busy.
pub fn unmount_lazily(point: &Path) -> nix::Result<()> {
    nix::mount::umount2(point, nix::mount::MntFlags::empty())
        .or_else(|_| nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH))
}

/// A temporary directory for tests that mount under it (see the module doc).
pub struct ScratchDir {
    path: Option<PathBuf>,
    read_table: TableReader,
    unmount: Unmounter,
}

impl ScratchDir {
    pub fn new() -> Self {
        Self::with_hooks(read_own_mountinfo, unmount_lazily)
    }

    /// A scratch tree whose drop reads the table and unmounts through the
    /// given functions: for tests of the refusals themselves.
    pub fn with_hooks(read_table: TableReader, unmount: Unmounter) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ocfs2-watchdog-test.")
            .tempdir()
            .expect("temporary directory")
            .keep();
        let path = std::fs::canonicalize(&dir)
            .unwrap_or_else(|e| panic!("canonicalizing {}: {e}", dir.display()));
        Self {
            path: Some(path),
            read_table,
            unmount,
        }
    }

    /// The canonical path of the tree.
    pub fn path(&self) -> &Path {
        self.path.as_ref().expect("present until dropped")
    }

    /// Unmounts and deletes now; `Err` says why the tree was kept.
    pub fn release(mut self) -> Result<(), String> {
        let path = self.path.take().expect("present until dropped");
        release(&path, self.read_table, self.unmount)
    }
}

impl Default for ScratchDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let Some(path) = self.path.take() else { return };
        if let Err(why) = release(&path, self.read_table, self.unmount) {
            eprintln!("keeping scratch directory {}: {why}", path.display());
        }
    }
}

fn release(path: &Path, read_table: TableReader, unmount: Unmounter) -> Result<(), String> {
    let mut left = mounted_at_or_below(path, read_table)?;
    isolate(&left)?;
    // One round per layer: a point stacked N times is listed N times, and a
    // test that stacked thousands of layers may leave them; stop as soon as
    // a round frees nothing.
    while !left.is_empty() {
        for point in &left {
            let _ = unmount(point);
        }
        let now = mounted_at_or_below(path, read_table)?;
        if now.len() >= left.len() {
            return Err(format!("still mounted at or below it: {now:?}"));
        }
        left = now;
    }
    remove_tree(path)
}

/// Takes every mount at or below the tree out of its peer group before
/// anything is unmounted. An unmount propagates to the peers of the parent
/// mount: under an rbind of a shared `/`, unmounting `<tree>/host/proc` would
/// unmount the real `/proc` (and every leaf mount of the host the same way).
/// Private, the copies are the tree's alone; the originals keep their
/// propagation. If one cannot be made private, nothing is unmounted.
fn isolate(points: &[PathBuf]) -> Result<(), String> {
    // Shallowest first, recursively: a child is never briefly left shared
    // under a private parent.
    let mut tops: Vec<&PathBuf> = points.iter().collect();
    tops.sort_by_key(|p| p.components().count());
    tops.dedup();
    let mut done: Vec<&PathBuf> = Vec::new();
    for point in tops {
        if done.iter().any(|top| point.starts_with(top)) {
            continue;
        }
        nix::mount::mount(
            None::<&str>,
            point.as_path(),
            None::<&str>,
            nix::mount::MsFlags::MS_PRIVATE | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| {
            format!(
                "cannot make {} private before unmounting: {e}",
                point.display()
            )
        })?;
        done.push(point);
    }
    Ok(())
}

/// Every mount point at or below `dir`, deepest first. An unreadable table is
/// an error, never "nothing mounted".
fn mounted_at_or_below(dir: &Path, read_table: TableReader) -> Result<Vec<PathBuf>, String> {
    let table = read_table().map_err(|e| format!("cannot read the mount table: {e}"))?;
    let mut below = Vec::new();
    for line in table.lines() {
        let Some(point) = line.split(' ').nth(4) else {
            return Err(format!("unparsable mount table line: {line:?}"));
        };
        let point = unescape(point);
        if point.starts_with(dir) {
            below.push(point);
        }
    }
    below.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    Ok(below)
}

/// Undoes mountinfo's octal escapes (`\040` space, `\011` tab, `\012`
/// newline, `\134` backslash), byte for byte.
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'\\')
            .then(|| bytes.get(i + 1..i + 4))
            .flatten()
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .and_then(|d| {
                let value = d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
                u8::try_from(value).ok()
            });
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

/// Where a directory lives: its device and, where the kernel says, its mount.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Place {
    dev: u64,
    mount_id: Option<u64>,
}

fn place_of(path: &Path) -> io::Result<Place> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statx writes into the zeroed buffer we own; the path is a valid
    // NUL-terminated string for the duration of the call.
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS | libc::STATX_MNT_ID,
            &mut buf,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let dev = libc::makedev(buf.stx_dev_major, buf.stx_dev_minor);
    let mount_id = (buf.stx_mask & libc::STATX_MNT_ID != 0).then_some(buf.stx_mnt_id);
    Ok(Place { dev, mount_id })
}

/// Deletes `root` without leaving its filesystem or mount and without
/// following a symlink. A directory elsewhere (another device or another
/// mount, even a bind from the same device) is left untouched and reported.
pub fn remove_tree(root: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(root).map_err(|e| format!("{}: {e}", root.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", root.display()));
    }
    let home = place_of(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let mut skipped = Vec::new();
    remove_below(root, home, &mut skipped)?;
    if !skipped.is_empty() {
        return Err(format!(
            "not entering other filesystems or mounts: {skipped:?}"
        ));
    }
    std::fs::remove_dir(root).map_err(|e| format!("{}: {e}", root.display()))
}

fn remove_below(dir: &Path, home: Place, skipped: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_dir() {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            continue;
        }
        let place = place_of(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if place != home {
            skipped.push(path);
            continue;
        }
        let before = skipped.len();
        remove_below(&path, home, skipped)?;
        if skipped.len() == before {
            std::fs::remove_dir(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}
