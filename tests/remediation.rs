//! Remediation for real, in private mount namespaces: the real sampler and
//! the real engine with the real (or dry-run) executor on real mounts.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocfs2_watchdog::actions::audit::AuditRecord;
use ocfs2_watchdog::actions::unstack::UnstackError;
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
    config.remediation.startup_grace = Duration::ZERO;
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
    let dir = support::ScratchDir::new();
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
    let dir = support::ScratchDir::new();
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
    let dir = support::ScratchDir::new();
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
    let dir = support::ScratchDir::new();
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
    let dir = support::ScratchDir::new();
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
    let dir = support::ScratchDir::new();
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

/// `mount -o remount,bind,ro`: the per-mount read-only flag on one layer.
fn remount_bind_readonly(path: &Path) {
    nix::mount::mount(
        None::<&str>,
        path,
        None::<&str>,
        nix::mount::MsFlags::MS_REMOUNT
            | nix::mount::MsFlags::MS_BIND
            | nix::mount::MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .unwrap_or_else(|e| panic!("remount,bind,ro {}: {e}", path.display()));
}

#[test]
fn a_read_only_self_bind_and_a_bind_root_are_left_alone() {
    if !enter_private_namespace("a_read_only_self_bind_and_a_bind_root_are_left_alone") {
        return;
    }
    let dir = support::ScratchDir::new();
    // mount --bind X X; mount -o remount,bind,ro X: deliberate, not a duplicate.
    let readonly = dir.path().join("readonly");
    std::fs::create_dir_all(&readonly).unwrap();
    mount_tmpfs(&readonly);
    bind(&readonly, &readonly);
    remount_bind_readonly(&readonly);
    // A subdirectory bound over its own filesystem's top: another root.
    let rooted = dir.path().join("rooted");
    std::fs::create_dir_all(&rooted).unwrap();
    mount_tmpfs(&rooted);
    std::fs::create_dir_all(rooted.join("sub")).unwrap();
    bind(&rooted.join("sub"), &rooted);
    // True duplicates on top of a read-only self-bind go; the bind stays.
    let mixed = dir.path().join("mixed");
    stack(&mixed, 1);
    bind(&mixed, &mixed);
    remount_bind_readonly(&mixed);
    bind(&mixed, &mixed);
    bind(&mixed, &mixed);
    assert_eq!(
        (layers(&readonly), layers(&rooted), layers(&mixed)),
        (2, 2, 4)
    );
    let state = dir.path().join("state");
    let config = config(&state, Mode::Enforce);
    let host = HostActions::new(HostPaths::default(), &config.remediation);
    // The action's own re-check agrees with the rule.
    let why =
        ocfs2_watchdog::actions::unstack::check(&host, &readonly.to_string_lossy()).unwrap_err();
    assert!(
        matches!(why, UnstackError::NoDuplicate { layers: 2, .. }),
        "{why}"
    );
    let (report, _) = run_until(config, Duration::from_secs(15), || layers(&mixed) == 2);
    assert_eq!(
        layers(&mixed),
        2,
        "the two copies of the ro bind are popped"
    );
    // A few more ticks: nothing else is touched.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!((layers(&readonly), layers(&rooted)), (2, 2));
    assert!(
        std::fs::write(readonly.join("x"), "x").is_err(),
        "still read-only"
    );
    assert!(
        std::fs::write(mixed.join("x"), "x").is_err(),
        "the ro bind is on top"
    );
    let records = audit(&state);
    let readonly_path = readonly.to_string_lossy();
    let rooted_path = rooted.to_string_lossy();
    assert!(
        records
            .iter()
            .filter(|r| r.target == readonly_path || r.target == rooted_path)
            .all(|r| r.action.is_empty() && r.outcome == "alert_only"),
        "{records:?}"
    );
    assert!(
        !records.iter().any(|r| r.target == readonly_path),
        "{records:?}"
    );
    assert!(!report
        .targets
        .iter()
        .any(|t| t.rule == "duplicate_mount_layers" && t.target == readonly_path));
    // And the metric says 0 duplicates there.
    let snapshot = Sampler::new(Arc::new(Context::new(
        HostPaths::default(),
        Arc::new(config_for_metrics()),
    )))
    .tick(Duration::from_secs(5));
    let facts = snapshot.mounts().unwrap();
    let at = |path: &Path| {
        let name = path.to_string_lossy();
        facts
            .mounts
            .iter()
            .find(|m| m.mountpoint == name)
            .map(|m| (m.stacked, m.duplicate_layers, m.shadowed))
            .unwrap()
    };
    assert_eq!(at(&readonly), (2, 0, false));
    assert_eq!(at(&rooted), (2, 0, true));
}

fn config_for_metrics() -> Config {
    let mut config = Config::default();
    config.mounts.fstypes = vec!["tmpfs".into()];
    config.mounts.use_fstab = false;
    config.kernel_log.enabled = false;
    config
}

#[test]
fn a_mount_point_link_to_a_mounted_directory_is_not_mounted_over() {
    if !enter_private_namespace("a_mount_point_link_to_a_mounted_directory_is_not_mounted_over") {
        return;
    }
    let dir = support::ScratchDir::new();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    mount_tmpfs(&data);
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    let state = dir.path().join("state");
    let mut config = config(&state, Mode::Enforce);
    config.mounts.expected.push(ExpectedMount {
        mountpoint: link.to_string_lossy().into_owned(),
        source: "tmpfs".into(),
        fstype: "tmpfs".into(),
        options: "size=1m".into(),
    });
    let refused = || {
        audit(&state)
            .iter()
            .any(|r| r.action == "remount" && r.outcome == "precondition_changed")
    };
    run_until(config, Duration::from_secs(15), refused);
    assert!(refused(), "{:?}", audit(&state));
    assert_eq!(layers(&data), 1, "mount(8) would have followed the link");
    assert!(audit(&state)
        .iter()
        .filter(|r| r.action == "remount")
        .all(|r| r.outcome != "success"));
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
    let dir = support::ScratchDir::new();
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
