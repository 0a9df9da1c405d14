//! How `o2cb_down` builds its restart plan: every mount of a cluster OCFS2
//! volume in the host namespace, recorded so the restart can put it back
//! exactly (`actions/restore.rs`), or the reason it could not be.
//!
//! Per volume (device number) one mount of its root directory is the
//! volume's own mount, restored from the device: the one the fstab/config
//! names, else the oldest (lowest mount ID). Every other mount of the volume,
//! kubelet pod volumes included, is a bind of its root (`/vol/sub` stays
//! `/vol/sub`). Source: the expected entry's (`UUID=`/`LABEL=` as configured),
//! else the `UUID=` udev reports for the device; a kernel name alone could
//! name another volume after a re-login, so it is refused. Options: the
//! per-mount flags (mountinfo field 6, `ro` included) and the filesystem
//! options the kernel shows (field 11). Refused (alert only): stacked or
//! shadowed layers, a slave or unbindable mount, a flag `mount(8)` cannot
//! set, binds of a volume whose own root is mounted nowhere. Local-mount
//! volumes (`heartbeat=none`) do not use the stack and are left alone.

use std::collections::BTreeMap;

use crate::actions::restore::{
    filesystem_options, restorable_flags, RestoreError, RestoreHow, RestoreMount,
};
use crate::collector::mounts::MountPoint;

/// Why a mount could not be put back exactly: the restart stays alert only.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{mountpoint} has {layers} layers; a restart cannot put a stack back (unstack first)")]
    Stacked { mountpoint: String, layers: usize },
    #[error("mount point {0} was deleted")]
    Deleted(String),
    #[error("{mountpoint} is a {tag} mount; its propagation cannot be restored")]
    Propagation { mountpoint: String, tag: String },
    #[error(
        "volume {}:{} is mounted only as binds of a subdirectory ({}); its own mount cannot be restored",
        .device.0,
        .device.1,
        .binds.join(", ")
    )]
    OnlyBinds {
        device: (u32, u32),
        binds: Vec<String>,
    },
    #[error("{mountpoint}: {error}")]
    Flags {
        mountpoint: String,
        error: RestoreError,
    },
    #[error(
        "{0} has no fstab/config entry and its device has no UUID link: \
         cannot be sure to mount the same volume again"
    )]
    NoStableSource(String),
}

/// The restore plan for every OCFS2 mount among `mounts`, mount order.
pub fn restore_mounts(mounts: &[MountPoint]) -> Result<Vec<RestoreMount>, PlanError> {
    let mut by_device: BTreeMap<(u32, u32), Vec<&MountPoint>> = BTreeMap::new();
    for mount in mounts {
        let Some(top) = mount.top.as_ref().filter(|t| t.fstype == "ocfs2") else {
            continue;
        };
        if top.super_options.split(',').any(|o| o == "heartbeat=none") {
            continue;
        }
        if mount.stacked > 1 || mount.shadowed {
            return Err(PlanError::Stacked {
                mountpoint: mount.mountpoint.clone(),
                layers: mount.stacked,
            });
        }
        if mount.mountpoint_deleted {
            return Err(PlanError::Deleted(mount.mountpoint.clone()));
        }
        if let Some(tag) = top
            .optional
            .iter()
            .find(|t| t.starts_with("master:") || *t == "unbindable")
        {
            return Err(PlanError::Propagation {
                mountpoint: mount.mountpoint.clone(),
                tag: tag.clone(),
            });
        }
        by_device
            .entry((top.major, top.minor))
            .or_default()
            .push(mount);
    }
    let mut primaries = Vec::new();
    let mut binds = Vec::new();
    for (device, mut group) in by_device {
        group.sort_by_key(|m| m.top_id.unwrap_or(u32::MAX));
        let own = group
            .iter()
            .filter(|m| m.top.as_ref().is_some_and(|t| t.root == "/"))
            .min_by_key(|m| (m.expected.is_none(), m.top_id.unwrap_or(u32::MAX)))
            .copied()
            .ok_or_else(|| PlanError::OnlyBinds {
                device,
                binds: group.iter().map(|m| m.mountpoint.clone()).collect(),
            })?;
        for mount in group {
            let Some(top) = mount.top.as_ref() else {
                continue;
            };
            let flags = restorable_flags(&top.mount_options).map_err(|error| PlanError::Flags {
                mountpoint: mount.mountpoint.clone(),
                error,
            })?;
            let how = if std::ptr::eq(mount, own) {
                RestoreHow::Device {
                    source: device_source(mount)?,
                    options: filesystem_options(&top.super_options),
                }
            } else {
                RestoreHow::Bind {
                    from: own.mountpoint.clone(),
                }
            };
            let restore = RestoreMount {
                mountpoint: mount.mountpoint.clone(),
                fstype: top.fstype.clone(),
                device,
                root: top.root.clone(),
                flags,
                shared: top.shared_group().is_some(),
                how,
                uuid: (!mount.uuid.is_empty()).then(|| mount.uuid.clone()),
            };
            let order = mount.top_id.unwrap_or(u32::MAX);
            if std::ptr::eq(mount, own) {
                primaries.push((order, restore));
            } else {
                binds.push((order, restore));
            }
        }
    }
    primaries.sort_by_key(|(order, _)| *order);
    binds.sort_by_key(|(order, _)| *order);
    Ok(primaries.into_iter().chain(binds).map(|(_, r)| r).collect())
}

fn device_source(mount: &MountPoint) -> Result<String, PlanError> {
    if let Some(expected) = mount.expected.as_ref().filter(|e| e.fstype == "ocfs2") {
        return Ok(expected.source.clone());
    }
    if !mount.uuid.is_empty() {
        return Ok(format!("UUID={}", mount.uuid));
    }
    Err(PlanError::NoStableSource(mount.mountpoint.clone()))
}

#[cfg(test)]
#[path = "o2cb_plan_tests.rs"]
mod tests;
