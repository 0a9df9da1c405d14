//! A tiny tmpfs as `state_dir` that fills up mid-run (root, a private mount
//! namespace): every audit line still parses, the file ends with a whole
//! line, and no action runs without its `before` line on disk. The engine
//! runs on a fixture host with 40 stacked paths and a recording executor
//! that checks the audit file from inside each action.

mod engine_fixture;
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine_fixture::fixture;
use ocfs2_watchdog::actions::audit::{AuditRecord, Phase};
use ocfs2_watchdog::actions::{Outcome, Plan};
use ocfs2_watchdog::config::StateDir;

/// Checks inside each action that its `before` line is already on disk.
fn before_line_is_written(audit: &std::path::Path, target: &str) -> bool {
    let text = std::fs::read_to_string(audit).unwrap_or_default();
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<AuditRecord>(l).ok())
        .find(|r| r.target == target)
        .is_some_and(|r| r.phase == Phase::Before)
}

#[test]
fn a_full_state_dir_never_tears_a_line_and_never_acts_unrecorded() {
    if !support::enter_private_namespace(
        "a_full_state_dir_never_tears_a_line_and_never_acts_unrecorded",
    ) {
        return;
    }
    let mut table = String::new();
    for i in 0..40 {
        let (a, b) = (100 + 2 * i, 101 + 2 * i);
        table.push_str(&format!("{a} 1 0:{a} / /srv/v{i} rw - tmpfs tmpfs rw\n"));
        table.push_str(&format!("{b} {a} 0:{a} / /srv/v{i} rw - tmpfs tmpfs rw\n"));
    }
    // The tiny tmpfs is mounted in a scratch tree of its own, which unmounts
    // it before anything is deleted, even when an assertion fails first.
    let scratch = support::ScratchDir::new();
    let state = scratch.path().join("state");
    let mut f = fixture(Outcome::Failed("still stacked".into()), |c| {
        c.state_dir = StateDir(state.clone());
        c.remediation.actions_per_hour = 100_000;
        let rule = c
            .remediation
            .rules
            .get_mut("duplicate_mount_layers")
            .unwrap();
        rule.actions_per_hour = Some(100_000);
        rule.r#for = Some(Duration::ZERO);
        rule.backoff = Some(Duration::from_secs(1));
        rule.backoff_max = Some(Duration::from_secs(1));
        rule.max_attempts = Some(100_000);
    });
    f.set_mountinfo(&table);
    std::fs::create_dir_all(&state).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &state,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=24k"),
    )
    .unwrap();
    let audit = state.join("audit.jsonl");
    let unrecorded = Arc::new(Mutex::new(Vec::new()));
    let (seen, path) = (Arc::clone(&unrecorded), audit.clone());
    *f.recorder.hook.lock().unwrap() = Some(Arc::new(move |plan: &Plan| {
        if let Plan::Unstack { mountpoint } = plan {
            if !before_line_is_written(&path, mountpoint) {
                seen.lock().unwrap().push(mountpoint.clone());
            }
        }
    }));
    f.restart();
    let snapshot = f.snapshot();
    let t0 = Instant::now();
    let mut report = f.engine.tick(&snapshot, t0);
    for s in 1..30 {
        report = f.engine.tick(&snapshot, t0 + Duration::from_secs(2 * s));
    }
    let text = std::fs::read_to_string(&audit).unwrap();
    println!(
        "audit: {} bytes, {} lines; actions run: {}; write errors: {}; state errors: {}",
        text.len(),
        text.lines().count(),
        f.calls(),
        report.audit_write_errors,
        report.state_errors
    );
    assert!(report.audit_write_errors > 0, "the tmpfs never filled up");
    assert!(f.calls() > 0, "nothing ran before it filled up");
    assert!(text.is_empty() || text.ends_with('\n'), "a torn last line");
    for line in text.lines() {
        serde_json::from_str::<AuditRecord>(line)
            .unwrap_or_else(|e| panic!("torn line {line:?}: {e}"));
    }
    assert_eq!(*unrecorded.lock().unwrap(), Vec::<String>::new());
}
