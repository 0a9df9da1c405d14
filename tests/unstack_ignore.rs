//! `[mounts] unstack_ignore` is honoured by the unstack action itself, at
//! the last moment: patterns reloaded (SIGHUP) between the decision and the
//! action keep the stack, in the daemon's namespace and in the
//! host-namespace helper alike, and the real daemon reads them on SIGHUP.
//! Real mounts in a private mount namespace.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocfs2_watchdog::actions::audit::AuditRecord;
use ocfs2_watchdog::actions::helper::{answer, HelperRequest};
use ocfs2_watchdog::actions::unstack::UnstackIgnore;
use ocfs2_watchdog::actions::{executor_for, HostActions, Plan};
use ocfs2_watchdog::collector::mounts::mountinfo::parse_mountinfo;
use ocfs2_watchdog::collector::mounts::stack::TableIndex;
use ocfs2_watchdog::collector::Context;
use ocfs2_watchdog::config::{Config, StateDir};
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::rules::config::{Mode, RuleConfig};
use ocfs2_watchdog::rules::control::Control;
use ocfs2_watchdog::rules::Engine;
use ocfs2_watchdog::sampler::Sampler;
use support::{bind, enter_private_namespace, mount_tmpfs};

fn layers(path: &Path) -> usize {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let table = parse_mountinfo(&text);
    TableIndex::new(&table.entries)
        .layers(&path.to_string_lossy())
        .len()
}

fn config(state: &Path) -> Config {
    let mut config = Config {
        state_dir: StateDir(state.to_path_buf()),
        ..Config::default()
    };
    config.mounts.fstypes = vec!["tmpfs".into()];
    config.mounts.use_fstab = false;
    config.kernel_log.enabled = false;
    config.remediation.mode = Mode::Enforce;
    config.remediation.startup_grace = Duration::ZERO;
    config.remediation.rules.insert(
        "duplicate_mount_layers".into(),
        RuleConfig {
            r#for: Some(Duration::ZERO),
            ..RuleConfig::default()
        },
    );
    config
}

#[test]
fn patterns_reloaded_after_the_decision_keep_the_stack() {
    if !enter_private_namespace("patterns_reloaded_after_the_decision_keep_the_stack") {
        return;
    }
    let dir = support::ScratchDir::new();
    let kept = dir.path().join("kept");
    std::fs::create_dir_all(&kept).unwrap();
    mount_tmpfs(&kept);
    bind(&kept, &kept);
    bind(&kept, &kept);
    let state = dir.path().join("state");
    // The configuration the decision is made with ignores nothing.
    let config = Arc::new(config(&state));
    let paths = HostPaths::default();
    let mut sampler = Sampler::new(Arc::new(Context::new(paths.clone(), Arc::clone(&config))));
    let snapshot = sampler.tick(Duration::from_secs(5));
    let ignore = UnstackIgnore::default();
    let host = HostActions::new(paths, &config.remediation).with_unstack_ignore(ignore.clone());
    let mut engine = Engine::new(
        Arc::clone(&config),
        executor_for(Mode::Enforce, host),
        Arc::new(Control::new(&state, None)),
    );
    // SIGHUP between the snapshot and the action: leave `kept` stacked.
    let parent = dir.path().to_string_lossy().into_owned();
    ignore.set(vec![format!("{parent}/kep?")]);
    let report = engine.tick(&snapshot, Instant::now());
    assert!(
        report
            .actions
            .iter()
            .any(|(_, a, o, _)| *a == "unstack" && *o == "precondition_changed"),
        "{:?}",
        report.actions
    );
    let records: Vec<AuditRecord> = std::fs::read_to_string(state.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let refused = records
        .iter()
        .find(|r| r.outcome == "precondition_changed")
        .unwrap_or_else(|| panic!("{records:?}"));
    let why = format!("{:?} {:?}", refused.detail, refused.error);
    assert!(why.contains("unstack_ignore"), "{why}");
    assert_eq!(layers(&kept), 3, "nothing popped");

    // The host-namespace helper gets the patterns in force with the plan.
    let plan = Plan::Unstack {
        mountpoint: kept.to_string_lossy().into_owned(),
    };
    let request = |unstack_ignore: Vec<String>| HelperRequest {
        mode: Mode::Enforce,
        plan: Some(plan.clone()),
        action_timeout_ms: 10_000,
        budget_ms: 10_000,
        command_prefix: Vec::new(),
        unstack_ignore,
        identity_include_loop: false,
    };
    let reply = answer(&request(ignore.patterns()));
    assert_eq!(reply.outcome, "precondition_changed", "{reply:?}");
    assert!(reply.detail.contains("unstack_ignore"), "{reply:?}");
    assert_eq!(layers(&kept), 3);

    // Patterns that no longer match: the same plan runs.
    let reply = answer(&request(vec![format!("{parent}/other")]));
    assert_eq!(reply.outcome, "success", "{reply:?}");
    assert_eq!(layers(&kept), 1);
}

fn daemon_config(dir: &Path, ignore: &[String]) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let config = format!(
        r#"state_dir = "{state}"
[sampler]
interval = "300ms"
[mounts]
fstypes = ["tmpfs"]
use_fstab = false
unstack_ignore = {ignore:?}
[kernel_log]
enabled = false
[remediation]
startup_grace = "0s"
[remediation.rules.duplicate_mount_layers]
for = "300ms"
"#,
        state = dir.join("state").display()
    );
    std::fs::write(&path, config).unwrap();
    path
}

/// The real daemon: the pattern arrives by SIGHUP while it is paused, so
/// the rule (which keeps the patterns it started with) still plans the
/// unstack after the resume, and the action refuses it.
#[test]
fn a_pattern_added_by_sighup_stops_the_daemons_unstack() {
    if !enter_private_namespace("a_pattern_added_by_sighup_stops_the_daemons_unstack") {
        return;
    }
    let dir = support::ScratchDir::new();
    let kept = dir.path().join("kept");
    std::fs::create_dir_all(&kept).unwrap();
    mount_tmpfs(&kept);
    bind(&kept, &kept);
    let config = daemon_config(dir.path(), &[]);
    let pause = dir.path().join("state/pause");
    std::fs::create_dir_all(pause.parent().unwrap()).unwrap();
    std::fs::write(&pause, "").unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .args(["--config", config.to_str().unwrap(), "--enforce"])
        .args(["--web.listen-address", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let address = support::listen::bound_address_in_log(&log);
    support::wait_for("the daemon to be ready", Duration::from_secs(20), || {
        support::http_get(&address, "/readyz").is_ok_and(|r| r.0 == 200)
    });
    daemon_config(dir.path(), &[kept.to_string_lossy().into_owned()]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    support::wait_for("the reloaded patterns", Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("Reloaded [mounts] unstack_ignore"))
    });
    std::fs::remove_file(&pause).unwrap();
    let audit = dir.path().join("state/audit.jsonl");
    let records = || -> Vec<AuditRecord> {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    support::wait_for("the unstack to be refused", Duration::from_secs(20), || {
        records()
            .iter()
            .any(|r| r.action == "unstack" && r.outcome == "precondition_changed")
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
    let refused: Vec<AuditRecord> = records()
        .into_iter()
        .filter(|r| r.outcome == "precondition_changed")
        .collect();
    let why = format!("{:?} {:?}", refused[0].detail, refused[0].error);
    assert!(why.contains("unstack_ignore"), "{why}");
    assert!(
        !records().iter().any(|r| r.outcome == "success"),
        "{:?}",
        records()
    );
    assert_eq!(layers(&kept), 2, "left stacked");
}
