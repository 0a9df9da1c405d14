//! Time to heal on the engine's fake clock (the `now` each tick is given):
//! `ocfs2_watchdog_heal_seconds` counts from the first tick that could act
//! (the rule's `for` over) to the tick that saw the fault gone, the `for`
//! part goes to `ocfs2_watchdog_heal_wait_seconds`, and a fault no action of
//! ours healed is not observed.

mod engine_fixture;

use std::time::{Duration, Instant};

use engine_fixture::{fixture, snapshot_with};
use ocfs2_watchdog::actions::Outcome;
use ocfs2_watchdog::rules::config::Mode;

const HEALED: &str = concat!(
    "20 1 0:50 / /srv/a rw,relatime - tmpfs tmpfs rw\n",
    "30 1 0:51 / /srv/b rw,relatime - tmpfs tmpfs rw\n",
    "40 1 0:52 / /srv/c rw,relatime - tmpfs tmpfs rw\n",
);

#[test]
fn the_histogram_observes_from_the_first_tick_that_could_act_to_the_healed_tick() {
    let mut f = fixture(Outcome::Success("done".into()), |_| {});
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let snapshot = f.snapshot();
    f.engine.tick(&snapshot, at(0));
    f.engine.tick(&snapshot, at(4));
    // `for` is 10 s: 12 s is the first tick that can act (wait 12 s).
    f.engine.tick(&snapshot, at(12));
    assert_eq!(f.calls(), 3);
    // The action's effect is not seen yet: still a fault.
    let report = f.engine.tick(&snapshot, at(14));
    assert_eq!(report.heal.0["unstack"].heal.count, 0);
    f.set_mountinfo(HEALED);
    let report = f.engine.tick(&f.snapshot(), at(19));
    let unstack = &report.heal.0["unstack"];
    assert_eq!(unstack.heal.count, 3, "{unstack:?}");
    assert!((unstack.heal.sum - 3.0 * 7.0).abs() < 1e-9, "{unstack:?}");
    assert_eq!(unstack.wait.count, 3);
    assert!((unstack.wait.sum - 3.0 * 12.0).abs() < 1e-9, "{unstack:?}");
    let remount = &report.heal.0["remount"];
    assert_eq!((remount.heal.count, remount.wait.count), (0, 0));

    let text = snapshot_with(report).rendered_text().to_string();
    for line in [
        "ocfs2_watchdog_heal_seconds_bucket{le=\"5.0\",action=\"unstack\"} 0",
        "ocfs2_watchdog_heal_seconds_bucket{le=\"10.0\",action=\"unstack\"} 3",
        "ocfs2_watchdog_heal_seconds_count{action=\"unstack\"} 3",
        "ocfs2_watchdog_heal_seconds_sum{action=\"unstack\"} 21.0",
        "ocfs2_watchdog_heal_wait_seconds_bucket{le=\"10.0\",action=\"unstack\"} 0",
        "ocfs2_watchdog_heal_wait_seconds_bucket{le=\"20.0\",action=\"unstack\"} 3",
        "ocfs2_watchdog_heal_seconds_count{action=\"remount\"} 0",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

#[test]
fn a_fault_no_action_healed_is_not_observed() {
    // Failed actions, then the fault clears by itself.
    let mut f = fixture(Outcome::Failed("refused".into()), |_| {});
    let t0 = Instant::now();
    let snapshot = f.snapshot();
    f.engine.tick(&snapshot, t0);
    f.engine.tick(&snapshot, t0 + Duration::from_secs(10));
    assert_eq!(f.calls(), 3);
    f.set_mountinfo(HEALED);
    let report = f.engine.tick(&f.snapshot(), t0 + Duration::from_secs(12));
    assert!(report.targets.is_empty());
    assert_eq!(report.heal.0["unstack"].heal.count, 0);

    // Dry run: nothing was done, nothing healed.
    let mut f = fixture(Outcome::DryRun("would".into()), |c| {
        c.remediation.mode = Mode::DryRun;
    });
    let snapshot = f.snapshot();
    f.engine.tick(&snapshot, t0);
    f.engine.tick(&snapshot, t0 + Duration::from_secs(10));
    f.set_mountinfo(HEALED);
    let report = f.engine.tick(&f.snapshot(), t0 + Duration::from_secs(12));
    assert_eq!(report.heal.0["unstack"].heal.count, 0);

    // Cleared while pending: never firing, never acted on.
    let mut f = fixture(Outcome::Success("done".into()), |_| {});
    f.engine.tick(&f.snapshot(), t0);
    f.set_mountinfo(HEALED);
    let report = f.engine.tick(&f.snapshot(), t0 + Duration::from_secs(5));
    assert_eq!(f.calls(), 0);
    assert_eq!(report.heal.0["unstack"].heal.count, 0);
}
