//! Remount: mount a missing expected volume again, with its configured options.
//!
//! Preconditions, re-read on the host just before acting: nothing is mounted
//! on the path (never on top of an existing mount), the mount point exists,
//! and the device is the right one. The mount point's symlinks are resolved
//! inside the host root (`host::resolve_in_root`), as mount(8) on the host
//! would follow them, so a link to a mounted directory is seen as mounted.
//! For OCFS2 the cluster stack must be registered in configfs (`mount.ocfs2`
//! fails without it) and the device is found by reading the superblocks of
//! the host's block devices (`identity.rs`): the volume must be on exactly
//! one device (a multipath map counts once), carry the expected UUID, and a
//! kernel name as source is refused unless allowed. Other types resolve
//! `UUID=`/`LABEL=` through udev's `/dev/disk/by-uuid|by-label` links. The
//! mount itself is `mount(8)` with an argument vector and a deadline, on the
//! device that was checked, never on a name mount(8) would resolve again.

use std::path::{Path, PathBuf};

use super::{
    command, identity, not_mine, Action, ActionError, Checked, HostActions, MountSpec, Plan,
    VolumeClaim,
};
use crate::host::resolve_in_root;

/// Mounts `Plan::Remount`'s filesystem again.
pub struct Remount;

impl Action for Remount {
    fn name(&self) -> &'static str {
        "remount"
    }

    fn check(&self, host: &HostActions, plan: &Plan) -> Checked {
        let Plan::Remount(spec) = plan else {
            return Err(not_mine(self, plan));
        };
        Ok(check(host, spec).map(|ready| ready.describe())?)
    }

    fn run(&self, host: &HostActions, plan: &Plan) -> Result<String, ActionError> {
        let Plan::Remount(spec) = plan else {
            return Err(ActionError::Failed(not_mine(self, plan)));
        };
        run(host, spec)
    }

    fn claim(&self, plan: &Plan) -> VolumeClaim {
        let Plan::Remount(spec) = plan else {
            return VolumeClaim::keys(Vec::new()).whole_stack();
        };
        let claim = VolumeClaim::keys(vec![
            VolumeClaim::mount(&spec.mountpoint),
            format!("source:{}", spec.source),
        ]);
        if spec.fstype == "ocfs2" {
            claim.on_stack()
        } else {
            claim
        }
    }

    fn disruptive(&self) -> bool {
        false
    }

    /// Mounting takes nothing away.
    fn destructive(&self) -> bool {
        false
    }

    fn held_by_partition(&self) -> bool {
        false
    }

    fn needs_lease(&self, serialize_remounts: bool) -> bool {
        serialize_remounts
    }

    fn takes_down<'p>(&self, _plan: &'p Plan) -> Option<Vec<&'p str>> {
        None
    }
}

/// Why a filesystem is not mounted again.
#[derive(Debug, thiserror::Error)]
pub enum RemountError {
    #[error("cannot resolve {}: {error}", link.display())]
    Unresolved {
        link: PathBuf,
        error: std::io::Error,
    },
    #[error("device {source_name} not present ({}: {error})", link.display())]
    NoDevice {
        source_name: String,
        link: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot resolve mount point {mountpoint}: {error}")]
    MountPoint {
        mountpoint: String,
        error: std::io::Error,
    },
    #[error(transparent)]
    Table(#[from] super::unstack::TableError),
    #[error("{shown} is mounted ({fstype} {device}); never mount on top")]
    Occupied {
        shown: String,
        fstype: String,
        device: String,
    },
    #[error("mount point {0} is not a directory")]
    NotADirectory(String),
    #[error("the o2cb cluster stack is offline")]
    StackOffline,
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
}

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

fn resolve_device(host: &HostActions, source: &str) -> Result<String, RemountError> {
    let link = match by_tag_link(source) {
        Some(link) => link,
        None if source.starts_with('/') => PathBuf::from(source),
        // tmpfs, none, ...: no device to look for.
        None => return Ok(source.to_string()),
    };
    let device = match resolve_in_root(&host.paths, &link) {
        Ok(device) => device,
        Err(error) => return Err(RemountError::Unresolved { link, error }),
    };
    match std::fs::metadata(host.paths.root(&device)) {
        Ok(_) => Ok(tool_path(host, &device)),
        Err(error) => Err(RemountError::NoDevice {
            source_name: source.to_string(),
            link,
            error,
        }),
    }
}

/// True when a cluster is registered in configfs (o2cb online).
pub fn cluster_registered(host: &HostActions) -> bool {
    std::fs::read_dir(host.paths.sys("kernel/config/cluster"))
        .map(|mut dir| dir.any(|e| e.is_ok_and(|e| e.path().is_dir())))
        .unwrap_or(false)
}

pub fn check(host: &HostActions, spec: &MountSpec) -> Result<Ready, RemountError> {
    let mountpoint =
        resolve_in_root(&host.paths, Path::new(&spec.mountpoint)).map_err(|error| {
            RemountError::MountPoint {
                mountpoint: spec.mountpoint.clone(),
                error,
            }
        })?;
    let shown = if mountpoint == Path::new(&spec.mountpoint) {
        spec.mountpoint.clone()
    } else {
        format!("{} (-> {})", spec.mountpoint, mountpoint.display())
    };
    let local = host.paths.root(&mountpoint);
    let table = super::unstack::read_own_table(host)?;
    let local_name = local.to_string_lossy();
    if let Some(existing) = table.entries.iter().find(|e| e.mount_point == local_name) {
        return Err(RemountError::Occupied {
            shown,
            fstype: existing.fstype.clone(),
            device: existing.source.clone(),
        });
    }
    if !local.is_dir() {
        return Err(RemountError::NotADirectory(shown));
    }
    let device = if spec.fstype == "ocfs2" {
        if !cluster_registered(host) {
            return Err(RemountError::StackOffline);
        }
        let carrier = identity::locate(
            host,
            &spec.source,
            spec.uuid.as_deref(),
            spec.allow_kernel_name,
        )?;
        tool_path(host, &Path::new("/dev").join(&carrier.name))
    } else {
        resolve_device(host, &spec.source)?
    };
    Ok(Ready {
        device,
        target: tool_path(host, &mountpoint),
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
    let ready = check(host, spec).map_err(ActionError::changed)?;
    command::run_checked(
        &host.command_prefix,
        "mount",
        &mount_args(&ready),
        host.timeout,
    )
    .map_err(ActionError::failed)?;
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
