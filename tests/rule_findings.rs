//! What the rules find in real snapshots: the real sampler over fixture host
//! trees (lab captures, tests/fixtures), copied and changed where a case
//! needs it, then one rule's `evaluate`. Covers `leaked_heartbeat` (decided
//! per UUID), `iscsi_session_failed`, `missing_mount` (kernel names alert
//! only) and `duplicate_mount_layers` (the ignore list).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ocfs2_watchdog::actions::{MountSpec, Plan};
use ocfs2_watchdog::collector::Context;
use ocfs2_watchdog::config::Config;
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::rules::{Finding, RULES};
use ocfs2_watchdog::sampler::Sampler;
use ocfs2_watchdog::snapshot::Snapshot;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A writable copy of a fixture's rootfs.
fn copy_rootfs(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    support::copy_tree(&fixture(name).join("rootfs"), &dir.path().join("rootfs"));
    dir
}

fn quiet(mut config: Config) -> Config {
    config.kernel_log.enabled = false;
    config
}

fn snapshot(root: &Path, config: &Arc<Config>) -> Snapshot {
    let paths = HostPaths::new(root.to_path_buf(), None, None);
    let ctx = Arc::new(Context::new(paths, Arc::clone(config)));
    Sampler::new(ctx).tick(Duration::from_secs(10))
}

fn findings(rule: &str, snapshot: &Snapshot, config: &Config) -> Vec<Finding> {
    let rule = RULES
        .iter()
        .find(|r| r.name() == rule)
        .expect("rule exists");
    let mut found = rule.evaluate(snapshot, config);
    found.sort_by(|a, b| a.target.cmp(&b.target));
    found
}

fn targets(found: &[Finding]) -> Vec<&str> {
    found.iter().map(|f| f.target.as_str()).collect()
}

const MOUNTED: &str = "DEA93192F0874F53BB5290B5205C6B64";
const OTHER: &str = "C1E1EB59A1BD452F8C877C2EB87E9FCA";

#[test]
fn leaked_heartbeat_is_decided_per_uuid() {
    let config = Arc::new(quiet(Config::default()));
    // The lab node with its volume mounted: its region is not leaked.
    let root = fixture("cluster-mounted-n1").join("rootfs");
    let found = findings("leaked_heartbeat", &snapshot(&root, &config), &config);
    assert!(found.is_empty(), "{found:?}");

    // A second region whose volume is not mounted, next to the mounted one:
    // that one alone is leaked (the other mount does not hide it).
    let copy = copy_rootfs("cluster-mounted-n1");
    let root = copy.path().join("rootfs");
    // The kernel makes a region's o2hb debugfs directory with its configfs one.
    for dir in [
        "sys/kernel/config/cluster/labclu/heartbeat",
        "sys/kernel/debug/o2hb",
    ] {
        support::copy_tree(&root.join(dir).join(MOUNTED), &root.join(dir).join(OTHER));
    }
    let heartbeat = root.join("sys/kernel/config/cluster/labclu/heartbeat");
    std::fs::write(heartbeat.join(OTHER).join("dev"), "vdb\n").unwrap();
    let found = findings("leaked_heartbeat", &snapshot(&root, &config), &config);
    assert_eq!(targets(&found), [OTHER]);
    assert_eq!(
        found[0].plan,
        Some(Plan::KillLeakedHeartbeat { uuid: OTHER.into() })
    );
    assert!(
        found[0].evidence.contains("/dev/vdb"),
        "{}",
        found[0].evidence
    );

    // Nothing mounted at all: both regions are leaked.
    let table = root.join("proc/1/mountinfo");
    let text = std::fs::read_to_string(&table).unwrap();
    let unmounted: String = text
        .lines()
        .filter(|l| !l.contains(" - ocfs2 "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&table, unmounted).unwrap();
    let found = findings("leaked_heartbeat", &snapshot(&root, &config), &config);
    assert_eq!(targets(&found), [OTHER, MOUNTED]);
}

#[test]
fn a_failed_iscsi_session_is_found_and_a_logged_in_one_is_not() {
    let config = Arc::new(quiet(Config::default()));
    let root = fixture("iscsi-logged-in").join("rootfs");
    let found = findings("iscsi_session_failed", &snapshot(&root, &config), &config);
    assert!(found.is_empty(), "{found:?}");

    let root = fixture("iscsi-target-dead").join("rootfs");
    let found = findings("iscsi_session_failed", &snapshot(&root, &config), &config);
    assert_eq!(targets(&found), ["session2"]);
    assert_eq!(
        found[0].plan,
        Some(Plan::IscsiRelogin {
            session: "session2".into(),
            target: "iqn.2024-01.lab.ocfs2:shared".into(),
            portal: found[0]
                .evidence
                .split(" at ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .unwrap()
                .to_string(),
        })
    );
    assert!(
        found[0].evidence.contains("FAILED"),
        "{}",
        found[0].evidence
    );
}

#[test]
fn a_kernel_name_is_alert_only_unless_allowed_with_a_known_uuid() {
    let dir = fixture("mounts-missing");
    let root = dir.join("rootfs");
    let mut config = quiet(Config::load(&dir.join("config.toml")).unwrap());
    let shared = Arc::new(config.clone());
    let found = findings("missing_mount", &snapshot(&root, &shared), &shared);
    assert_eq!(targets(&found), ["/mnt/ocfs2", "/srv/data"]);
    // LABEL= from fstab: remounted; the device is found at action time.
    assert_eq!(
        found[0].plan,
        Some(Plan::Remount(MountSpec {
            mountpoint: "/mnt/ocfs2".into(),
            source: "LABEL=labvol".into(),
            fstype: "ocfs2".into(),
            options: "_netdev,defaults".into(),
            uuid: None,
            allow_kernel_name: false,
        }))
    );
    // /dev/sdb: alert only, and the evidence says why.
    assert_eq!(found[1].plan, None);
    assert!(
        found[1].evidence.contains("kernel name"),
        "{}",
        found[1].evidence
    );

    // Allowed, but no UUID was ever seen there: still alert only.
    config.mounts.allow_kernel_names = true;
    let shared = Arc::new(config);
    let found = findings("missing_mount", &snapshot(&root, &shared), &shared);
    assert_eq!(found[1].plan, None);
    assert!(
        found[1].evidence.contains("no UUID"),
        "{}",
        found[1].evidence
    );
}

#[test]
fn the_unstack_ignore_list_keeps_stacks_out_of_the_rule() {
    let mut config = quiet(Config::default());
    config.mounts.fstypes = vec!["tmpfs".into()];
    config.mounts.use_fstab = false;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("proc/1")).unwrap();
    std::fs::write(
        dir.path().join("proc/1/mountinfo"),
        "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
         20 1 0:50 / /srv/a rw - tmpfs t rw\n\
         21 20 0:50 / /srv/a rw - tmpfs t rw\n\
         30 1 0:51 / /var/lib/kubelet/pods/p1/volumes/v rw - tmpfs u rw\n\
         31 30 0:51 / /var/lib/kubelet/pods/p1/volumes/v rw - tmpfs u rw\n",
    )
    .unwrap();
    let shared = Arc::new(config.clone());
    let snap = snapshot(dir.path(), &shared);
    let found = findings("duplicate_mount_layers", &snap, &shared);
    assert_eq!(
        targets(&found),
        ["/srv/a", "/var/lib/kubelet/pods/p1/volumes/v"]
    );
    // `*` stays within one component: this pattern does not match.
    config.mounts.unstack_ignore = vec!["/var/lib/kubelet/*".into()];
    let found = findings("duplicate_mount_layers", &snap, &config);
    assert_eq!(found.len(), 2);
    config.mounts.unstack_ignore = vec!["/var/lib/kubelet/pods/**".into(), "/srv/?".into()];
    let found = findings("duplicate_mount_layers", &snap, &config);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_kernel_name_is_remounted_only_as_the_volume_last_seen_there() {
    let copy = copy_rootfs("cluster-mounted-n1");
    let root = copy.path().join("rootfs");
    let mut config = quiet(Config::default());
    config.mounts.allow_kernel_names = true;
    config
        .mounts
        .expected
        .push(ocfs2_watchdog::config::ExpectedMount {
            mountpoint: "/mnt/ocfs2".into(),
            source: "/dev/vda".into(),
            fstype: "ocfs2".into(),
            options: "_netdev".into(),
        });
    let config = Arc::new(config);
    let paths = HostPaths::new(root.clone(), None, None);
    let mut sampler = Sampler::new(Arc::new(Context::new(paths, Arc::clone(&config))));
    let mounted = sampler.tick(Duration::from_secs(10));
    assert!(findings("missing_mount", &mounted, &config).is_empty());
    // The volume goes away; the UUID seen while it was mounted stays with
    // the path and goes into the plan, for the action to check the device.
    let table = root.join("proc/1/mountinfo");
    let text = std::fs::read_to_string(&table).unwrap();
    let unmounted: String = text
        .lines()
        .filter(|l| !l.contains(" - ocfs2 "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&table, unmounted).unwrap();
    for _ in 0..2 {
        let missing = sampler.tick(Duration::from_secs(10));
        let found = findings("missing_mount", &missing, &config);
        assert_eq!(targets(&found), ["/mnt/ocfs2"]);
        assert_eq!(
            found[0].plan,
            Some(Plan::Remount(MountSpec {
                mountpoint: "/mnt/ocfs2".into(),
                source: "/dev/vda".into(),
                fstype: "ocfs2".into(),
                options: "_netdev".into(),
                uuid: Some(MOUNTED.into()),
                allow_kernel_name: true,
            }))
        );
    }
}
