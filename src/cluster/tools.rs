//! A `tunefs.ocfs2`, `fsck.ocfs2` or `mkfs.ocfs2` running on the host is
//! maintenance for the volume it works on: remounting that volume under it,
//! restarting the stack or logging its iSCSI session out would corrupt or
//! abort the operator's work. Found by scanning `<procfs>/*/cmdline` (the
//! host's /proc in a container), checked before each action.

use std::path::{Path, PathBuf};

use crate::actions::Plan;
use crate::host::HostPaths;
use crate::rules::guard::MaintenanceFlag;

/// The programs that make a volume "in maintenance".
pub const TOOLS: &[&str] = &["tunefs.ocfs2", "fsck.ocfs2", "mkfs.ocfs2"];

/// One running OCFS2 tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningTool {
    pub pid: u32,
    pub tool: &'static str,
    /// Its arguments after the program name.
    pub args: Vec<String>,
}

impl RunningTool {
    pub fn describe(&self) -> String {
        format!("{} {} (pid {})", self.tool, self.args.join(" "), self.pid)
    }
}

/// Every OCFS2 tool running on the host; unreadable entries (a process
/// that just ended, a kernel thread) are skipped.
pub fn running(paths: &HostPaths) -> Vec<RunningTool> {
    let Ok(entries) = std::fs::read_dir(paths.proc("")) else {
        return Vec::new();
    };
    let mut found: Vec<RunningTool> = entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let mut argv = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned());
            let program = argv.next()?;
            let name = Path::new(&program).file_name()?.to_str()?.to_string();
            let tool = TOOLS.iter().find(|t| **t == name)?;
            Some(RunningTool {
                pid,
                tool,
                args: argv.collect(),
            })
        })
        .collect();
    found.sort_by_key(|t| t.pid);
    found
}

/// Host path a mount source names: `UUID=`/`LABEL=` through /dev/disk,
/// symlinks resolved under the root; `None` when it cannot be resolved.
fn device_of(paths: &HostPaths, source: &str) -> Option<PathBuf> {
    let host = if let Some(uuid) = source.strip_prefix("UUID=") {
        format!("/dev/disk/by-uuid/{}", uuid.to_lowercase())
    } else if let Some(label) = source.strip_prefix("LABEL=") {
        format!("/dev/disk/by-label/{label}")
    } else {
        source.to_string()
    };
    std::fs::canonicalize(paths.root(&host)).ok()
}

/// Whether `tool` works on the volume mounted from `source`. A tool whose
/// device cannot be told apart counts (fails closed).
fn works_on(paths: &HostPaths, tool: &RunningTool, source: &str) -> bool {
    let target = device_of(paths, source);
    let devices: Vec<&String> = tool.args.iter().filter(|a| a.starts_with('/')).collect();
    if devices.is_empty() || target.is_none() {
        return true;
    }
    devices.iter().any(|arg| {
        arg.as_str() == source || std::fs::canonicalize(paths.root(arg.as_str())).ok() == target
    })
}

/// The hook the engine checks per action.
pub struct ToolGate {
    pub paths: HostPaths,
}

impl MaintenanceFlag for ToolGate {
    fn active(&self) -> Option<String> {
        None
    }

    /// A remount waits for a tool on its own volume; everything else that
    /// touches the stack or the storage waits for any tool.
    fn active_for(&self, plan: &Plan) -> Option<String> {
        let tools = running(&self.paths);
        let tool = match plan {
            Plan::Remount(spec) if spec.fstype == "ocfs2" => tools
                .iter()
                .find(|t| works_on(&self.paths, t, &spec.source)),
            Plan::Remount(_) => None,
            _ => tools.first(),
        }?;
        Some(format!("{} is running on the host", tool.describe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::MountSpec;

    fn host(dir: &Path) -> HostPaths {
        HostPaths::new(dir.to_path_buf(), None, None)
    }

    fn process(dir: &Path, pid: u32, argv: &[&str]) {
        let proc = dir.join(format!("proc/{pid}"));
        std::fs::create_dir_all(&proc).unwrap();
        let mut cmdline = argv.join("\0");
        cmdline.push('\0');
        std::fs::write(proc.join("cmdline"), cmdline).unwrap();
    }

    fn remount(source: &str) -> Plan {
        Plan::Remount(MountSpec {
            mountpoint: "/srv/a".into(),
            source: source.into(),
            fstype: "ocfs2".into(),
            ..MountSpec::default()
        })
    }

    #[test]
    fn a_tool_holds_its_own_volume_and_every_stack_action() {
        let dir = tempfile::tempdir().unwrap();
        process(dir.path(), 1, &["/sbin/init"]);
        process(
            dir.path(),
            40,
            &["/usr/sbin/tunefs.ocfs2", "-S", "/dev/sdb"],
        );
        std::fs::create_dir_all(dir.path().join("dev/disk/by-uuid")).unwrap();
        std::fs::write(dir.path().join("dev/sdb"), "").unwrap();
        std::fs::write(dir.path().join("dev/sdc"), "").unwrap();
        std::os::unix::fs::symlink("../../sdb", dir.path().join("dev/disk/by-uuid/abcd")).unwrap();
        let gate = ToolGate {
            paths: host(dir.path()),
        };
        let tools = running(&gate.paths);
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0].tool, "tunefs.ocfs2");
        let why = gate.active_for(&remount("UUID=ABCD")).unwrap();
        assert!(why.contains("tunefs.ocfs2 -S /dev/sdb (pid 40)"), "{why}");
        assert_eq!(
            gate.active_for(&remount("/dev/sdc")),
            None,
            "another volume"
        );
        let restart = Plan::RestartO2cb {
            cluster: "c".into(),
            volumes: Vec::new(),
            stop_services: Vec::new(),
            timeouts: None,
        };
        assert!(gate.active_for(&restart).is_some());
        std::fs::remove_dir_all(dir.path().join("proc/40")).unwrap();
        assert_eq!(gate.active_for(&restart), None);
    }
}
