//! Where the host's files are: every path the daemon reads is built here.
//!
//! node_exporter semantics: `--path.rootfs` (default `/`, `/host` in a
//! container) prefixes every host file; `--path.procfs` and `--path.sysfs`
//! default to `<rootfs>/proc` and `<rootfs>/sys` and can point elsewhere.
//! Labels always carry the host's own paths (`host_path` strips the prefix),
//! so a daemon in a container and one on the host export the same series, and
//! the whole daemon runs against a fixture tree in tests.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    rootfs: PathBuf,
    procfs: PathBuf,
    sysfs: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self::new(PathBuf::from("/"), None, None)
    }
}

impl HostPaths {
    /// `procfs` and `sysfs` default to `proc` and `sys` under `rootfs`.
    pub fn new(rootfs: PathBuf, procfs: Option<PathBuf>, sysfs: Option<PathBuf>) -> Self {
        let procfs = procfs.unwrap_or_else(|| rootfs.join("proc"));
        let sysfs = sysfs.unwrap_or_else(|| rootfs.join("sys"));
        Self {
            rootfs,
            procfs,
            sysfs,
        }
    }

    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// A host path (absolute, as the host names it) under the root.
    pub fn root(&self, host_path: impl AsRef<Path>) -> PathBuf {
        join_under(&self.rootfs, host_path.as_ref())
    }

    /// A path below the proc root, e.g. `proc("1/mountinfo")`.
    pub fn proc(&self, relative: impl AsRef<Path>) -> PathBuf {
        join_under(&self.procfs, relative.as_ref())
    }

    /// A path below the sys root, e.g. `sys("kernel/config/cluster")`.
    pub fn sys(&self, relative: impl AsRef<Path>) -> PathBuf {
        join_under(&self.sysfs, relative.as_ref())
    }

    /// The host's own name for a path under the root, for labels.
    pub fn host_path(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(&self.rootfs) {
            Ok(rest) => Path::new("/").join(rest),
            Err(_) => path.to_path_buf(),
        }
    }
}

/// Joins `path` below `base` even when `path` is absolute (`Path::join` would
/// replace `base`), and refuses to climb out of it with `..`.
fn join_under(base: &Path, path: &Path) -> PathBuf {
    walk(base, base, path)
}

/// Applies `path`'s components to `start`, never popping above `floor`.
fn walk(floor: &Path, start: &Path, path: &Path) -> PathBuf {
    let mut joined = start.to_path_buf();
    for component in path.components() {
        match component {
            std::path::Component::Normal(part) => joined.push(part),
            std::path::Component::ParentDir if joined != floor => {
                joined.pop();
            }
            _ => {}
        }
    }
    joined
}

/// (major, minor) of a `dev_t` the kernel reported (`st_dev`, `st_rdev`),
/// converted checked: `None` when either does not fit the `u32` the mount
/// table and sysfs use (never on Linux today, whose numbers are 12 and 20
/// bits, but a device number is not the place to truncate silently).
pub fn device_numbers(dev: u64) -> Option<(u32, u32)> {
    Some((
        u32::try_from(nix::sys::stat::major(dev)).ok()?,
        u32::try_from(nix::sys::stat::minor(dev)).ok()?,
    ))
}

/// Resolves a symlink target found at `link` (a host path) lexically, the way
/// the host would, without following anything on disk: `/dev/disk/by-uuid/X`
/// → `../../sdb` becomes `/dev/sdb`.
pub fn resolve_link_target(link: &Path, target: &Path) -> PathBuf {
    let root = Path::new("/");
    let start = match link.parent() {
        Some(parent) if !target.is_absolute() => parent,
        _ => root,
    };
    walk(root, start, target)
}

/// Symlinks followed before `resolve_in_root` gives up (the kernel's limit).
const MAX_LINKS: usize = 40;

/// Resolves every symlink in `host_path` the way the host would, inside the
/// root: an absolute link target (`/data`) means the host's `/data`, never
/// the daemon's, which `canonicalize` under a `/host` prefix would give.
/// Components that do not exist end the resolution; the rest is appended as
/// is, so the caller decides whether a missing path is an error.
pub fn resolve_in_root(paths: &HostPaths, host_path: &Path) -> std::io::Result<PathBuf> {
    let mut resolved = PathBuf::from("/");
    let mut pending: Vec<std::ffi::OsString> = components_of(host_path);
    pending.reverse();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        match std::fs::read_link(paths.root(&candidate)) {
            Ok(target) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
                }
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                pending.extend(components_of(&target).into_iter().rev());
            }
            // Not a link (EINVAL) or not there: keep the name as it is.
            Err(_) => resolved = candidate,
        }
    }
    Ok(resolved)
}

fn components_of(path: &Path) -> Vec<std::ffi::OsString> {
    path.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(part) => Some(part.to_os_string()),
            std::path::Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_round_trip() {
        let dev = nix::sys::stat::makedev(259, 1_048_575);
        assert_eq!(device_numbers(dev), Some((259, 1_048_575)));
    }

    #[test]
    fn defaults_follow_rootfs() {
        let paths = HostPaths::new("/host".into(), None, None);
        assert_eq!(
            paths.proc("1/mountinfo"),
            Path::new("/host/proc/1/mountinfo")
        );
        assert_eq!(paths.sys("/class/x"), Path::new("/host/sys/class/x"));
        assert_eq!(paths.root("/etc/fstab"), Path::new("/host/etc/fstab"));
    }

    #[test]
    fn overrides_win_and_labels_strip_the_prefix() {
        let paths = HostPaths::new("/host".into(), Some("/hostproc".into()), None);
        assert_eq!(
            paths.proc("self/mountinfo"),
            Path::new("/hostproc/self/mountinfo")
        );
        assert_eq!(
            paths.host_path(Path::new("/host/srv/data")),
            Path::new("/srv/data")
        );
        assert_eq!(
            HostPaths::default().host_path(Path::new("/srv")),
            Path::new("/srv")
        );
    }

    #[test]
    fn never_climbs_out_of_the_root() {
        let paths = HostPaths::new("/host".into(), None, None);
        assert_eq!(
            paths.root("/../../etc/passwd"),
            Path::new("/host/etc/passwd")
        );
    }

    #[test]
    fn link_targets_resolve_like_the_host() {
        assert_eq!(
            resolve_link_target(Path::new("/dev/disk/by-uuid/ab"), Path::new("../../sdb")),
            Path::new("/dev/sdb")
        );
        assert_eq!(
            resolve_link_target(Path::new("/dev/mapper/mpatha"), Path::new("/dev/dm-3")),
            Path::new("/dev/dm-3")
        );
    }

    #[test]
    fn links_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("data/vol")).unwrap();
        std::fs::create_dir_all(root.join("srv")).unwrap();
        std::fs::create_dir_all(root.join("dev/mapper")).unwrap();
        // Absolute targets name the host's paths, relative ones climb from the link.
        std::os::unix::fs::symlink("/data", root.join("srv/link")).unwrap();
        std::os::unix::fs::symlink("../dm-3", root.join("dev/mapper/mpatha")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("srv/loop")).unwrap();
        let paths = HostPaths::new(root.to_path_buf(), None, None);
        assert_eq!(
            resolve_in_root(&paths, Path::new("/srv/link/vol")).unwrap(),
            Path::new("/data/vol")
        );
        assert_eq!(
            resolve_in_root(&paths, Path::new("/dev/mapper/mpatha")).unwrap(),
            Path::new("/dev/dm-3")
        );
        assert_eq!(
            resolve_in_root(&paths, Path::new("/srv/missing/x")).unwrap(),
            Path::new("/srv/missing/x")
        );
        assert!(resolve_in_root(&paths, Path::new("/srv/loop")).is_err());
    }
}
