//! dm-multipath maps and their path states.
//!
//! Maps come from sysfs: `/sys/block/dm-N/dm/{name,uuid,suspended}` (a uuid
//! starting `mpath-` is a multipath map, libmultipath/devmapper.h) and the
//! members from `/sys/block/dm-N/slaves/`. Sysfs has no per-path dm state, so
//! path states come from `dmsetup status --target multipath` (drivers/md/
//! dm-mpath.c `multipath_status`, docs/interfaces.md §6.7), run with a
//! timeout and only against the real host root; otherwise each path's state is
//! its SCSI device state (`running` = active).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::sysfs::{attr, list_dir};
use crate::host::HostPaths;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Map {
    /// Kernel name, `dm-0`.
    pub dm: String,
    /// Alias, `mpatha`.
    pub name: String,
    /// WWID from the dm uuid (`mpath-<wwid>`).
    pub wwid: String,
    pub suspended: Option<bool>,
    /// Member block devices (`sdb`) with their `major:minor`.
    pub slaves: Vec<(String, String)>,
}

/// Every multipath map on the host.
pub fn read_maps(paths: &HostPaths) -> Vec<Map> {
    let block = paths.sys("block");
    list_dir(&block)
        .into_iter()
        .filter(|n| n.starts_with("dm-"))
        .filter_map(|dm| {
            let dir = block.join(&dm);
            let wwid = attr(&dir.join("dm"), "uuid")?
                .strip_prefix("mpath-")?
                .to_string();
            let slaves = list_dir(&dir.join("slaves"))
                .into_iter()
                .map(|s| {
                    let number = attr(&dir.join("slaves").join(&s), "dev").unwrap_or_default();
                    (s, number)
                })
                .collect();
            Some(Map {
                name: attr(&dir.join("dm"), "name").unwrap_or_else(|| dm.clone()),
                suspended: attr(&dir.join("dm"), "suspended").map(|s| s == "1"),
                dm,
                wwid,
                slaves,
            })
        })
        .collect()
}

/// One path in a map's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathStatus {
    /// `major:minor`.
    pub device: String,
    pub active: bool,
    pub fail_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MapStatus {
    pub name: String,
    /// I/O is being queued (no usable path and queueing on).
    pub queueing: bool,
    pub paths: Vec<PathStatus>,
}

/// Parses `dmsetup status --target multipath` output, lines
/// `<name>: <start> <len> multipath <status>` where status is
/// `<#feature args> <args…> <#hw handler args> <args…> <#groups> <next group>`
/// then per group `<A|E|D> <#selector args> <args…> <#paths> <#path args>`
/// and per path `<maj:min> <A|F> <fail count> <path args…>`.
/// A line that does not follow this is skipped, not guessed at.
pub fn parse_dmsetup_status(text: &str) -> Vec<MapStatus> {
    text.lines().filter_map(parse_status_line).collect()
}

fn parse_status_line(line: &str) -> Option<MapStatus> {
    let (name, rest) = line.split_once(": ")?;
    let mut tokens = rest.split_whitespace();
    tokens.next()?; // start sector
    tokens.next()?; // length
    if tokens.next()? != "multipath" {
        return None;
    }
    let count = |t: Option<&str>| t?.parse::<usize>().ok();
    let features = count(tokens.next())?;
    let feature_args: Vec<&str> = tokens.by_ref().take(features).collect();
    if feature_args.len() != features {
        return None;
    }
    // Info features: `<queue_io> <pg_init_count>`.
    let queueing = feature_args.first() == Some(&"1");
    let mut next = || tokens.next();
    let handler_args = count(next())?;
    for _ in 0..handler_args {
        next()?;
    }
    let groups = count(next())?;
    let _next_group = count(next())?;
    let mut paths = Vec::new();
    for _ in 0..groups {
        if !matches!(next()?, "A" | "E" | "D") {
            return None;
        }
        let selector_args = count(next())?;
        for _ in 0..selector_args {
            next()?;
        }
        let group_paths = count(next())?;
        let path_args = count(next())?;
        for _ in 0..group_paths {
            let device = next()?.to_string();
            let active = match next()? {
                "A" => true,
                "F" => false,
                _ => return None,
            };
            let fail_count = next()?.parse().ok()?;
            for _ in 0..path_args {
                next()?;
            }
            paths.push(PathStatus {
                device,
                active,
                fail_count,
            });
        }
    }
    Some(MapStatus {
        name: name.trim().to_string(),
        queueing,
        paths,
    })
}

/// Why path states did not come from dmsetup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DmsetupSkip {
    /// Reading a tree other than the host's own root: the host's tool would
    /// describe the wrong machine.
    NotHostRoot,
    NotInstalled,
    Timeout,
    Failed,
}

impl DmsetupSkip {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotHostRoot => "not_host_root",
            Self::NotInstalled => "not_installed",
            Self::Timeout => "timeout",
            Self::Failed => "failed",
        }
    }
}

const DMSETUP_LOCATIONS: [&str; 3] = ["/usr/sbin/dmsetup", "/sbin/dmsetup", "/usr/bin/dmsetup"];

/// Marks as queueing every map of `statuses` that has no active path while
/// its table (`dmsetup table --target multipath`, `table`) has the
/// `queue_if_no_path` feature: dm-mpath then holds every I/O. The status
/// line alone cannot say so: its first info field is `queue_io`, I/O held
/// for a path-group init (drivers/md/dm-mpath.c `multipath_status`), which
/// the lab saw stay 0 while a map with both paths lost queued every write.
pub fn mark_queueing_without_path(statuses: &mut [MapStatus], table: &str) {
    let queue_if_no_path: Vec<&str> = table
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(": ")?;
            let mut tokens = rest.split_whitespace().skip(2);
            if tokens.next()? != "multipath" {
                return None;
            }
            let features: usize = tokens.next()?.parse().ok()?;
            tokens
                .take(features)
                .any(|f| f == "queue_if_no_path")
                .then_some(name.trim())
        })
        .collect();
    for status in statuses {
        if !status.paths.iter().any(|p| p.active)
            && queue_if_no_path.contains(&status.name.as_str())
        {
            status.queueing = true;
        }
    }
}

/// Runs `dmsetup status --target multipath` when the root is the host's own.
pub fn dmsetup_status(paths: &HostPaths, timeout: Duration) -> Result<String, DmsetupSkip> {
    dmsetup(paths, "status", timeout)
}

/// Runs `dmsetup table --target multipath` (the maps' features).
pub fn dmsetup_table(paths: &HostPaths, timeout: Duration) -> Result<String, DmsetupSkip> {
    dmsetup(paths, "table", timeout)
}

fn dmsetup(paths: &HostPaths, command: &str, timeout: Duration) -> Result<String, DmsetupSkip> {
    if paths.rootfs() != Path::new("/") {
        return Err(DmsetupSkip::NotHostRoot);
    }
    let tool = DMSETUP_LOCATIONS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or(DmsetupSkip::NotInstalled)?;
    run_with_timeout(
        Command::new(tool).args([command, "--target", "multipath"]),
        timeout,
    )
}

/// Runs a child without a shell, killing it when it outlives `timeout`
/// (dmsetup can block on a suspended map).
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> Result<String, DmsetupSkip> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            tracing::warn!(error = %e, "Cannot start dmsetup.");
            DmsetupSkip::Failed
        })?;
    // Drained on its own thread so a large output cannot fill the pipe and
    // stall the child until the timeout.
    let reader = child.stdout.take().map(|mut stdout| {
        std::thread::spawn(move || {
            let mut out = String::new();
            let _ = stdout.read_to_string(&mut out);
            out
        })
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!(
                    timeout_ms = timeout.as_millis() as u64,
                    "Killed dmsetup after its timeout."
                );
                return Err(DmsetupSkip::Timeout);
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot wait for dmsetup.");
                let _ = child.kill();
                let _ = child.wait();
                return Err(DmsetupSkip::Failed);
            }
        }
    };
    let out = reader.and_then(|r| r.join().ok()).unwrap_or_default();
    if status.success() {
        Ok(out)
    } else {
        tracing::warn!(status = %status, "dmsetup status failed.");
        Err(DmsetupSkip::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        // service-time: 2 path args; round-robin: 0; queue-length: 1.
        let text =
            "mpatha: 0 2097152 multipath 2 0 0 0 2 1 A 0 1 2 8:16 A 0 0 1 E 0 1 2 8:32 F 3 0 1\n\
                    mpathb: 0 2097152 multipath 2 1 0 0 1 1 A 0 2 0 8:48 F 1 8:64 F 2\n\
                    mpathc: 0 10 multipath 2 0 0 1 x 1 1 E 0 1 1 8:80 A 0 4\n";
        let maps = parse_dmsetup_status(text);
        assert_eq!(maps.len(), 3);
        assert_eq!(maps[0].name, "mpatha");
        assert!(!maps[0].queueing);
        assert_eq!(
            maps[0].paths,
            vec![
                PathStatus {
                    device: "8:16".into(),
                    active: true,
                    fail_count: 0
                },
                PathStatus {
                    device: "8:32".into(),
                    active: false,
                    fail_count: 3
                },
            ]
        );
        assert!(maps[1].queueing);
        assert_eq!(maps[1].paths.iter().filter(|p| !p.active).count(), 2);
        assert_eq!(maps[2].paths.len(), 1);
    }

    #[test]
    fn no_path_left_with_queue_if_no_path_is_queueing() {
        // mpatha as the lab's n1 printed it with both portals down
        // (multipath_all_paths_lost): queue_io 0 while every write queued.
        let mut maps = parse_dmsetup_status(
            "mpatha: 0 1048576 multipath 2 0 0 0 1 1 E 0 2 2 8:0 F 1 0 1 8:16 F 1 0 1 \n\
             mpathb: 0 1048576 multipath 2 0 0 0 1 1 E 0 2 2 8:32 F 1 0 0 8:48 F 1 0 0\n\
             mpathc: 0 1048576 multipath 2 0 0 0 1 1 A 0 2 2 8:64 A 0 0 0 8:80 F 1 0 0\n",
        );
        assert!(maps.iter().all(|m| !m.queueing));
        mark_queueing_without_path(
            &mut maps,
            "mpatha: 0 1048576 multipath 1 queue_if_no_path 0 1 1 service-time 0 2 2 8:0 1 1 8:16 1 1 \n\
             mpathb: 0 1048576 multipath 0 0 1 1 service-time 0 2 1 8:32 1 8:48 1\n\
             mpathc: 0 1048576 multipath 1 queue_if_no_path 0 1 1 service-time 0 2 1 8:64 1 8:80 1\n\
             garbage\n",
        );
        // No path and queueing on; no path but failing; a path left.
        let queueing: Vec<bool> = maps.iter().map(|m| m.queueing).collect();
        assert_eq!(queueing, vec![true, false, false]);
    }

    #[test]
    fn garbage_lines_are_skipped() {
        for line in [
            "No devices found",
            "",
            "vg-root: 0 100 linear ",
            "mpatha: 0 2097152 multipath 2 0",
            "mpatha: 0 2097152 multipath 2 0 0 0 1 1 X 0 1 0 8:16 A 0",
            "mpatha: 0 2097152 multipath 2 0 0 0 1 1 A 0 1 0 8:16 Q 0",
            "mpatha: 0 2097152 multipath 2 0 0 0 1 1 A 0 2 0 8:16 A 0",
        ] {
            assert!(parse_dmsetup_status(line).is_empty(), "{line:?}");
        }
    }

    #[test]
    fn child_timeout_kills() {
        let started = Instant::now();
        let result = run_with_timeout(Command::new("sleep").arg("5"), Duration::from_millis(100));
        assert_eq!(result, Err(DmsetupSkip::Timeout));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            run_with_timeout(Command::new("echo").arg("hi"), Duration::from_secs(2)),
            Ok("hi\n".to_string())
        );
    }

    #[test]
    fn never_runs_against_a_fixture_root() {
        let paths = HostPaths::new("/tmp/fixture".into(), None, None);
        assert_eq!(
            dmsetup_status(&paths, Duration::from_secs(1)),
            Err(DmsetupSkip::NotHostRoot)
        );
    }
}
