//! A kubelet-like host inside a private mount namespace: one volume staged
//! under `/var/lib/kubelet/plugins` and bind-mounted on pod volume paths
//! under `/var/lib/kubelet/pods`, where the default
//! `mounts.mount_points_exclude` applies. `/var/lib` is a fresh tmpfs first,
//! so nothing of the host's is touched (the namespace dies with the test).

use std::path::PathBuf;

use super::{bind, mount_tmpfs};

pub const VOLUME: &str = "pvc-00000000-0000-0000-0000-00000000000f";

pub struct KubeletHost {
    pub staged: PathBuf,
    pub pods: Vec<PathBuf>,
}

/// Only inside `enter_private_namespace`.
pub fn kubelet_host(pods: usize) -> KubeletHost {
    let var_lib = PathBuf::from("/var/lib");
    mount_tmpfs(&var_lib);
    let staged = var_lib.join(format!(
        "kubelet/plugins/kubernetes.io/csi/ocfs2.csi/{VOLUME}/globalmount"
    ));
    std::fs::create_dir_all(&staged).unwrap();
    mount_tmpfs(&staged);
    let pods = (0..pods)
        .map(|i| {
            let path = var_lib.join(format!(
                "kubelet/pods/{i:08x}-0000-4000-8000-000000000000/volumes/kubernetes.io~csi/{VOLUME}/mount"
            ));
            std::fs::create_dir_all(&path).unwrap();
            bind(&staged, &path);
            path
        })
        .collect();
    KubeletHost { staged, pods }
}
