//! The engine's memory and last-moment checks on fixture snapshots with a
//! recording executor: give-ups, budget and backoff kept across a restart,
//! interrupted actions, precondition_changed give-up, per-rule budget
//! shares, decaying attempts for a flapping condition, pause and storm read
//! before each action, startup grace, one disruptive action per tick, a
//! volume held by a stuck action of another rule. A full `state_dir` is in
//! tests/audit_full_disk.rs.

mod engine_fixture;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine_fixture::{count, fixture, with_section, Fixture, TABLE};
use ocfs2_watchdog::actions::audit::{AuditOutcome, AuditRecord, Phase};
use ocfs2_watchdog::actions::{Outcome, Plan};
use ocfs2_watchdog::collector::storage::iscsi::{Connection, Session};
use ocfs2_watchdog::collector::storage::IscsiFacts;
use ocfs2_watchdog::collector::Facts;
use ocfs2_watchdog::config::Config;
use ocfs2_watchdog::rules::config::RuleConfig;
use ocfs2_watchdog::rules::control::PAUSE_FILE;
use ocfs2_watchdog::snapshot::Snapshot;

fn rule(config: &mut Config) -> &mut RuleConfig {
    config
        .remediation
        .rules
        .get_mut("duplicate_mount_layers")
        .unwrap()
}

fn at(t0: Instant, seconds: u64) -> Instant {
    t0 + Duration::from_secs(seconds)
}

#[test]
fn give_ups_budget_and_backoff_survive_a_restart() {
    let mut f = fixture(Outcome::Failed("mount: bad superblock".into()), |c| {
        c.remediation.actions_per_hour = 100;
        rule(c).actions_per_hour = Some(100);
        rule(c).max_attempts = Some(2);
    });
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    for s in [0, 10, 20, 50] {
        f.engine.tick(&snapshot, at(t0, s));
    }
    assert_eq!(f.calls(), 6, "two failed attempts per target");
    let report = f.engine.tick(&snapshot, at(t0, 51));
    assert_eq!(report.gave_up.len(), 3);

    f.restart();
    f.engine.tick(&snapshot, at(t0, 60));
    let report = f.engine.tick(&snapshot, at(t0, 200));
    assert_eq!(f.calls(), 6, "a restart does not retry what was given up");
    assert_eq!(report.gave_up.len(), 3, "{:?}", report.gave_up);
    assert!(report.targets.iter().all(|t| t.state == "gave_up"));
    let text = engine_fixture::snapshot_with(report)
        .rendered_text()
        .to_string();
    assert!(
        text.contains(
            "ocfs2_watchdog_remediation_gave_up{rule=\"duplicate_mount_layers\",target=\"/srv/a\"} 1"
        ),
        "{text}"
    );
}

#[test]
fn the_hourly_budget_survives_a_restart() {
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        c.remediation.actions_per_hour = 2;
        rule(c).actions_per_hour = Some(2);
    });
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    f.engine.tick(&snapshot, t0);
    f.engine.tick(&snapshot, at(t0, 10));
    assert_eq!(f.calls(), 2);
    f.restart();
    let report = f.engine.tick(&snapshot, at(t0, 11));
    let report2 = f.engine.tick(&snapshot, at(t0, 30));
    assert_eq!(f.calls(), 2, "no fresh budget after a restart");
    assert_eq!(report.budget_remaining, 0);
    assert_eq!(count(&report2, "skipped_budget"), 1);
    // The hour still ends when it would have.
    f.engine.tick(&snapshot, at(t0, 3611));
    assert_eq!(f.calls(), 4);
}

#[test]
fn an_action_cut_short_by_a_restart_is_interrupted_and_backed_off() {
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        c.remediation.actions_per_hour = 100;
        rule(c).actions_per_hour = Some(100);
        rule(c).r#for = Some(Duration::ZERO);
    });
    // The previous run wrote its `before` line for /srv/a and died.
    let before = AuditRecord {
        time: AuditRecord::now(),
        rule: "duplicate_mount_layers".into(),
        target: "/srv/a".into(),
        action: "unstack".into(),
        mode: "enforce".into(),
        phase: Phase::Before,
        outcome: AuditOutcome::Started,
        evidence: "2 layers".into(),
        detail: None,
        error: None,
        caller: None,
    };
    let audit = f.config.state_dir.0.join("audit.jsonl");
    std::fs::write(&audit, serde_json::to_string(&before).unwrap() + "\n").unwrap();
    f.restart();
    let records = f.audit();
    let last = records.last().unwrap();
    assert_eq!(
        (last.phase, last.outcome, last.target.as_str()),
        (Phase::After, AuditOutcome::Interrupted, "/srv/a")
    );
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    let report = f.engine.tick(&snapshot, t0);
    assert_eq!(count(&report, "interrupted"), 1);
    assert_eq!(f.calls(), 2, "/srv/a backs off, the others act");
    assert_eq!(f.outcomes("/srv/a").last().unwrap(), "skipped_backoff");
    f.engine.tick(&snapshot, at(t0, 11));
    assert_eq!(f.calls(), 3, "after the backoff /srv/a is tried again");
    // Settled once: a second restart finds nothing left unfinished.
    f.restart();
    let interrupted = f
        .audit()
        .iter()
        .filter(|r| r.outcome == "interrupted")
        .count();
    assert_eq!(interrupted, 1);
}

#[test]
fn a_lasting_precondition_change_gives_up() {
    let mut f = fixture(
        Outcome::PreconditionChanged("the layer is gone".into()),
        |c| {
            c.remediation.actions_per_hour = 100;
            rule(c).actions_per_hour = Some(100);
            rule(c).max_precondition_changed = Some(3);
        },
    );
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    let mut tried_at = Vec::new();
    for s in (0..=200).step_by(5) {
        let before = f.calls();
        f.engine.tick(&snapshot, at(t0, s));
        if f.calls() > before {
            tried_at.push(s);
        }
    }
    assert_eq!(
        tried_at,
        [10, 20, 40],
        "after `for`, backing off 10 s, then 20 s"
    );
    assert_eq!(f.calls(), 9, "three tries per target, then it gives up");
    let outcomes = f.outcomes("/srv/a");
    assert_eq!(outcomes.last().unwrap(), "gave_up", "{outcomes:?}");
    let gave_up = f
        .audit()
        .into_iter()
        .find(|r| r.outcome == "gave_up")
        .unwrap();
    assert!(gave_up
        .detail
        .unwrap()
        .contains("3 consecutive precondition_changed"));
}

#[test]
fn each_rule_has_its_own_share_of_the_budget() {
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        c.remediation.actions_per_hour = 4;
    });
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    f.engine.tick(&snapshot, t0);
    let report = f.engine.tick(&snapshot, at(t0, 10));
    assert_eq!(f.calls(), 2, "half of the global budget by default");
    assert_eq!(report.budget_remaining, 2, "left for the other rules");
    let share = |rule: &str| {
        report
            .rule_budget_remaining
            .iter()
            .find(|(r, _)| *r == rule)
            .map(|(_, n)| *n)
    };
    assert_eq!(share("duplicate_mount_layers"), Some(0));
    assert_eq!(share("missing_mount"), Some(2));
    let skipped = f
        .audit()
        .into_iter()
        .find(|r| r.outcome == "skipped_budget")
        .unwrap();
    assert!(skipped.detail.unwrap().contains("rule share"));
}

#[test]
fn a_flapping_condition_gives_up_and_a_settled_one_is_forgotten() {
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        c.remediation.actions_per_hour = 100;
        rule(c).actions_per_hour = Some(100);
        rule(c).r#for = Some(Duration::ZERO);
        rule(c).cooldown = Some(Duration::from_secs(1));
        rule(c).failure_window = Some(Duration::from_secs(600));
    });
    let t0 = Instant::now();
    let mut s = 0;
    let mut flap = |f: &mut Fixture, present: bool| {
        f.set_mountinfo(if present {
            TABLE
        } else {
            "20 1 0:50 / /srv/a rw - tmpfs tmpfs rw\n"
        });
        let snapshot = f.snapshot();
        s += 10;
        f.engine.tick(&snapshot, at(t0, s))
    };
    for _ in 0..3 {
        flap(&mut f, true);
        flap(&mut f, false);
    }
    assert_eq!(f.calls(), 9, "acted on each return of the condition");
    let report = flap(&mut f, true);
    assert_eq!(f.calls(), 9, "three attempts within the window: gave up");
    assert_eq!(count(&report, "gave_up"), 3);
    // Clear for a whole window, the targets are forgotten and acted on again.
    f.set_mountinfo("20 1 0:50 / /srv/a rw - tmpfs tmpfs rw\n");
    f.engine.tick(&f.snapshot(), at(t0, 100));
    let report = f.engine.tick(&f.snapshot(), at(t0, 800));
    assert!(report.gave_up.is_empty(), "{:?}", report.gave_up);
    f.set_mountinfo(TABLE);
    f.engine.tick(&f.snapshot(), at(t0, 810));
    assert_eq!(f.calls(), 12);
}

#[test]
fn a_pause_during_an_action_holds_the_next_one() {
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        c.remediation.actions_per_hour = 100;
        rule(c).actions_per_hour = Some(100);
    });
    let pause_file = f.config.state_dir.0.join(PAUSE_FILE);
    *f.recorder.hook.lock().unwrap() = Some(Arc::new(move |_plan: &Plan| {
        std::fs::write(&pause_file, "operator\n").unwrap();
    }));
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    f.engine.tick(&snapshot, t0);
    let report = f.engine.tick(&snapshot, at(t0, 10));
    assert_eq!(f.calls(), 1, "paused while the first action ran");
    assert_eq!(count(&report, "skipped_paused"), 2);
}

#[test]
fn the_storm_brake_is_read_from_the_newest_snapshot_before_acting() {
    use ocfs2_watchdog::collector::heartbeat::{HeartbeatFacts, RegionHeartbeat};
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        rule(c).r#for = Some(Duration::ZERO);
    });
    let snapshot = f.snapshot();
    // While the engine works on `snapshot`, the sampler has published a newer
    // one in which every heartbeat region is hung.
    let mut newer = f.snapshot();
    newer.sequence = snapshot.sequence + 1;
    let hung = RegionHeartbeat {
        uuid: "0A1B".into(),
        ratio: Some(0.9),
        ..RegionHeartbeat::default()
    };
    let heartbeat = HeartbeatFacts {
        regions: vec![hung],
        ..HeartbeatFacts::default()
    };
    with_section(
        &mut newer,
        "heartbeat",
        Facts::Heartbeat(Arc::new(heartbeat)),
    );
    let (_publish, latest) = tokio::sync::watch::channel(Arc::new(newer));
    f.engine.follow_snapshots(latest);
    let report = f.engine.tick(&snapshot, Instant::now());
    assert_eq!(f.calls(), 0, "held by the storm the newest snapshot shows");
    assert_eq!(count(&report, "skipped_storm"), 3);
    assert!(report.storm_brake.is_some(), "the report says so too");
}

#[test]
fn the_startup_grace_holds_every_action() {
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        c.remediation.startup_grace = Duration::from_secs(60);
    });
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    f.engine.tick(&snapshot, t0);
    let report = f.engine.tick(&snapshot, at(t0, 10));
    assert_eq!(f.calls(), 0);
    assert_eq!(count(&report, "skipped_startup_grace"), 3);
    assert!(
        report.startup_grace_seconds > 40.0,
        "{}",
        report.startup_grace_seconds
    );
    let text = engine_fixture::snapshot_with(report)
        .rendered_text()
        .to_string();
    assert!(
        text.contains("ocfs2_watchdog_startup_grace_seconds 4"),
        "{text}"
    );
    let report = f.engine.tick(&snapshot, at(t0, 61));
    assert_eq!(f.calls(), 3);
    assert_eq!(report.startup_grace_seconds, 0.0);
}

#[test]
fn a_stuck_action_keeps_other_rules_off_its_volume() {
    let mut f = fixture(Outcome::Success("done".into()), |c| {
        c.remediation.action_timeout = Duration::from_millis(20);
        c.remediation.actions_per_hour = 100;
        rule(c).actions_per_hour = Some(100);
        rule(c).r#for = Some(Duration::ZERO);
        c.remediation.rules.insert(
            "missing_mount".into(),
            RuleConfig {
                r#for: Some(Duration::ZERO),
                ..RuleConfig::default()
            },
        );
        c.mounts
            .expected
            .push(ocfs2_watchdog::config::ExpectedMount {
                mountpoint: "/srv/a".into(),
                source: "tmpfs".into(),
                fstype: "tmpfs".into(),
                options: "rw".into(),
            });
    });
    // The unstack of /srv/a blocks in the kernel (a dead filesystem).
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let hold = Arc::new(Mutex::new(hold));
    *f.recorder.hook.lock().unwrap() = Some(Arc::new(move |plan: &Plan| {
        if matches!(plan, Plan::Unstack { mountpoint } if mountpoint == "/srv/a") {
            let _ = hold.lock().unwrap().recv();
        }
    }));
    let t0 = Instant::now();
    let report = f.engine.tick(&f.snapshot(), t0);
    assert_eq!(count(&report, "failed"), 1, "the stuck unstack");
    // Then /srv/a is gone from the table: missing_mount wants to mount it.
    f.set_mountinfo(
        &TABLE
            .lines()
            .skip(2)
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    );
    let report = f.engine.tick(&f.snapshot(), at(t0, 1));
    let remounts = |f: &Fixture| {
        f.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|p| matches!(p, Plan::Remount(_)))
            .count()
    };
    assert_eq!(remounts(&f), 0, "not while the unstack thread is alive");
    assert_eq!(count(&report, "skipped_volume_busy"), 1);
    let busy = f
        .audit()
        .into_iter()
        .find(|r| r.outcome == "skipped_volume_busy")
        .unwrap();
    assert_eq!(busy.rule, "missing_mount");
    assert!(busy
        .detail
        .unwrap()
        .contains("duplicate_mount_layers//srv/a"));
    release.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while remounts(&f) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        f.engine.tick(&f.snapshot(), at(t0, 2));
    }
    assert_eq!(remounts(&f), 1, "the volume is free once the thread ends");
}

fn session(name: &str, state: &str) -> Session {
    Session {
        name: name.into(),
        state: Some(state.into()),
        target: Some(format!("iqn.2024-01.lab:{name}")),
        connections: vec![Connection {
            address: Some("192.0.2.1".into()),
            port: Some("3260".into()),
            ..Connection::default()
        }],
        ..Session::default()
    }
}

/// Two failed iSCSI sessions, the re-login rule enforcing without `for`.
fn two_failed_sessions(tune: impl FnOnce(&mut Config)) -> (Fixture, Snapshot) {
    let f = fixture(Outcome::Success("done".into()), |c| {
        c.remediation.actions_per_hour = 100;
        rule(c).enabled = Some(false);
        c.remediation.rules.insert(
            "iscsi_session_failed".into(),
            RuleConfig {
                enabled: Some(true),
                r#for: Some(Duration::ZERO),
                actions_per_hour: Some(100),
                ..RuleConfig::default()
            },
        );
        tune(c);
    });
    let mut snapshot = f.snapshot();
    let iscsi = IscsiFacts {
        sessions: vec![
            session("session1", "LOGGED_IN"),
            session("session2", "FAILED"),
            session("session3", "FAILED"),
        ],
    };
    with_section(&mut snapshot, "iscsi", Facts::Iscsi(Arc::new(iscsi)));
    (f, snapshot)
}

#[test]
fn an_engine_without_the_cluster_lease_does_not_act_on_what_needs_it() {
    let (mut f, snapshot) = two_failed_sessions(|_| {});
    f.restart_without_lease();
    let t0 = Instant::now();
    let report = f.engine.tick(&snapshot, t0);
    assert_eq!(f.calls(), 0, "an iSCSI re-login needs the lease");
    assert_eq!(count(&report, "skipped_lease"), 2, "both sessions wait");
    let skipped: Vec<AuditRecord> = f
        .audit()
        .into_iter()
        .filter(|r| r.outcome == AuditOutcome::SkippedLease)
        .collect();
    assert_eq!(skipped.len(), 2);
    assert!(
        skipped.iter().all(|r| r
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("no cluster lease"))),
        "{skipped:?}"
    );
}

#[test]
fn one_disruptive_action_per_tick() {
    let (mut f, snapshot) = two_failed_sessions(|_| {});
    let t0 = Instant::now();
    let report = f.engine.tick(&snapshot, t0);
    assert_eq!(f.calls(), 1, "one re-login per tick");
    assert_eq!(count(&report, "skipped_tick_limit"), 1);
    f.engine.tick(&snapshot, at(t0, 2));
    assert_eq!(f.calls(), 2, "the next tick takes the other one");
    let sessions: Vec<String> = f
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|p| match p {
            Plan::IscsiRelogin { session, .. } => session.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sessions, ["session2", "session3"]);
}
