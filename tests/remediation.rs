//! Remediation for real, in private mount namespaces: the real sampler and
//! the real engine with the real (or dry-run) executor on real mounts.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocfs2_watchdog::actions::audit::AuditRecord;
use ocfs2_watchdog::actions::{executor_for, HostActions};
use ocfs2_watchdog::collector::mounts::mountinfo::parse_mountinfo;
use ocfs2_watchdog::collector::mounts::stack::TableIndex;
use ocfs2_watchdog::collector::Context;
use ocfs2_watchdog::config::{Config, ExpectedMount, StateDir};
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::rules::config::{Mode, RuleConfig};
use ocfs2_watchdog::rules::control::Control;
use ocfs2_watchdog::rules::{Engine, Report};
use ocfs2_watchdog::sampler::Sampler;
use support::{bind, enter_private_namespace, mount_tmpfs};

fn config(state: &Path, mode: Mode) -> Config {
    let mut config = Config {
        state_dir: StateDir(state.to_path_buf()),
        ..Config::default()
    };
    config.mounts.fstypes = vec!["tmpfs".into()];
    config.mounts.use_fstab = false;
    config.kernel_log.enabled = false;
    config.remediation.mode = mode;
    for rule in ["duplicate_mount_layers", "missing_mount", "shadowed_mount"] {
        config.remediation.rules.insert(
            rule.into(),
            RuleConfig {
                r#for: Some(Duration::from_secs(1)),
                backoff: Some(Duration::from_millis(200)),
                max_attempts: Some(3),
                ..RuleConfig::default()
            },
        );
    }
    config
}

/// Runs sampler + engine ticks until `done` or `limit`; the last report.
fn run_until(config: Config, limit: Duration, done: impl Fn() -> bool) -> (Report, Duration) {
    let config = Arc::new(config);
    let paths = HostPaths::default();
    let mut sampler = Sampler::new(Arc::new(Context::new(paths.clone(), Arc::clone(&config))));
    let host = HostActions::new(paths, &config.remediation);
    let control = Arc::new(Control::new(&config.state_dir.0, None));
    let mut engine = Engine::new(
        Arc::clone(&config),
        executor_for(config.remediation.mode, host),
        control,
    );
    let started = Instant::now();
    loop {
        let snapshot = sampler.tick(Duration::from_secs(5));
        let report = engine.tick(&snapshot, Instant::now());
        if done() || started.elapsed() > limit {
            return (report, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn layers(path: &Path) -> usize {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let table = parse_mountinfo(&text);
    TableIndex::new(&table.entries)
        .layers(&path.to_string_lossy())
        .len()
}

fn audit(state: &Path) -> Vec<AuditRecord> {
    std::fs::read_to_string(state.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("parseable audit line"))
        .collect()
}

fn stack(path: &Path, layers: usize) {
    std::fs::create_dir_all(path).unwrap();
    mount_tmpfs(path);
    for _ in 1..layers {
        bind(path, path);
    }
}

#[test]
fn unstacks_4096_layers_and_leaves_a_shadowing_fs_alone() {
    if !enter_private_namespace("unstacks_4096_layers_and_leaves_a_shadowing_fs_alone") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let duplicates = dir.path().join("duplicates");
    let shadows = dir.path().join("shadows");
    stack(&duplicates, 4096);
    std::fs::create_dir_all(&shadows).unwrap();
    mount_tmpfs(&shadows);
    mount_tmpfs(&shadows);
    let state = dir.path().join("state");
    let (report, took) = run_until(
        config(&state, Mode::Enforce),
        Duration::from_secs(30),
        || layers(&duplicates) == 1,
    );
    println!("4096 -> 1 layers in {took:?} (for = 1s)");
    assert_eq!(layers(&duplicates), 1);
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert_eq!(
        layers(&shadows),
        2,
        "a different filesystem is never touched"
    );
    let shadow_path = shadows.to_string_lossy();
    assert!(report
        .targets
        .iter()
        .any(|t| t.rule == "shadowed_mount" && t.target == shadow_path && t.alert_only));
    let records = audit(&state);
    assert!(records
        .iter()
        .any(|r| r.outcome == "success" && r.action == "unstack"));
}

#[test]
fn shared_propagation_ends_with_one_layer_on_every_path() {
    if !enter_private_namespace("shared_propagation_ends_with_one_layer_on_every_path") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (parent, peer) = support::shared_parent_with_peer(dir.path());
    let volume = parent.join("volume");
    stack(&volume, 5); // 1 + 4 binds: 16 layers on each path.
    let copy = peer.join("volume");
    assert_eq!((layers(&volume), layers(&copy)), (16, 16));
    let state = dir.path().join("state");
    run_until(
        config(&state, Mode::Enforce),
        Duration::from_secs(20),
        || layers(&volume) == 1 && layers(&copy) == 1,
    );
    assert_eq!(layers(&volume), 1);
    assert_eq!(layers(&copy), 1);
    // And both still show the filesystem.
    std::fs::write(volume.join("probe"), "x").unwrap();
    assert!(copy.join("probe").exists());
}

#[test]
fn a_missing_mount_is_mounted_again() {
    if !enter_private_namespace("a_missing_mount_is_mounted_again") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let state = dir.path().join("state");
    let mut config = config(&state, Mode::Enforce);
    config.mounts.expected.push(ExpectedMount {
        mountpoint: data.to_string_lossy().into_owned(),
        source: "tmpfs".into(),
        fstype: "tmpfs".into(),
        options: "size=1m".into(),
    });
    run_until(config, Duration::from_secs(15), || layers(&data) == 1);
    assert_eq!(layers(&data), 1);
    let records = audit(&state);
    assert!(records
        .iter()
        .any(|r| r.action == "remount" && r.outcome == "success"));
}

#[test]
fn a_failing_mount_backs_off_and_gives_up() {
    if !enter_private_namespace("a_failing_mount_backs_off_and_gives_up") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // A device that exists but holds no filesystem.
    let bad = dir.path().join("garbage.img");
    std::fs::write(&bad, vec![0u8; 1 << 20]).unwrap();
    let state = dir.path().join("state");
    let mut config = config(&state, Mode::Enforce);
    config.mounts.expected.push(ExpectedMount {
        mountpoint: data.to_string_lossy().into_owned(),
        source: bad.to_string_lossy().into_owned(),
        fstype: "ext4".into(),
        options: "ro".into(),
    });
    let gave_up = || audit(&state).iter().any(|r| r.outcome == "gave_up");
    let (report, _) = run_until(config, Duration::from_secs(20), gave_up);
    let records: Vec<AuditRecord> = audit(&state)
        .into_iter()
        .filter(|r| r.rule == "missing_mount")
        .collect();
    let outcomes: Vec<&str> = records.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "failed").count(),
        3,
        "{outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| **o == "started").count(), 3);
    assert_eq!(outcomes.last(), Some(&"gave_up"));
    assert!(records
        .iter()
        .filter(|r| r.outcome == "failed")
        .all(|r| r.error.is_some()));
    assert!(report.targets.iter().any(|t| t.state == "gave_up"));
    assert_eq!(layers(&data), 0);
}

#[test]
fn dry_run_changes_nothing_and_says_what_it_would_do() {
    if !enter_private_namespace("dry_run_changes_nothing_and_says_what_it_would_do") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let duplicates = dir.path().join("duplicates");
    stack(&duplicates, 8);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let state = dir.path().join("state");
    let mut config = config(&state, Mode::DryRun);
    config.mounts.expected.push(ExpectedMount {
        mountpoint: data.to_string_lossy().into_owned(),
        source: "tmpfs".into(),
        fstype: "tmpfs".into(),
        options: "size=1m".into(),
    });
    let both = || {
        let records = audit(&state);
        ["unstack", "remount"].iter().all(|a| {
            records
                .iter()
                .any(|r| r.action == *a && r.outcome == "dry_run")
        })
    };
    let (report, _) = run_until(config, Duration::from_secs(10), both);
    assert!(both(), "{:?}", audit(&state));
    assert!(!report.enforcing);
    assert_eq!(layers(&duplicates), 8);
    assert_eq!(layers(&data), 0);
    assert!(audit(&state).iter().all(|r| r.mode == "dry_run"));
}

#[test]
fn a_precondition_that_changed_means_nothing_is_done() {
    if !enter_private_namespace("a_precondition_that_changed_means_nothing_is_done") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let duplicates = dir.path().join("duplicates");
    stack(&duplicates, 3);
    let state = dir.path().join("state");
    let mut config = config(&state, Mode::Enforce);
    config
        .remediation
        .rules
        .get_mut("duplicate_mount_layers")
        .unwrap()
        .r#for = Some(Duration::ZERO);
    let config = Arc::new(config);
    let paths = HostPaths::default();
    let mut sampler = Sampler::new(Arc::new(Context::new(paths.clone(), Arc::clone(&config))));
    let snapshot = sampler.tick(Duration::from_secs(5));
    // The mount disappears between the decision's snapshot and the action.
    for _ in 0..3 {
        nix::mount::umount2(&duplicates, nix::mount::MntFlags::empty()).unwrap();
    }
    let mut other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    mount_tmpfs(&other); // something else mounted meanwhile stays untouched
    let host = HostActions::new(paths, &config.remediation);
    let control = Arc::new(Control::new(&config.state_dir.0, None));
    let mut engine = Engine::new(
        Arc::clone(&config),
        executor_for(Mode::Enforce, host),
        control,
    );
    let report = engine.tick(&snapshot, Instant::now());
    let records = audit(&state);
    assert!(
        records.iter().any(|r| r.outcome == "precondition_changed"),
        "{records:?}"
    );
    assert!(report
        .actions
        .iter()
        .any(|(_, a, o, _)| *a == "unstack" && *o == "precondition_changed"));
    assert_eq!(layers(&duplicates), 0);
    other.push(".");
    assert_eq!(layers(&dir.path().join("other")), 1);
}

#[test]
fn a_stacked_pod_path_on_a_kubelet_host_is_unstacked() {
    if !enter_private_namespace("a_stacked_pod_path_on_a_kubelet_host_is_unstacked") {
        return;
    }
    let host = support::kubelet::kubelet_host(2000);
    // A pod path stacked four times; its series are excluded by default
    // while it is healthy, the facts the rules read are not.
    let pod = host.pods[42].clone();
    for _ in 0..3 {
        bind(&host.staged, &pod);
    }
    assert_eq!(layers(&pod), 4);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (report, _) = run_until(
        config(&state, Mode::Enforce),
        Duration::from_secs(30),
        || layers(&pod) == 1,
    );
    assert_eq!(layers(&pod), 1);
    assert_eq!(layers(&host.pods[41]), 1, "its neighbours are untouched");
    assert_eq!(layers(&host.staged), 1);
    let pod_path = pod.to_string_lossy();
    assert!(
        audit(&state)
            .iter()
            .any(|r| r.action == "unstack" && r.outcome == "success" && r.target == pod_path),
        "{:?}",
        audit(&state)
    );
    assert!(report
        .targets
        .iter()
        .all(|t| t.target != host.pods[41].to_string_lossy()));
}
