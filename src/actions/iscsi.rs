//! iSCSI re-login and the leaked-heartbeat kill: small tool-driven actions.
//!
//! Re-login: `iscsiadm -m node -T <target> -p <portal> --logout` then
//! `--login`, each with the action deadline, after re-reading the session
//! state in sysfs (`/sys/class/iscsi_session/<session>/state`, docs/interfaces.md
//! §6.1). Leaked heartbeat: `ocfs2_hb_ctl -K -u <UUID> ocfs2`, the call the
//! kernel itself makes at unmount (§1.4), after checking that the region is
//! still in configfs and nothing mounts its volume.

use super::{command, ActionError, Checked, HostActions};

pub fn check_session(host: &HostActions, session: &str) -> Checked {
    let path = host
        .paths
        .sys(format!("class/iscsi_session/{session}/state"));
    match std::fs::read_to_string(&path) {
        Ok(state) if matches!(state.trim(), "FAILED" | "FREE") => {
            Ok(format!("log {session} ({}) out and in again", state.trim()))
        }
        Ok(state) => Err(format!("{session} is {}", state.trim())),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
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
    .map_err(ActionError::Failed)?;
    Ok(format!("logged in to {target} at {portal}"))
}

fn region_dirs(host: &HostActions, uuid: &str) -> Vec<std::path::PathBuf> {
    let Ok(clusters) = std::fs::read_dir(host.paths.sys("kernel/config/cluster")) else {
        return Vec::new();
    };
    clusters
        .flatten()
        .map(|c| c.path().join("heartbeat").join(uuid))
        .filter(|p| p.is_dir())
        .collect()
}

pub fn check_leaked_region(host: &HostActions, uuid: &str) -> Checked {
    if region_dirs(host, uuid).is_empty() {
        return Err(format!("heartbeat region {uuid} is gone"));
    }
    let table = super::unstack::read_own_table(host)?;
    if table.entries.iter().any(|e| e.fstype == "ocfs2") {
        // The region UUID is the volume's: refuse while any OCFS2 volume is
        // mounted rather than guess which device carries it.
        let mounted = table.entries.iter().filter(|e| e.fstype == "ocfs2").count();
        return Err(format!(
            "{mounted} ocfs2 mounts present; region may be in use"
        ));
    }
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
