//! Which processes hold files on a set of mount points, without `fuser`.
//!
//! `fuser` and `lsof` stat every open file and block forever on a dead
//! mount; reading the `/proc/<pid>/{fd/*,cwd,root}` links and `maps` only
//! asks the kernel for path names (d_path), which never touches the
//! filesystem. Paths are compared as the daemon's own namespace names them.

use std::path::Path;

use crate::host::HostPaths;

/// One process using a file under a watched mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub comm: String,
    pub path: String,
}

/// True when `path` is `mount` or below it.
pub fn is_under(path: &str, mount: &str) -> bool {
    let mount = mount.trim_end_matches('/');
    path == mount
        || path
            .strip_prefix(mount)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The file paths named in a `maps` text (6th column onwards).
pub fn parse_maps_paths(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(6, ' ');
            let path = fields.nth(5)?.trim_start();
            path.starts_with('/').then_some(path)
        })
        .collect()
}

/// Processes (other than this one) with a file, cwd, root or mapping under
/// any of `mounts`; at most `limit` are returned.
pub fn holders(paths: &HostPaths, mounts: &[String], limit: usize) -> Vec<Holder> {
    let own = std::process::id();
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir(paths.proc("")) else {
        return found;
    };
    let matches = |path: &str| mounts.iter().any(|m| is_under(path, m));
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own || found.len() >= limit {
            continue;
        }
        let base = entry.path();
        let hit = holding(&base, &matches);
        if let Some(path) = hit {
            let comm = std::fs::read_to_string(base.join("comm"))
                .map(|c| c.trim().to_string())
                .unwrap_or_default();
            found.push(Holder { pid, comm, path });
        }
    }
    found
}

fn holding(base: &Path, matches: &dyn Fn(&str) -> bool) -> Option<String> {
    let link = |p: &Path| {
        std::fs::read_link(p)
            .ok()
            .map(|t| t.to_string_lossy().into_owned())
    };
    for name in ["cwd", "root"] {
        if let Some(target) = link(&base.join(name)) {
            // Every process has root "/": only a chroot under a mount counts.
            if (name == "cwd" || target != "/") && matches(&target) {
                return Some(target);
            }
        }
    }
    if let Ok(fds) = std::fs::read_dir(base.join("fd")) {
        for fd in fds.flatten() {
            if let Some(target) = link(&fd.path()) {
                if matches(&target) {
                    return Some(target);
                }
            }
        }
    }
    let maps = std::fs::read_to_string(base.join("maps")).unwrap_or_default();
    parse_maps_paths(&maps)
        .into_iter()
        .find(|p| matches(p))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_match_respects_path_components() {
        assert!(is_under("/srv/data/file", "/srv/data"));
        assert!(is_under("/srv/data", "/srv/data/"));
        assert!(!is_under("/srv/database", "/srv/data"));
    }

    #[test]
    fn maps_paths_are_extracted() {
        let maps = concat!(
            "55d0c0a00000-55d0c0a02000 r--p 00000000 08:01 1234 /usr/bin/cat\n",
            "7f00 rw-p 00000000 00:00 0 \n",
            "7f01 r--p 00000000 fd:00 99 /srv/data/lib with space.so\n",
            "7ffd rw-p 00000000 00:00 0                          [stack]\n",
            "garbage\n",
        );
        assert_eq!(
            parse_maps_paths(maps),
            vec!["/usr/bin/cat", "/srv/data/lib with space.so"]
        );
    }

    #[test]
    fn finds_this_test_process_cwd_only_when_not_self() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .current_dir(dir.path())
            .spawn()
            .unwrap();
        let mounts = vec![dir.path().to_string_lossy().into_owned()];
        let found = holders(&HostPaths::default(), &mounts, 10);
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.iter().any(|h| h.pid == child.id()), "{found:?}");
        assert!(found.iter().all(|h| h.pid != std::process::id()));
    }
}
