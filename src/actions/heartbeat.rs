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
            return Err(not_mine(self, plan).to_string());
        };
        check_leaked_region(host, uuid)
    }

    fn run(&self, host: &HostActions, plan: &Plan) -> Result<String, ActionError> {
        let Plan::KillLeakedHeartbeat { uuid } = plan else {
            return Err(not_mine(self, plan));
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

    fn takes_down<'p>(&self, _plan: &'p Plan) -> Option<Vec<&'p str>> {
        None
    }
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
fn mounted_evidence(host: &HostActions, uuid: &str) -> Result<(), String> {
    if host.paths.sys("kernel/debug/ocfs2").join(uuid).is_dir() {
        return Err(format!(
            "volume {uuid} is mounted (debugfs ocfs2/{uuid} exists)"
        ));
    }
    let table = super::unstack::read_own_table(host)?;
    let mut devices: Vec<(String, String)> = Vec::new();
    for entry in table.entries.iter().filter(|e| e.fstype == "ocfs2") {
        let Some(name) = block_name(&host.paths, &entry.source, entry.major, entry.minor) else {
            return Err(format!(
                "cannot tell which volume is mounted at {} ({} {}:{}); it may be {uuid}",
                entry.mount_point, entry.source, entry.major, entry.minor
            ));
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
                return Err(format!(
                    "volume {uuid} is mounted at {mount_point} (/dev/{name})"
                ))
            }
            Some(_) => {}
            None => {
                return Err(format!(
                    "no OCFS2 superblock read from /dev/{name} mounted at {mount_point}; it may be {uuid}"
                ))
            }
        }
    }
    Ok(())
}

pub fn check_leaked_region(host: &HostActions, uuid: &str) -> Checked {
    if region_dirs(host, uuid).is_empty() {
        return Err(format!("heartbeat region {uuid} is gone"));
    }
    mounted_evidence(host, uuid)?;
    Ok(format!("ocfs2_hb_ctl -K -u {uuid} ocfs2"))
}

pub fn kill_heartbeat(host: &HostActions, uuid: &str) -> Result<String, ActionError> {
    check_leaked_region(host, uuid).map_err(ActionError::PreconditionChanged)?;
    command::run_checked(
        &host.command_prefix,
        "ocfs2_hb_ctl",
        &["-K", "-u", uuid, "ocfs2"],
        host.timeout,
    )
    .map_err(ActionError::Failed)?;
    Ok(format!("stopped heartbeat region {uuid}"))
}
