//! Remount: mount a missing expected volume again, with its configured options.
//!
//! Preconditions, re-read on the host just before acting: nothing is mounted
//! on the path (never on top of an existing mount), the mount point exists,
//! the device is present (`UUID=`/`LABEL=` resolved through
//! `/dev/disk/by-uuid|by-label`, udev's links), and for OCFS2 the cluster
//! stack is registered in configfs (`mount.ocfs2` fails without it). The
//! mount itself is `mount(8)` with an argument vector and a deadline.

use std::path::{Path, PathBuf};

use super::{command, ActionError, HostActions, MountSpec};

/// A remount that passed its preconditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The device (or virtual source) handed to mount(8).
    pub device: String,
    pub target: String,
    pub fstype: String,
    pub options: String,
}

impl Ready {
    pub fn describe(&self) -> String {
        format!(
            "mount -t {} -o {} {} {}",
            self.fstype, self.options, self.device, self.target
        )
    }
}

/// Where udev links a `TAG=value` source, or `None` for other sources.
pub fn by_tag_link(source: &str) -> Option<PathBuf> {
    let (tag, value) = source.split_once('=')?;
    let dir = match tag {
        "UUID" => "by-uuid",
        "LABEL" => "by-label",
        "PARTUUID" => "by-partuuid",
        "PARTLABEL" => "by-partlabel",
        _ => return None,
    };
    let value = value.trim_matches('"');
    // udev escapes '/' in labels as \x2f.
    let value = value.replace('/', "\\x2f");
    Some(Path::new("/dev/disk").join(dir).join(value))
}

/// A path as the tools we run see it: the host's own name when they run in
/// PID 1's namespaces, the root-prefixed one otherwise.
fn tool_path(host: &HostActions, host_path: &Path) -> String {
    if host.command_prefix.is_empty() {
        host.paths.root(host_path).to_string_lossy().into_owned()
    } else {
        host_path.to_string_lossy().into_owned()
    }
}

fn resolve_device(host: &HostActions, source: &str) -> Result<String, String> {
    let link = match by_tag_link(source) {
        Some(link) => link,
        None if source.starts_with('/') => PathBuf::from(source),
        // tmpfs, none, ...: no device to look for.
        None => return Ok(source.to_string()),
    };
    let local = host.paths.root(&link);
    match std::fs::canonicalize(&local) {
        Ok(device) => Ok(tool_path(host, &host.paths.host_path(&device))),
        Err(e) => Err(format!(
            "device {source} not present ({}: {e})",
            link.display()
        )),
    }
}

/// True when a cluster is registered in configfs (o2cb online).
pub fn cluster_registered(host: &HostActions) -> bool {
    std::fs::read_dir(host.paths.sys("kernel/config/cluster"))
        .map(|mut dir| dir.any(|e| e.is_ok_and(|e| e.path().is_dir())))
        .unwrap_or(false)
}

pub fn check(host: &HostActions, spec: &MountSpec) -> Result<Ready, String> {
    let local = super::unstack::local_path(host, &spec.mountpoint);
    let table = super::unstack::read_own_table(host)?;
    let local_name = local.to_string_lossy();
    if let Some(existing) = table.entries.iter().find(|e| e.mount_point == local_name) {
        return Err(format!(
            "{} is mounted ({} {}); never mount on top",
            spec.mountpoint, existing.fstype, existing.source
        ));
    }
    if !local.is_dir() {
        return Err(format!(
            "mount point {} is not a directory",
            spec.mountpoint
        ));
    }
    if spec.fstype == "ocfs2" && !cluster_registered(host) {
        return Err("the o2cb cluster stack is offline".to_string());
    }
    let device = resolve_device(host, &spec.source)?;
    Ok(Ready {
        device,
        target: tool_path(host, Path::new(&spec.mountpoint)),
        fstype: spec.fstype.clone(),
        options: spec.options.clone(),
    })
}

pub fn mount_args(ready: &Ready) -> Vec<&str> {
    let mut args = vec!["-t", ready.fstype.as_str()];
    if !ready.options.is_empty() {
        args.extend(["-o", ready.options.as_str()]);
    }
    args.extend([ready.device.as_str(), ready.target.as_str()]);
    args
}

pub fn run(host: &HostActions, spec: &MountSpec) -> Result<String, ActionError> {
    let ready = check(host, spec).map_err(ActionError::PreconditionChanged)?;
    command::run_checked(
        &host.command_prefix,
        "mount",
        &mount_args(&ready),
        host.timeout,
    )
    .map_err(ActionError::Failed)?;
    Ok(ready.describe())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_map_to_udev_links() {
        assert_eq!(
            by_tag_link("UUID=1b7c3d2e").unwrap(),
            PathBuf::from("/dev/disk/by-uuid/1b7c3d2e")
        );
        assert_eq!(
            by_tag_link("LABEL=\"a/b\"").unwrap(),
            PathBuf::from("/dev/disk/by-label/a\\x2fb")
        );
        assert_eq!(by_tag_link("/dev/sdb"), None);
        assert_eq!(by_tag_link("tmpfs"), None);
        assert_eq!(by_tag_link("FOO=bar"), None);
    }

    #[test]
    fn mount_args_skip_empty_options() {
        let ready = Ready {
            device: "/dev/sdb".into(),
            target: "/srv".into(),
            fstype: "ocfs2".into(),
            options: String::new(),
        };
        assert_eq!(mount_args(&ready), vec!["-t", "ocfs2", "/dev/sdb", "/srv"]);
    }
}
