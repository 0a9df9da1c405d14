//! iSCSI re-login: log a FAILED or FREE session out and in again, only when
//! no disk of it carries anything in use.
//!
//! `iscsiadm -m node -T <target> -p <portal> --logout` then `--login`, each
//! with the action deadline. A logout deletes the session's SCSI disks; on a
//! disk that is the only path to a volume, that is an unplugged disk under a
//! mounted filesystem or a heartbeat region (the node then self-fences), and
//! even with a second path the failover stalls I/O for the length of the
//! multipath checker's interval. So, re-read on the host just before acting
//! (never from the snapshot): the session state in sysfs
//! (`/sys/class/iscsi_session/<session>/state`, docs/interfaces.md §6.1); its disks
//! (`device/target*/H:C:T:L/block/sdX`, §6.4); that none of them lies under
//! a mounted filesystem (the mount table, walked down through partitions and
//! dm maps as the storage collector does, `topology.rs`) or a heartbeat
//! region (configfs `heartbeat/<UUID>/dev`); and that each is a path of a
//! multipath map with another path that dm calls active (`dmsetup status`,
//! §6.7) and whose SCSI device is `running`. A session whose disks cannot be
//! listed refuses.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::command::CommandError;
use super::{command, not_mine, Action, ActionError, Checked, HostActions, Plan, VolumeClaim};
use crate::collector::mounts::mountinfo::parse_mountinfo;
use crate::collector::storage::iscsi::session_disks;
use crate::collector::storage::multipath::{parse_dmsetup_status, MapStatus};
use crate::collector::storage::sysfs::{attr, list_dir, real_dir};
use crate::collector::storage::topology::{block_name, walk};

/// Logs `Plan::IscsiRelogin`'s session out and in again.
pub struct IscsiRelogin;

impl Action for IscsiRelogin {
    fn name(&self) -> &'static str {
        "iscsi_relogin"
    }

    fn check(&self, host: &HostActions, plan: &Plan) -> Checked {
        let Plan::IscsiRelogin { session, .. } = plan else {
            return Err(not_mine(self, plan));
        };
        Ok(check_session(host, session)?)
    }

    fn run(&self, host: &HostActions, plan: &Plan) -> Result<String, ActionError> {
        let Plan::IscsiRelogin { target, portal, .. } = plan else {
            return Err(ActionError::Failed(not_mine(self, plan)));
        };
        relogin(host, target, portal)
    }

    fn claim(&self, plan: &Plan) -> VolumeClaim {
        let Plan::IscsiRelogin { session, .. } = plan else {
            return VolumeClaim::keys(Vec::new()).whole_stack();
        };
        VolumeClaim::keys(vec![format!("session:{session}")])
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

/// Why a session is not logged out and in again.
#[derive(Debug, thiserror::Error)]
pub enum IscsiError {
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{session} is {state}")]
    NotFailed { session: String, state: String },
    #[error("cannot list the disks of {session} ({} missing)", path.display())]
    NoDevice { session: String, path: PathBuf },
    #[error("{disk} is under {device} mounted at {mountpoint}")]
    Mounted {
        disk: String,
        device: String,
        mountpoint: String,
    },
    #[error("{disk} is under heartbeat region {region} (/dev/{device})")]
    Heartbeat {
        disk: String,
        region: String,
        device: String,
    },
    #[error("cannot read multipath path states: {0}")]
    PathStates(CommandError),
    #[error("{0} is not a path of a multipath map: the logout would remove the only path")]
    NoMultipath(String),
    #[error("multipath map {alias} ({map}) has no active path besides this session's")]
    NoOtherPath { alias: String, map: String },
}

pub fn check_session(host: &HostActions, session: &str) -> Result<String, IscsiError> {
    let dir = host.paths.sys(format!("class/iscsi_session/{session}"));
    let state = match std::fs::read_to_string(dir.join("state")) {
        Ok(state) => state.trim().to_string(),
        Err(error) => {
            return Err(IscsiError::Read {
                path: dir.join("state"),
                error,
            })
        }
    };
    if !matches!(state.as_str(), "FAILED" | "FREE") {
        return Err(IscsiError::NotFailed {
            session: session.to_string(),
            state,
        });
    }
    if real_dir(&dir.join("device")).is_none() {
        return Err(IscsiError::NoDevice {
            session: session.to_string(),
            path: dir.join("device"),
        });
    }
    let disks: BTreeSet<String> = session_disks(&dir).into_iter().collect();
    if !disks.is_empty() {
        refuse_if_in_use(host, &disks)?;
        refuse_without_other_path(host, &disks)?;
    }
    Ok(format!(
        "log {session} ({state}) out and in again; disks {}",
        if disks.is_empty() {
            "none".to_string()
        } else {
            disks.iter().cloned().collect::<Vec<_>>().join(" ")
        }
    ))
}

/// The host's mount table: PID 1's, or the daemon's own when that is not
/// readable (the mounts collector's order).
fn host_table(host: &HostActions) -> Result<String, IscsiError> {
    let init = host.paths.proc("1/mountinfo");
    std::fs::read_to_string(&init)
        .or_else(|_| std::fs::read_to_string(host.paths.proc("self/mountinfo")))
        .map_err(|error| IscsiError::Read { path: init, error })
}

fn refuse_if_in_use(host: &HostActions, disks: &BTreeSet<String>) -> Result<(), IscsiError> {
    let table = parse_mountinfo(&host_table(host)?);
    let mut seen = BTreeSet::new();
    for entry in &table.entries {
        // Device number 0 is an anonymous superblock (tmpfs, proc, overlay).
        if entry.major == 0 || !seen.insert((entry.major, entry.minor)) {
            continue;
        }
        let Some(name) = block_name(&host.paths, &entry.source, entry.major, entry.minor) else {
            continue;
        };
        if let Some(disk) = walk(&host.paths, &name)
            .disks
            .iter()
            .find(|d| disks.contains(*d))
        {
            return Err(IscsiError::Mounted {
                disk: disk.clone(),
                device: entry.source.clone(),
                mountpoint: entry.mount_point.clone(),
            });
        }
    }
    for cluster in list_dir(&host.paths.sys("kernel/config/cluster")) {
        let heartbeat = host
            .paths
            .sys("kernel/config/cluster")
            .join(cluster)
            .join("heartbeat");
        for region in list_dir(&heartbeat) {
            let Some(device) = attr(&heartbeat.join(&region), "dev").filter(|d| !d.is_empty())
            else {
                continue;
            };
            if let Some(disk) = walk(&host.paths, &device)
                .disks
                .iter()
                .find(|d| disks.contains(*d))
            {
                return Err(IscsiError::Heartbeat {
                    disk: disk.clone(),
                    region,
                    device,
                });
            }
        }
    }
    Ok(())
}

fn refuse_without_other_path(
    host: &HostActions,
    disks: &BTreeSet<String>,
) -> Result<(), IscsiError> {
    let output = command::run_checked(
        &host.command_prefix,
        "dmsetup",
        &["status", "--target", "multipath"],
        host.timeout,
    )
    .map_err(IscsiError::PathStates)?;
    let statuses = parse_dmsetup_status(&output.stdout);
    let block = host.paths.sys("class/block");
    for disk in disks {
        let maps: Vec<String> = list_dir(&block.join(disk).join("holders"))
            .into_iter()
            .filter(|h| {
                attr(&block.join(h).join("dm"), "uuid").is_some_and(|u| u.starts_with("mpath-"))
            })
            .collect();
        let Some(map) = maps.first() else {
            return Err(IscsiError::NoMultipath(disk.clone()));
        };
        let alias = attr(&block.join(map).join("dm"), "name").unwrap_or_else(|| map.clone());
        let status = statuses.iter().find(|s| s.name == alias);
        let other = list_dir(&block.join(map).join("slaves"))
            .into_iter()
            .filter(|slave| !disks.contains(slave))
            .find(|slave| path_usable(host, status, slave));
        if other.is_none() {
            return Err(IscsiError::NoOtherPath {
                alias,
                map: map.clone(),
            });
        }
    }
    Ok(())
}

/// dm says the path is active and the SCSI device is running.
fn path_usable(host: &HostActions, status: Option<&MapStatus>, slave: &str) -> bool {
    let block = host.paths.sys("class/block").join(slave);
    let Some(number) = attr(&block, "dev") else {
        return false;
    };
    let active = status.is_some_and(|s| s.paths.iter().any(|p| p.device == number && p.active));
    active && attr(&block.join("device"), "state").as_deref() == Some("running")
}

pub fn relogin(host: &HostActions, target: &str, portal: &str) -> Result<String, ActionError> {
    let base = ["-m", "node", "-T", target, "-p", portal];
    // Logout of a FREE session fails; the login is what matters.
    let _ = command::run(
        &host.command_prefix,
        "iscsiadm",
        &[&base[..], &["--logout"]].concat(),
        host.timeout,
    );
    command::run_checked(
        &host.command_prefix,
        "iscsiadm",
        &[&base[..], &["--login"]].concat(),
        host.timeout,
    )
    .map_err(ActionError::failed)?;
    Ok(format!("logged in to {target} at {portal}"))
}
