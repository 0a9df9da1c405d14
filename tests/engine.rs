//! The rule engine's guard rails on fixture snapshots with a recording
//! executor: `for`, cooldown, backoff and give-up, budget, pause, storm
//! brake, resolution. No root needed: the host is a fixture tree and the
//! executor never touches it.

mod engine_fixture;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine_fixture::{count, fixture, snapshot_with, with_section};
use ocfs2_watchdog::actions::{Executor, Outcome, Plan};
use ocfs2_watchdog::collector::heartbeat::{HeartbeatFacts, RegionHeartbeat};
use ocfs2_watchdog::collector::kernel_log::KernelLogFacts;
use ocfs2_watchdog::collector::storage::IscsiFacts;
use ocfs2_watchdog::collector::Facts;
use ocfs2_watchdog::config::StateDir;
use ocfs2_watchdog::kernel_log::classify::Event;
use ocfs2_watchdog::kernel_log::state::RecentEvent;
use ocfs2_watchdog::rules::config::Mode;
use ocfs2_watchdog::rules::control::PAUSE_FILE;
use ocfs2_watchdog::rules::Engine;

#[test]
fn pending_until_for_then_cooldown_then_give_up() {
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        c.remediation.actions_per_hour = 100;
    });
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    let report = f.engine.tick(&snapshot, t0);
    assert_eq!(f.calls(), 0, "pending: nothing before `for`");
    assert!(report.targets.iter().all(|t| t.state == "pending"));
    let rendered = snapshot_with(report).rendered_text().to_string();
    assert!(
        rendered.contains(
            "ocfs2_watchdog_rule_firing{rule=\"duplicate_mount_layers\",target=\"/srv/a\"} 0"
        ),
        "{rendered}"
    );

    f.engine.tick(&snapshot, t0 + Duration::from_secs(10));
    assert_eq!(f.calls(), 3, "one action per firing target");
    for s in [11, 20, 30] {
        f.engine.tick(&snapshot, t0 + Duration::from_secs(s));
    }
    assert_eq!(f.calls(), 3, "cooldown holds");
    f.engine.tick(&snapshot, t0 + Duration::from_secs(71));
    f.engine.tick(&snapshot, t0 + Duration::from_secs(132));
    assert_eq!(f.calls(), 9, "acted again after each cooldown");
    let report = f.engine.tick(&snapshot, t0 + Duration::from_secs(200));
    assert_eq!(f.calls(), 9, "gave up after max_attempts");
    assert!(report.targets.iter().any(|t| t.state == "gave_up"));
    assert_eq!(
        f.outcomes("/srv/a"),
        [
            "started",
            "success",
            "skipped_cooldown",
            "started",
            "success",
            "started",
            "success",
            "gave_up"
        ]
    );
    assert_eq!(count(&report, "gave_up"), 3);

    // Resuming clears no give-up; an operator's reset does.
    f.control.resume("test").unwrap();
    f.engine.tick(&snapshot, t0 + Duration::from_secs(201));
    assert_eq!(f.calls(), 9, "resume is not a reset");
    f.control
        .reset(
            "duplicate_mount_layers",
            Some("/srv/a".into()),
            "127.0.0.1:1",
        )
        .unwrap();
    f.engine.tick(&snapshot, t0 + Duration::from_secs(202));
    assert_eq!(f.calls(), 10, "the reset target only");
    let reset = f
        .audit()
        .into_iter()
        .find(|r| r.outcome == "reset")
        .unwrap();
    assert_eq!(reset.caller.as_deref(), Some("127.0.0.1:1"));
    assert_eq!(reset.target, "/srv/a");
}

#[test]
fn failures_back_off_exponentially_and_give_up() {
    let mut f = fixture(Outcome::Failed("mount: bad superblock".into()), |c| {
        c.remediation.actions_per_hour = 100;
    });
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    let mut calls_at = Vec::new();
    for s in 0..=120 {
        let before = f.calls();
        f.engine.tick(&snapshot, t0 + Duration::from_secs(s));
        if f.calls() > before {
            calls_at.push(s);
        }
    }
    // 10 s, then +10 s, then +20 s; then give up (max_attempts = 3).
    assert_eq!(calls_at, [10, 20, 40]);
    let outcomes = f.outcomes("/srv/b");
    assert_eq!(outcomes.iter().filter(|o| *o == "failed").count(), 3);
    assert_eq!(outcomes.last().map(String::as_str), Some("gave_up"));
    let failed = f
        .audit()
        .into_iter()
        .find(|r| r.outcome == "failed")
        .unwrap();
    assert_eq!(failed.error.as_deref(), Some("mount: bad superblock"));
}

#[test]
fn the_hourly_budget_caps_actions() {
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        c.remediation.actions_per_hour = 2;
        let rule = c
            .remediation
            .rules
            .get_mut("duplicate_mount_layers")
            .unwrap();
        rule.actions_per_hour = Some(2);
    });
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    f.engine.tick(&snapshot, t0);
    let report = f.engine.tick(&snapshot, t0 + Duration::from_secs(10));
    assert_eq!(f.calls(), 2);
    assert_eq!(report.budget_remaining, 0);
    assert_eq!(count(&report, "skipped_budget"), 1);
    let text = snapshot_with(report).rendered_text().to_string();
    assert!(
        text.contains("ocfs2_watchdog_action_budget_remaining 0"),
        "{text}"
    );
    // An hour later the budget is back.
    f.engine.tick(&snapshot, t0 + Duration::from_secs(3611));
    assert_eq!(f.calls(), 4, "the budget refills after an hour");
}

#[test]
fn the_pause_file_stops_every_action() {
    let mut f = fixture(Outcome::Success("done".into()), |_| {});
    std::fs::create_dir_all(&f.config.state_dir.0).unwrap();
    let pause_file = f.config.state_dir.0.join(PAUSE_FILE);
    std::fs::write(&pause_file, "").unwrap();
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    f.engine.tick(&snapshot, t0);
    let report = f.engine.tick(&snapshot, t0 + Duration::from_secs(15));
    assert_eq!(f.calls(), 0);
    assert!(report.paused);
    // The age counts from when the pause was set, not from this engine.
    assert!(
        (report.paused_seconds - 15.0).abs() < 1.0,
        "{}",
        report.paused_seconds
    );
    assert_eq!(count(&report, "skipped_paused"), 3);
    let text = snapshot_with(report).rendered_text().to_string();
    assert!(text.contains("ocfs2_watchdog_paused 1"), "{text}");
    f.control.resume("test").unwrap();
    f.engine.tick(&snapshot, t0 + Duration::from_secs(16));
    assert_eq!(f.calls(), 3);
}

#[test]
fn the_storm_brake_holds_on_hung_heartbeat_or_dead_sessions() {
    let mut f = fixture(Outcome::Success("done".into()), |_| {});
    let mut snapshot = f.snapshot();
    let hung = |ratio| RegionHeartbeat {
        uuid: "0A1B".into(),
        ratio: Some(ratio),
        ..RegionHeartbeat::default()
    };
    let heartbeat = HeartbeatFacts {
        regions: vec![hung(0.8), hung(0.6)],
        ..HeartbeatFacts::default()
    };
    with_section(
        &mut snapshot,
        "heartbeat",
        Facts::Heartbeat(Arc::new(heartbeat)),
    );
    let t0 = Instant::now();
    f.engine.tick(&snapshot, t0);
    let report = f.engine.tick(&snapshot, t0 + Duration::from_secs(10));
    assert_eq!(f.calls(), 0);
    assert!(report.storm_brake.as_deref().unwrap().contains("heartbeat"));
    assert_eq!(count(&report, "skipped_storm"), 3);
    let text = snapshot_with(report).rendered_text().to_string();
    assert!(text.contains("ocfs2_watchdog_storm_brake 1"), "{text}");

    // One healthy region: not a storm. Every iSCSI session down: a storm.
    let heartbeat = HeartbeatFacts {
        regions: vec![hung(0.8), hung(0.1)],
        ..HeartbeatFacts::default()
    };
    with_section(
        &mut snapshot,
        "heartbeat",
        Facts::Heartbeat(Arc::new(heartbeat)),
    );
    let session = ocfs2_watchdog::collector::storage::iscsi::Session {
        name: "session1".into(),
        state: Some("FAILED".into()),
        ..Default::default()
    };
    let iscsi = IscsiFacts {
        sessions: vec![session],
    };
    with_section(&mut snapshot, "iscsi", Facts::Iscsi(Arc::new(iscsi)));
    let report = f.engine.tick(&snapshot, t0 + Duration::from_secs(11));
    assert!(report.storm_brake.as_deref().unwrap().contains("iSCSI"));
    assert_eq!(f.calls(), 0);

    // Sessions back; the kernel's all-nodes-hung negotiation within the
    // storm window is a storm, the same message long ago is not.
    with_section(
        &mut snapshot,
        "iscsi",
        Facts::Iscsi(Arc::new(IscsiFacts::default())),
    );
    let now = snapshot
        .taken_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let hung_at = |seconds_ago: f64| {
        KernelLogFacts {
        recent: vec![RecentEvent {
            timestamp_seconds: Some(now - seconds_ago),
            event: Event::HbWriteHung,
            message: "o2hb: node 2 hb write hung for 6 s on region DEA93192F0874F53BB5290B5205C6B64 (vda).".into(),
        }],
        ..KernelLogFacts::default()
    }
    };
    with_section(
        &mut snapshot,
        "kernel_log",
        Facts::KernelLog(Arc::new(hung_at(5.0))),
    );
    let report = f.engine.tick(&snapshot, t0 + Duration::from_secs(12));
    assert!(
        report
            .storm_brake
            .as_deref()
            .unwrap()
            .contains("hb write hung"),
        "{:?}",
        report.storm_brake
    );
    assert_eq!(f.calls(), 0);
    with_section(
        &mut snapshot,
        "kernel_log",
        Facts::KernelLog(Arc::new(hung_at(86_400.0))),
    );
    let report = f.engine.tick(&snapshot, t0 + Duration::from_secs(13));
    assert_eq!(
        report.storm_brake_reasons,
        ["hold_down"],
        "the brake holds on after the last evidence: {:?}",
        report.storm_brake
    );
    // Default hold-down: 2 × the heartbeat timeout, 2 min when unknown.
    let report = f.engine.tick(&snapshot, t0 + Duration::from_secs(12 + 121));
    assert_eq!(report.storm_brake, None);
}

#[test]
fn a_cleared_condition_resolves_and_alert_only_never_acts() {
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        c.remediation
            .rules
            .get_mut("duplicate_mount_layers")
            .unwrap()
            .alert_only = Some(true);
    });
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    f.engine.tick(&snapshot, t0);
    let report = f.engine.tick(&snapshot, t0 + Duration::from_secs(10));
    assert_eq!(f.calls(), 0);
    assert!(report
        .targets
        .iter()
        .all(|t| t.state == "firing" && t.alert_only));
    std::fs::write(
        f.dir.path().join("root/proc/1/mountinfo"),
        "20 1 0:50 / /srv/a rw - tmpfs tmpfs rw\n",
    )
    .unwrap();
    let report = f.engine.tick(&f.snapshot(), t0 + Duration::from_secs(11));
    assert!(report.targets.is_empty(), "{:?}", report.targets);
    assert!(f.outcomes("/srv/a").contains(&"resolved".to_string()));
}

#[test]
fn an_unwritable_audit_log_means_no_action() {
    assert!(Path::new("/dev/full").exists(), "/dev/full is missing");
    let mut f = fixture(Outcome::Success("done".into()), |_| {});
    std::fs::create_dir_all(&f.config.state_dir.0).unwrap();
    std::os::unix::fs::symlink("/dev/full", f.config.state_dir.0.join("audit.jsonl")).unwrap();
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    f.engine.tick(&snapshot, t0);
    let report = f.engine.tick(&snapshot, t0 + Duration::from_secs(10));
    assert_eq!(f.calls(), 0, "never an action without a record");
    assert!(report.audit_write_errors >= 3);
    assert_eq!(count(&report, "failed"), 3);
}

#[test]
fn an_unreadable_state_dir_means_no_action() {
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        // The state dir is a file: nothing can be read or written under it.
        c.state_dir = StateDir(Path::new("/dev/null").join("state"));
    });
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    f.engine.tick(&snapshot, t0);
    let report = f.engine.tick(&snapshot, t0 + Duration::from_secs(10));
    assert_eq!(f.calls(), 0, "never an action without its state");
    assert!(report.state_errors >= 1);
    assert!(report.paused, "an uncheckable pause file counts as paused");
}

/// Blocks every execution until the test releases it, as an umount2 or a
/// stat on a dead filesystem would.
struct Blocking {
    started: Arc<Mutex<u32>>,
    release: Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Executor for Blocking {
    fn mode(&self) -> Mode {
        Mode::Enforce
    }
    fn execute(&self, _plan: &Plan) -> Outcome {
        *self.started.lock().unwrap() += 1;
        let _ = self.release.lock().unwrap().recv();
        Outcome::Success("finally".into())
    }
}

#[test]
fn a_hung_action_is_reported_failed_and_never_started_twice() {
    let mut f = fixture(Outcome::Success("unused".into()), |config| {
        config.remediation.action_timeout = Duration::from_millis(20);
        config.remediation.actions_per_hour = 100;
        config
            .remediation
            .rules
            .get_mut("duplicate_mount_layers")
            .unwrap()
            .r#for = Some(Duration::ZERO);
    });
    let started = Arc::new(Mutex::new(0));
    let (release, hold) = std::sync::mpsc::channel();
    f.engine = Engine::new(
        Arc::clone(&f.config),
        Box::new(Blocking {
            started: Arc::clone(&started),
            release: Mutex::new(hold),
        }),
        Arc::clone(&f.control),
    );
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    let report = f.engine.tick(&snapshot, t0);
    // Three targets, each hung past 5 × 20 ms: failed, one thread each.
    assert_eq!(count(&report, "failed"), 3);
    assert!(f.audit().iter().any(|r| r
        .error
        .as_deref()
        .is_some_and(|e| e.contains("still running"))));
    // After the backoff the targets are due again, but their threads are
    // still blocked: no second run starts.
    // The stuck threads still hold their volumes: skipped, no attempt spent.
    let report = f.engine.tick(&snapshot, t0 + Duration::from_secs(11));
    assert_eq!(*started.lock().unwrap(), 3);
    assert_eq!(count(&report, "failed"), 3);
    assert_eq!(count(&report, "skipped_volume_busy"), 3);
    assert!(report.targets.iter().all(|t| t.attempts == 1));
    // Released, the blocked runs end and the next attempt takes their result.
    for _ in 0..3 {
        release.send(()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let report = f.engine.tick(&snapshot, t0 + Duration::from_secs(40));
    assert_eq!(count(&report, "success"), 3);
    assert_eq!(*started.lock().unwrap(), 3);
}
