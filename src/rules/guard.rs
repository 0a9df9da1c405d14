//! What may stop an action at the last moment, checked just before each
//! action (not once per tick): pause, maintenance flags, the storm brake on
//! the freshest snapshot, the startup grace; and the per-volume locks that
//! keep two rules from working on one volume at once.
//!
//! An o2cb restart can run for minutes; an operator who pauses meanwhile,
//! or a storm that starts meanwhile, must hold the next action of the same
//! tick, so `Gate::hold` reads them again for every action. A cluster-wide
//! maintenance flag (one day read from a shared file or the DLM) plugs in as
//! a `MaintenanceFlag`. `VolumeLocks` holds the volumes an action touches
//! for as long as its thread is alive, even past its deadline: a stuck
//! `umount2` on a volume must keep every other rule off that volume.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::actions::audit::AuditOutcome;
pub use crate::actions::claim::VolumeClaim;
use crate::actions::Plan;
use crate::host::HostPaths;

/// A source that can hold actions: cluster maintenance
/// (`cluster::maintenance`), a running OCFS2 tool (`cluster::tools`).
pub trait MaintenanceFlag: Send {
    /// `Some(why)` while every action must wait.
    fn active(&self) -> Option<String>;
    /// `Some(why)` while this action must wait (default: `active`).
    fn active_for(&self, _plan: &Plan) -> Option<String> {
        self.active()
    }
}

/// Set while the action thread that holds it is alive.
pub struct Held(Arc<AtomicBool>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Volumes claimed by running (or stuck) action threads.
#[derive(Default)]
pub struct VolumeLocks {
    held: Vec<(VolumeClaim, String, Arc<AtomicBool>)>,
}

impl VolumeLocks {
    /// Who holds a conflicting claim, if anyone (finished threads let go).
    pub fn busy(&mut self, claim: &VolumeClaim) -> Option<String> {
        self.held
            .retain(|(_, _, alive)| alive.load(Ordering::Acquire));
        self.held
            .iter()
            .find(|(other, _, _)| other.conflicts(claim))
            .map(|(_, owner, _)| owner.clone())
    }

    /// Claims the volumes; the claim lasts until the returned value drops
    /// (move it into the action's thread).
    pub fn claim(&mut self, claim: VolumeClaim, owner: String) -> Held {
        let alive = Arc::new(AtomicBool::new(true));
        self.held.push((claim, owner, Arc::clone(&alive)));
        Held(alive)
    }
}

/// A boot time further in the future than this is a broken clock or procfs,
/// not a reason to hold every action for days.
const MAX_BOOT_AHEAD: Duration = Duration::from_secs(3600);

/// Until when actions wait after boot and after the daemon started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupGrace {
    pub until: Option<Instant>,
}

impl StartupGrace {
    /// `grace` after boot or after `started`, whichever ends later;
    /// `boot` and `started` as the same wall clock. Zero grace: none.
    pub fn new(
        grace: Duration,
        started: Instant,
        started_wall: SystemTime,
        boot: Option<SystemTime>,
    ) -> Self {
        if grace.is_zero() {
            return Self { until: None };
        }
        let after_start = started.checked_add(grace).unwrap_or(started);
        // The boot normally precedes the start, so the start's grace ends
        // later; a boot time after the start (the host clock stepped back,
        // a procfs of another host) is waited for as well, within reason.
        let after_boot = boot
            .and_then(|b| b.duration_since(started_wall).ok())
            .filter(|ahead| *ahead <= MAX_BOOT_AHEAD)
            .and_then(|ahead| after_start.checked_add(ahead));
        Self {
            until: Some(after_boot.map_or(after_start, |b| b.max(after_start))),
        }
    }

    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }
}

/// The host's boot time: `btime` of `<procfs>/stat`, else now minus
/// `<procfs>/uptime`.
pub fn boot_time(paths: &HostPaths) -> Option<SystemTime> {
    if let Some(btime) = std::fs::read_to_string(paths.proc("stat"))
        .ok()
        .and_then(|text| parse_btime(&text))
    {
        // An outside number: a value past what a time can hold is no boot time.
        return SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(btime));
    }
    let uptime = std::fs::read_to_string(paths.proc("uptime")).ok()?;
    let seconds: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    SystemTime::now().checked_sub(Duration::try_from_secs_f64(seconds).ok()?)
}

fn parse_btime(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// Why an action must not start now, as the outcome to audit and a detail.
pub type HoldReason = (AuditOutcome, String);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::MountSpec;

    fn remount(mountpoint: &str, source: &str) -> Plan {
        Plan::Remount(MountSpec {
            mountpoint: mountpoint.into(),
            source: source.into(),
            fstype: "ocfs2".into(),
            options: "_netdev".into(),
            ..MountSpec::default()
        })
    }

    #[test]
    fn claims_conflict_on_a_shared_volume_or_the_whole_stack() {
        let a = VolumeClaim::of(&remount("/srv/a", "UUID=A"));
        let b = VolumeClaim::of(&remount("/srv/b", "UUID=B"));
        let unstack_a = VolumeClaim::of(&Plan::Unstack {
            mountpoint: "/srv/a".into(),
        });
        let restart = VolumeClaim::of(&Plan::RestartO2cb {
            cluster: "c".into(),
            volumes: Vec::new(),
            stop_services: Vec::new(),
            timeouts: None,
        });
        let relogin = VolumeClaim::of(&Plan::IscsiRelogin {
            session: "session1".into(),
            target: "t".into(),
            portal: "p".into(),
        });
        assert!(!a.conflicts(&b));
        assert!(a.conflicts(&unstack_a));
        assert!(restart.conflicts(&b));
        assert!(!restart.conflicts(&relogin));

        let mut locks = VolumeLocks::default();
        let held = locks.claim(a.clone(), "missing_mount//srv/a".into());
        assert_eq!(
            locks.busy(&unstack_a).as_deref(),
            Some("missing_mount//srv/a")
        );
        assert_eq!(locks.busy(&b), None);
        drop(held);
        assert_eq!(locks.busy(&unstack_a), None);
    }

    #[test]
    fn grace_ends_at_the_later_of_boot_and_start() {
        let start = Instant::now();
        let wall = SystemTime::now();
        let grace = Duration::from_secs(120);
        let long_up = StartupGrace::new(grace, start, wall, Some(wall - Duration::from_secs(3600)));
        assert_eq!(long_up.until, Some(start + grace));
        let clock_stepped =
            StartupGrace::new(grace, start, wall, Some(wall + Duration::from_secs(30)));
        assert_eq!(clock_stepped.until, Some(start + Duration::from_secs(150)));
        assert_eq!(
            StartupGrace::new(grace, start, wall, None).until,
            Some(start + grace)
        );
        assert_eq!(
            StartupGrace::new(Duration::ZERO, start, wall, None).until,
            None
        );
        assert_eq!(long_up.remaining(start + grace), None);
        assert_eq!(long_up.remaining(start), Some(grace));
    }

    #[test]
    fn boot_time_comes_from_btime_or_uptime() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths::new(dir.path().to_path_buf(), None, None);
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        assert_eq!(boot_time(&paths), None);
        std::fs::write(dir.path().join("proc/uptime"), "3600.50 7000.00\n").unwrap();
        let from_uptime = boot_time(&paths).unwrap();
        let expected = SystemTime::now() - Duration::from_millis(3_600_500);
        let diff = expected.duration_since(from_uptime).unwrap_or_default();
        assert!(diff < Duration::from_secs(2), "{diff:?}");
        std::fs::write(
            dir.path().join("proc/stat"),
            "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n",
        )
        .unwrap();
        assert_eq!(
            boot_time(&paths),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
    }
}
