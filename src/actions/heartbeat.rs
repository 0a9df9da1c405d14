//! The leaked-heartbeat kill: stop a local heartbeat region whose volume is
//! not mounted on this node.
//!
//! `ocfs2_hb_ctl -K -u <UUID> ocfs2` is the call the kernel itself makes at
//! unmount (interfaces.md §1.4). Decided per UUID, as the
//! `leaked_heartbeat` rule decides: other OCFS2 volumes mounted on the node
//! do not stop it, only evidence that *this* volume is mounted does. That
//! evidence, re-read on the host just before acting: the volume's debugfs
//! directory (`/sys/kernel/debug/ocfs2/<UUID>`, present while its
//! superblock lives), and the UUID in the superblock of every device an
//! OCFS2 mount in the table sits on (`identity.rs`, O_DIRECT on deadline
//! probes). A mount whose device cannot be named or read refuses: it might
//! be this volume. Killing the heartbeat of a mounted volume would make the
//! peers see this node die and fence it.

use std::path::PathBuf;

use super::{
    command, identity, not_mine, Action, ActionError, Checked, HostActions, Plan, VolumeClaim,
};
use crate::collector::storage::topology::block_name;

/// Stops `Plan::KillLeakedHeartbeat`'s heartbeat region.
pub struct KillLeakedHeartbeat;

impl Action for KillLeakedHeartbeat {
    fn name(&self) -> &'static str {
        "kill_leaked_heartbeat"
    }

    fn check(&self, host: &HostActions, plan: &Plan) -> Checked {
        let Plan::KillLeakedHeartbeat { uuid } = plan else {
            return Err(not_mine(self, plan));
        };
        Ok(check_leaked_region(host, uuid)?)
    }

    fn run(&self, host: &HostActions, plan: &Plan) -> Result<String, ActionError> {
        let Plan::KillLeakedHeartbeat { uuid } = plan else {
            return Err(ActionError::Failed(not_mine(self, plan)));
        };
        kill_heartbeat(host, uuid)
    }

    fn claim(&self, plan: &Plan) -> VolumeClaim {
        let Plan::KillLeakedHeartbeat { uuid } = plan else {
            return VolumeClaim::keys(Vec::new()).whole_stack();
        };
        VolumeClaim::keys(vec![format!("region:{uuid}")]).on_stack()
    }

    fn disruptive(&self) -> bool {
        true
    }

    fn destructive(&self) -> bool {
        true
    }

    fn held_by_partition(&self) -> bool {
        false
    }

    fn needs_lease(&self, _serialize_remounts: bool) -> bool {
        true
    }

    fn takes_down<'p>(&self, _plan: &'p Plan) -> Option<Vec<&'p str>> {
        None
    }
}

/// Why a heartbeat region is not (or no longer) a leak to stop.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error("heartbeat region {0} is gone")]
    Gone(String),
    #[error("volume {0} is mounted (debugfs ocfs2/{0} exists)")]
    MountedDebugfs(String),
    #[error(transparent)]
    Table(#[from] super::unstack::TableError),
    #[error(
        "cannot tell which volume is mounted at {mountpoint} ({device} {major}:{minor}); it may be {uuid}"
    )]
    UnknownMount {
        mountpoint: String,
        device: String,
        major: u32,
        minor: u32,
        uuid: String,
    },
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error("volume {uuid} is mounted at {mountpoint} (/dev/{name})")]
    Mounted {
        uuid: String,
        mountpoint: String,
        name: String,
    },
    #[error("no OCFS2 superblock read from /dev/{name} mounted at {mountpoint}; it may be {uuid}")]
    Unreadable {
        name: String,
        mountpoint: String,
        uuid: String,
    },
}

fn region_dirs(host: &HostActions, uuid: &str) -> Vec<PathBuf> {
    let Ok(clusters) = std::fs::read_dir(host.paths.sys("kernel/config/cluster")) else {
        return Vec::new();
    };
    clusters
        .flatten()
        .map(|c| c.path().join("heartbeat").join(uuid))
        .filter(|p| p.is_dir())
        .collect()
}

/// Why the volume `uuid` counts as mounted here, or `Ok(())` when no mount
/// carries it.
fn mounted_evidence(host: &HostActions, uuid: &str) -> Result<(), HeartbeatError> {
    if host.paths.sys("kernel/debug/ocfs2").join(uuid).is_dir() {
        return Err(HeartbeatError::MountedDebugfs(uuid.to_string()));
    }
    let table = super::unstack::read_own_table(host)?;
    let mut devices: Vec<(String, String)> = Vec::new();
    for entry in table.entries.iter().filter(|e| e.fstype == "ocfs2") {
        let Some(name) = block_name(&host.paths, &entry.source, entry.major, entry.minor) else {
            return Err(HeartbeatError::UnknownMount {
                mountpoint: entry.mount_point.clone(),
                device: entry.source.clone(),
                major: entry.major,
                minor: entry.minor,
                uuid: uuid.to_string(),
            });
        };
        if !devices.iter().any(|(n, _)| n == &name) {
            devices.push((name, entry.mount_point.clone()));
        }
    }
    if devices.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = devices.iter().map(|(n, _)| n.clone()).collect();
    let found = identity::scan_names(host, &names)?;
    for (name, mount_point) in &devices {
        match found.iter().find(|c| &c.name == name) {
            Some(carrier) if carrier.identity.uuid == uuid => {
                return Err(HeartbeatError::Mounted {
                    uuid: uuid.to_string(),
                    mountpoint: mount_point.clone(),
                    name: name.clone(),
                })
            }
            Some(_) => {}
            None => {
                return Err(HeartbeatError::Unreadable {
                    name: name.clone(),
                    mountpoint: mount_point.clone(),
                    uuid: uuid.to_string(),
                })
            }
        }
    }
    Ok(())
}

pub fn check_leaked_region(host: &HostActions, uuid: &str) -> Result<String, HeartbeatError> {
    if region_dirs(host, uuid).is_empty() {
        return Err(HeartbeatError::Gone(uuid.to_string()));
    }
    mounted_evidence(host, uuid)?;
    Ok(format!("ocfs2_hb_ctl -K -u {uuid} ocfs2"))
}

pub fn kill_heartbeat(host: &HostActions, uuid: &str) -> Result<String, ActionError> {
    check_leaked_region(host, uuid).map_err(ActionError::changed)?;
    command::run_checked(
        &host.command_prefix,
        "ocfs2_hb_ctl",
        &["-K", "-u", uuid, "ocfs2"],
        host.timeout,
    )
    .map_err(ActionError::failed)?;
    Ok(format!("stopped heartbeat region {uuid}"))
}
