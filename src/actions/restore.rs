//! The mounts an o2cb restart takes down, and how each is put back exactly.
//!
//! The rule (`rules/o2cb_plan.rs`) records every mount of an OCFS2 volume in
//! the host namespace as it was: the volume's own mount (mounted from its
//! device, with its per-mount flags and filesystem options) and every bind
//! of it (kubelet pod volumes: a bind of `/vol/sub` must come back as a bind
//! of `/vol/sub`, never as the whole volume). The restart (`o2cb.rs`)
//! unmounts them in reverse mount order and restores them in mount order:
//! the device mount through `remount.rs` (same preconditions), binds with
//! `mount --bind` plus `-o remount,bind,FLAGS`, then the propagation type.
//! `verify` re-reads the table and compares what came back with the record.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::command::CommandError;
use super::unstack::{PopError, TableError};
use super::{command, remount, unstack, ActionError, HostActions, MountSpec};
use crate::collector::mounts::mountinfo::MountEntry;

/// Why a mount cannot be taken down or put back exactly as recorded.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("per-mount option {0} cannot be restored")]
    Flag(String),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("{mountpoint} now shows {fstype} {major}:{minor} root {root}, not the planned volume")]
    Replaced {
        mountpoint: String,
        fstype: String,
        major: u32,
        minor: u32,
        root: String,
    },
    #[error("{0} is no longer mounted")]
    Gone(String),
    /// The re-check right before `umount2`: not the planned layer any more.
    #[error("{mountpoint} is not unmounted: {moved}")]
    Moved {
        mountpoint: String,
        moved: unstack::Moved,
    },
    #[error("cannot unmount {mountpoint}: {error}")]
    Unmount {
        mountpoint: String,
        error: nix::Error,
    },
    #[error("{link} is a symbolic link now; {mountpoint} is not unmounted through it")]
    Link { mountpoint: String, link: String },
    #[error("{mountpoint} is mounted ({fstype} {device}); never mount on top")]
    Occupied {
        mountpoint: String,
        fstype: String,
        device: String,
    },
    /// The device mount went through `remount` and failed there.
    #[error("{0}")]
    Remount(Box<ActionError>),
    #[error("{0} is not mounted")]
    NotMounted(String),
    #[error("{mountpoint} came back with flags {now:?}, was {was:?}")]
    Flags {
        mountpoint: String,
        now: String,
        was: String,
    },
    #[error("{mountpoint} came back {now}, was {was}")]
    Propagation {
        mountpoint: String,
        now: &'static str,
        was: &'static str,
    },
}

/// Per-mount flags `mount(8)` can set again; `rw` and `relatime` are the
/// defaults and never recorded.
pub const RESTORABLE_FLAGS: [&str; 8] = [
    "ro",
    "nosuid",
    "nodev",
    "noexec",
    "noatime",
    "nodiratime",
    "strictatime",
    "nosymfollow",
];
const DEFAULT_FLAGS: [&str; 2] = ["rw", "relatime"];

/// One mount to take down and put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreMount {
    /// Host path.
    pub mountpoint: String,
    pub fstype: String,
    /// The volume's device number (`major:minor`, mountinfo field 3).
    pub device: (u32, u32),
    /// The directory of the filesystem shown there (mountinfo field 4).
    pub root: String,
    /// Non-default per-mount flags (`ro,nosuid`), empty for none.
    pub flags: String,
    /// In a shared peer group (restored with `--make-shared`, else private).
    pub shared: bool,
    pub how: RestoreHow,
    /// The volume UUID the daemon saw mounted here (o2cb form), checked
    /// against the device's superblock before the remount; `None` when the
    /// collector could not name it.
    #[serde(default)]
    pub uuid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RestoreHow {
    /// `mount -t FSTYPE -o FLAGS,OPTIONS SOURCE MOUNTPOINT`.
    Device { source: String, options: String },
    /// `mount --bind FROM/ROOT MOUNTPOINT`: a bind of the volume mounted at
    /// `from` (restored earlier in the same plan).
    Bind { from: String },
}

impl RestoreMount {
    pub fn describe(&self) -> String {
        match &self.how {
            RestoreHow::Device { source, .. } => format!("{} ({source})", self.mountpoint),
            RestoreHow::Bind { from } => {
                format!("{} (bind of {from} root {})", self.mountpoint, self.root)
            }
        }
    }

    /// The `-o` of the device mount: flags, then filesystem options.
    pub fn mount_options(&self) -> String {
        let options = match &self.how {
            RestoreHow::Device { options, .. } => options.as_str(),
            RestoreHow::Bind { .. } => "",
        };
        [self.flags.as_str(), options]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The non-default per-mount flags of mountinfo field 6, or the first one
/// `mount(8)` could not set again.
pub fn restorable_flags(mount_options: &str) -> Result<String, RestoreError> {
    let mut flags = Vec::new();
    for flag in mount_options.split(',').filter(|f| !f.is_empty()) {
        if DEFAULT_FLAGS.contains(&flag) {
            continue;
        }
        if !RESTORABLE_FLAGS.contains(&flag) {
            return Err(RestoreError::Flag(flag.to_string()));
        }
        flags.push(flag);
    }
    Ok(flags.join(","))
}

/// Filesystem options to mount with again, from mountinfo field 11: all but
/// the superblock's `rw`/`ro` (the per-mount flag decides) and what
/// `mount.ocfs2` sets itself (`heartbeat=`, `cluster_stack=`).
pub fn filesystem_options(super_options: &str) -> String {
    super_options
        .split(',')
        .filter(|o| !o.is_empty() && *o != "rw" && *o != "ro")
        .filter(|o| !o.starts_with("heartbeat=") && !o.starts_with("cluster_stack="))
        .collect::<Vec<_>>()
        .join(",")
}

fn tool_path(host: &HostActions, host_path: &str) -> String {
    if host.command_prefix.is_empty() {
        host.paths.root(host_path).to_string_lossy().into_owned()
    } else {
        host_path.to_string()
    }
}

fn run(host: &HostActions, program: &str, args: &[&str]) -> Result<(), RestoreError> {
    command::run_checked(&host.command_prefix, program, args, host.timeout)?;
    Ok(())
}

/// The visible top layer at `mountpoint` in the daemon's table.
fn top_at(host: &HostActions, mountpoint: &str) -> Result<Option<MountEntry>, RestoreError> {
    let table = unstack::read_own_table(host)?;
    let local = unstack::local_path(host, mountpoint);
    let index = crate::collector::mounts::stack::TableIndex::new(&table.entries);
    Ok(index
        .layers(&local.to_string_lossy())
        .first()
        .map(|e| (*e).clone()))
}

/// The mount is still what the plan recorded (same volume, same root);
/// the mount id (mountinfo field 1) of that layer, which `unmount` insists
/// on finding there again.
pub fn still_mounted(host: &HostActions, mount: &RestoreMount) -> Result<u32, RestoreError> {
    match top_at(host, &mount.mountpoint)? {
        Some(top)
            if top.fstype == mount.fstype
                && (top.major, top.minor) == mount.device
                && top.root == mount.root =>
        {
            Ok(top.id)
        }
        Some(top) => Err(RestoreError::Replaced {
            mountpoint: mount.mountpoint.clone(),
            fstype: top.fstype,
            major: top.major,
            minor: top.minor,
            root: top.root,
        }),
        None => Err(RestoreError::Gone(mount.mountpoint.clone())),
    }
}

/// Unmounts the layer `planned` (the mount id `still_mounted` found) at the
/// recorded mount point, the way unstack pops a layer (`unstack::pop_layer`):
/// the id on top there is read again (`statx`, last component not followed)
/// right before `umount2(UMOUNT_NOFOLLOW)`, so there is no window for a tool
/// to start in. Refused when a component of the path has become a symbolic
/// link (the kernel reports canonical paths, so the record has none) or
/// another mount is on top now. `umount(8)` is not used: libmount's utab
/// entry of the mount, if it had one, is left for the restore's `mount` to
/// supersede (docs/rules.md, o2cb_down).
pub fn unmount(host: &HostActions, mount: &RestoreMount, planned: u32) -> Result<(), RestoreError> {
    if let Some(link) = link_in(host, &mount.mountpoint) {
        return Err(RestoreError::Link {
            mountpoint: mount.mountpoint.clone(),
            link: link.to_string_lossy().into_owned(),
        });
    }
    let path = unstack::local_path(host, &mount.mountpoint);
    unstack::pop_layer(&path, planned, false).map_err(|error| match error {
        PopError::Moved(moved) => RestoreError::Moved {
            mountpoint: mount.mountpoint.clone(),
            moved,
        },
        PopError::Syscall(error) => RestoreError::Unmount {
            mountpoint: mount.mountpoint.clone(),
            error,
        },
    })
}

/// The first component of the host path `mountpoint` (below the host root)
/// that is a symbolic link.
fn link_in(host: &HostActions, mountpoint: &str) -> Option<std::path::PathBuf> {
    let mut prefix = std::path::PathBuf::from("/");
    for component in Path::new(mountpoint).components().skip(1) {
        prefix.push(component);
        let local = host.paths.root(&prefix);
        if std::fs::symlink_metadata(&local).is_ok_and(|m| m.file_type().is_symlink()) {
            return Some(local);
        }
    }
    None
}

/// Puts one mount back as recorded.
pub fn mount(host: &HostActions, mount: &RestoreMount) -> Result<(), RestoreError> {
    let target = tool_path(host, &mount.mountpoint);
    match &mount.how {
        RestoreHow::Device { source, .. } => {
            let spec = MountSpec {
                mountpoint: mount.mountpoint.clone(),
                source: source.clone(),
                fstype: mount.fstype.clone(),
                options: mount.mount_options(),
                uuid: mount.uuid.clone(),
                // The plan refuses sources that are only a kernel name; a
                // device path that is one is accepted when the UUID it
                // carried is known, and checked against it.
                allow_kernel_name: mount.uuid.is_some(),
            };
            remount::run(host, &spec).map_err(|e| RestoreError::Remount(Box::new(e)))?;
        }
        RestoreHow::Bind { from } => {
            if let Some(top) = top_at(host, &mount.mountpoint)? {
                return Err(RestoreError::Occupied {
                    mountpoint: mount.mountpoint.clone(),
                    fstype: top.fstype,
                    device: top.source,
                });
            }
            let source = Path::new(from).join(mount.root.trim_start_matches('/'));
            let source = tool_path(host, &source.to_string_lossy());
            run(host, "mount", &["--bind", &source, &target])?;
            if !mount.flags.is_empty() {
                let options = format!("remount,bind,{}", mount.flags);
                run(host, "mount", &["-o", &options, &target])?;
            }
        }
    }
    let propagation = if mount.shared {
        "--make-shared"
    } else {
        "--make-private"
    };
    run(host, "mount", &[propagation, &target])
}

/// What came back is what was recorded: volume, root, flags, propagation.
pub fn verify(host: &HostActions, mount: &RestoreMount) -> Result<(), RestoreError> {
    still_mounted(host, mount)?;
    let Some(top) = top_at(host, &mount.mountpoint)? else {
        return Err(RestoreError::NotMounted(mount.mountpoint.clone()));
    };
    let set = |s: &str| -> BTreeSet<String> {
        s.split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect()
    };
    let now = restorable_flags(&top.mount_options).unwrap_or_else(|e| e.to_string());
    if set(&now) != set(&mount.flags) {
        return Err(RestoreError::Flags {
            mountpoint: mount.mountpoint.clone(),
            now,
            was: mount.flags.clone(),
        });
    }
    if top.shared_group().is_some() != mount.shared {
        let (now, was) = if mount.shared {
            ("private", "shared")
        } else {
            ("shared", "private")
        };
        return Err(RestoreError::Propagation {
            mountpoint: mount.mountpoint.clone(),
            now,
            was,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_keep_only_what_differs_from_the_defaults() {
        assert_eq!(restorable_flags("rw,relatime").unwrap(), "");
        assert_eq!(
            restorable_flags("ro,nosuid,nodev,noatime").unwrap(),
            "ro,nosuid,nodev,noatime"
        );
        assert!(matches!(
            restorable_flags("rw,idmapped"),
            Err(RestoreError::Flag(flag)) if flag == "idmapped"
        ));
    }

    #[test]
    fn filesystem_options_drop_what_mount_ocfs2_sets() {
        // The lab's capture of a default mount.
        let real = "rw,_netdev,heartbeat=local,nointr,data=ordered,errors=remount-ro,\
                    atime_quantum=60,cluster_stack=o2cb,coherency=full,user_xattr,acl";
        assert_eq!(
            filesystem_options(real),
            "_netdev,nointr,data=ordered,errors=remount-ro,atime_quantum=60,coherency=full,user_xattr,acl"
        );
        assert_eq!(
            filesystem_options("ro,heartbeat=global,localflocks,,usrquota"),
            "localflocks,usrquota"
        );
    }
}
