//! Restart the o2cb cluster stack: the most dangerous action.
//!
//! `o2cb.init offline` refuses while a heartbeat region is active
//! (docs/interfaces.md §5.2), so a restart means: stop the configured services,
//! unmount every OCFS2 volume, restart the stack through the service manager
//! found on the host, mount the volumes again, start the services. The
//! service manager is detected, never assumed (§5.1–5.3): a systemd `o2cb`
//! unit on a systemd host, SysV `/etc/init.d/o2cb`, `o2cb.init`, or the bare
//! `o2cb register-cluster` / `start-heartbeat` sequence. Preconditions,
//! re-checked just before acting: a service manager exists and no process
//! holds a file on the volumes (`openfiles`, not `fuser`) unless services are
//! to be stopped first. Each tool runs with the action deadline.

use std::path::{Path, PathBuf};

use super::{command, openfiles, remount, ActionError, HostActions, MountSpec};

/// How the host runs o2cb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceManager {
    Systemd,
    /// An init script (`/etc/init.d/o2cb` or `o2cb.init`), host path.
    Script(PathBuf),
    /// Only the `o2cb` tool: unregister, register, start heartbeat.
    O2cbTool,
}

const UNIT_DIRS: [&str; 3] = [
    "/etc/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];
const SCRIPTS: [&str; 4] = [
    "/etc/init.d/o2cb",
    "/sbin/o2cb.init",
    "/usr/sbin/o2cb.init",
    "/usr/lib/ocfs2-tools/o2cb.init",
];
const TOOLS: [&str; 3] = ["/sbin/o2cb", "/usr/sbin/o2cb", "/usr/bin/o2cb"];

pub fn detect(host: &HostActions) -> Option<ServiceManager> {
    let exists = |p: &str| host.paths.root(p).exists();
    if exists("/run/systemd/system")
        && UNIT_DIRS
            .iter()
            .any(|d| exists(&format!("{d}/o2cb.service")))
    {
        return Some(ServiceManager::Systemd);
    }
    if let Some(script) = SCRIPTS.iter().find(|p| exists(p)) {
        return Some(ServiceManager::Script(PathBuf::from(script)));
    }
    TOOLS
        .iter()
        .any(|p| exists(p))
        .then_some(ServiceManager::O2cbTool)
}

/// A restart that passed its preconditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub manager: ServiceManager,
}

impl Ready {
    pub fn describe(&self) -> String {
        format!("restart o2cb via {:?}", self.manager)
    }
}

pub fn check(
    host: &HostActions,
    volumes: &[MountSpec],
    stop_services: &[String],
) -> Result<Ready, String> {
    let manager = detect(host)
        .ok_or("no o2cb service manager found (systemd unit, init script or o2cb tool)")?;
    if stop_services.is_empty() {
        let local: Vec<String> = volumes
            .iter()
            .map(|v| {
                host.paths
                    .root(&v.mountpoint)
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let holders = openfiles::holders(&host.paths, &local, 5);
        if let Some(first) = holders.first() {
            return Err(format!(
                "{} processes hold files on the volumes, e.g. pid {} ({}) on {}",
                holders.len(),
                first.pid,
                first.comm,
                first.path
            ));
        }
    }
    Ok(Ready { manager })
}

fn tool(host: &HostActions, path: &Path) -> String {
    if host.command_prefix.is_empty() {
        host.paths.root(path).to_string_lossy().into_owned()
    } else {
        path.to_string_lossy().into_owned()
    }
}

fn restart_stack(
    host: &HostActions,
    manager: &ServiceManager,
    cluster: &str,
) -> Result<(), String> {
    let run = |program: &str, args: &[&str]| {
        command::run_checked(&host.command_prefix, program, args, host.timeout).map(|_| ())
    };
    match manager {
        ServiceManager::Systemd => run("systemctl", &["restart", "o2cb.service"]),
        ServiceManager::Script(script) => {
            let script = tool(host, script);
            run(&script, &["offline"])?;
            run(&script, &["online"])
        }
        ServiceManager::O2cbTool => {
            // Unregistering fails when already offline: only the way back matters.
            let _ = run("o2cb", &["unregister-cluster", cluster]);
            run("o2cb", &["register-cluster", cluster])?;
            run("o2cb", &["start-heartbeat", cluster])
        }
    }
}

pub fn run(
    host: &HostActions,
    cluster: &str,
    volumes: &[MountSpec],
    stop_services: &[String],
) -> Result<String, ActionError> {
    let ready = check(host, volumes, stop_services).map_err(ActionError::PreconditionChanged)?;
    let mut steps = Vec::new();
    let sh = |program: &str, args: &[&str]| {
        command::run_checked(&host.command_prefix, program, args, host.timeout).map(|_| ())
    };
    for unit in stop_services {
        sh("systemctl", &["stop", unit]).map_err(ActionError::Failed)?;
        steps.push(format!("stopped {unit}"));
    }
    for volume in volumes {
        let target = tool(host, Path::new(&volume.mountpoint));
        sh("umount", &[&target])
            .map_err(|e| ActionError::Failed(format!("{e}; done so far: {}", steps.join(", "))))?;
        steps.push(format!("unmounted {}", volume.mountpoint));
    }
    let restarted = restart_stack(host, &ready.manager, cluster);
    // Mount back what was mounted even when the restart failed: a node left
    // without its volumes is worse than one with a half-working stack.
    let mut errors = Vec::new();
    if let Err(e) = &restarted {
        errors.push(format!("restart: {e}"));
    } else {
        steps.push("restarted o2cb".to_string());
    }
    for volume in volumes {
        match remount::run(host, volume) {
            Ok(_) => steps.push(format!("mounted {}", volume.mountpoint)),
            Err(e) => errors.push(format!("mount {}: {e}", volume.mountpoint)),
        }
    }
    for unit in stop_services {
        match sh("systemctl", &["start", unit]) {
            Ok(()) => steps.push(format!("started {unit}")),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(steps.join(", "))
    } else {
        Err(ActionError::Failed(format!(
            "{}; done: {}",
            errors.join("; "),
            steps.join(", ")
        )))
    }
}
