//! The restart plan built from mount facts (mountinfo lines shaped like the
//! lab's capture, n1-02-2node-mounted-mountinfo.txt).

use super::*;
use crate::collector::mounts::mountinfo::parse_mountinfo;
use crate::collector::mounts::{Expected, ExpectedOrigin, ProbeView};

const OCFS2_OPTS: &str = "rw,_netdev,heartbeat=local,nointr,data=ordered,errors=remount-ro,\
                          atime_quantum=60,cluster_stack=o2cb,coherency=full,user_xattr,acl";

fn point(line: &str, expected: Option<&str>, uuid: &str) -> MountPoint {
    let top = parse_mountinfo(line).entries.remove(0);
    MountPoint {
        mountpoint: top.mount_point.clone(),
        stacked: 1,
        duplicate_layers: 0,
        shadowed: false,
        top_id: Some(top.id),
        shared: top.shared_group().is_some(),
        uuid: uuid.into(),
        last_uuid: String::new(),
        detailed: true,
        label: String::new(),
        readonly: top.is_readonly(),
        error_readonly: false,
        device_missing: false,
        mountpoint_deleted: false,
        expected: expected.map(|source| Expected {
            source: source.into(),
            fstype: "ocfs2".into(),
            options: "_netdev".into(),
            origin: ExpectedOrigin::Fstab,
        }),
        unstable_device_name: None,
        probe: ProbeView::default(),
        top: Some(top),
    }
}

fn line(id: u32, root: &str, mountpoint: &str, flags: &str, tags: &str) -> String {
    format!("{id} 1 254:0 {root} {mountpoint} {flags} {tags} - ocfs2 /dev/vda {OCFS2_OPTS}")
}

#[test]
fn primary_keeps_ro_and_options_and_binds_keep_their_root() {
    let mounts = vec![
        // Listed out of mount order: the plan restores in mount order.
        point(
            &line(
                40,
                "/pods/a",
                "/var/lib/kubelet/pods/p1/volumes/vol",
                "rw,relatime",
                "shared:7",
            ),
            None,
            "",
        ),
        point(
            &line(32, "/", "/srv/data", "ro,nosuid,relatime", "shared:7"),
            Some("UUID=1b7c3d2e"),
            "1b7c3d2e",
        ),
        point(&line(45, "/", "/mnt/again", "rw,noatime", ""), None, ""),
    ];
    let plan = restore_mounts(&mounts).unwrap();
    let names: Vec<&str> = plan.iter().map(|r| r.mountpoint.as_str()).collect();
    assert_eq!(
        names,
        [
            "/srv/data",
            "/var/lib/kubelet/pods/p1/volumes/vol",
            "/mnt/again"
        ]
    );
    assert_eq!(plan[0].flags, "ro,nosuid");
    assert_eq!(
        plan[0].how,
        RestoreHow::Device {
            source: "UUID=1b7c3d2e".into(),
            options: "_netdev,nointr,data=ordered,errors=remount-ro,atime_quantum=60,\
                      coherency=full,user_xattr,acl"
                .into()
        }
    );
    assert_eq!(
        plan[0].mount_options(),
        "ro,nosuid,_netdev,nointr,data=ordered,errors=remount-ro,atime_quantum=60,\
         coherency=full,user_xattr,acl"
    );
    assert!(plan[0].shared);
    assert_eq!(plan[1].root, "/pods/a");
    assert_eq!(
        plan[1].how,
        RestoreHow::Bind {
            from: "/srv/data".into()
        }
    );
    // A second mount of the whole volume is a bind of the first, with its flags.
    assert_eq!(plan[2].root, "/");
    assert_eq!(plan[2].flags, "noatime");
    assert!(!plan[2].shared);
    assert!(matches!(&plan[2].how, RestoreHow::Bind { from } if from == "/srv/data"));
}

#[test]
fn without_an_entry_the_udev_uuid_names_the_device() {
    let mounts = vec![point(
        &line(32, "/", "/srv/data", "rw", ""),
        None,
        "abcd-ef",
    )];
    let plan = restore_mounts(&mounts).unwrap();
    assert!(matches!(&plan[0].how, RestoreHow::Device { source, .. } if source == "UUID=abcd-ef"));
}

#[test]
fn what_cannot_be_restored_exactly_is_refused() {
    let refused = |mounts: Vec<MountPoint>, word: &str| {
        let why = restore_mounts(&mounts).unwrap_err().to_string();
        assert!(why.contains(word), "{why}");
    };
    // Only a subdirectory is mounted: no mount of the volume's root to bind from.
    refused(
        vec![point(&line(40, "/sub", "/pod", "rw", ""), None, "u")],
        "only as binds",
    );
    // A kernel name alone.
    refused(
        vec![point(&line(32, "/", "/srv/data", "rw", ""), None, "")],
        "no UUID",
    );
    // A slave mount.
    refused(
        vec![point(
            &line(32, "/", "/srv/data", "rw", "master:3"),
            None,
            "u",
        )],
        "master:3",
    );
    // A flag mount(8) has no name for.
    refused(
        vec![point(
            &line(32, "/", "/srv/data", "rw,idmapped", ""),
            None,
            "u",
        )],
        "idmapped",
    );
    // Stacked layers.
    let mut stacked = point(&line(32, "/", "/srv/data", "rw", ""), None, "u");
    stacked.stacked = 3;
    refused(vec![stacked], "unstack");
}

#[test]
fn local_mounts_and_other_filesystems_are_left_alone() {
    let local = "50 1 8:16 / /local rw - ocfs2 /dev/sdb rw,heartbeat=none,coherency=full";
    let ext4 = "51 1 8:1 / /srv rw - ext4 /dev/sda1 rw";
    let plan = restore_mounts(&[point(local, None, ""), point(ext4, None, "")]).unwrap();
    assert!(plan.is_empty(), "{plan:?}");
}

/// `o2cb_down` on a failed global region with the volume mounted.
fn evaluate(mounts: Vec<MountPoint>) -> Vec<crate::rules::Finding> {
    use std::sync::Arc;

    use crate::collector::heartbeat::HeartbeatFacts;
    use crate::collector::mounts::MountFacts;
    use crate::collector::o2cb::{O2cbFacts, StackTimeouts};
    use crate::collector::Facts;
    use crate::rules::Rule;
    use crate::snapshot::Snapshot;

    let mut snapshot = Snapshot::empty();
    let mut add = |name: &'static str, facts: Facts| snapshot.insert_facts(name, facts);
    add(
        "o2cb",
        Facts::O2cb(Arc::new(O2cbFacts {
            cluster_name: "labclu".into(),
            // Offline with the mounts still in the table: a failed global
            // region, the other trigger, is alert only until a cluster lease
            // exists (o2cb_region), so it plans nothing.
            online: false,
            last_timeouts: Some(StackTimeouts {
                dead_threshold: Some(7),
                idle_timeout_ms: Some(10000),
                ..StackTimeouts::default()
            }),
            ..O2cbFacts::default()
        })),
    );
    add(
        "heartbeat",
        Facts::Heartbeat(Arc::new(HeartbeatFacts {
            live_any: [1, 2].into(),
            ..HeartbeatFacts::default()
        })),
    );
    add(
        "mounts",
        Facts::Mounts(Arc::new(MountFacts {
            mounts,
            ..MountFacts::default()
        })),
    );
    super::super::o2cb_down::O2cbDown.evaluate(&snapshot, &crate::config::Config::default())
}

#[test]
fn the_rule_plans_the_exact_restore_with_the_seen_timeouts_or_says_why_not() {
    let good = point(&line(32, "/", "/srv/data", "ro", ""), Some("/dev/vda"), "");
    let findings = evaluate(vec![good]);
    let Some(crate::actions::Plan::RestartO2cb {
        volumes, timeouts, ..
    }) = &findings[0].plan
    else {
        panic!("{findings:?}")
    };
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0].flags, "ro");
    assert_eq!(timeouts.and_then(|t| t.idle_timeout_ms), Some(10000));

    let slave = point(
        &line(32, "/", "/srv/data", "rw", "master:9"),
        Some("/dev/vda"),
        "",
    );
    let findings = evaluate(vec![slave]);
    assert!(findings[0].plan.is_none(), "{findings:?}");
    assert!(
        findings[0]
            .evidence
            .contains("alert only: /srv/data is a master:9 mount"),
        "{}",
        findings[0].evidence
    );
}
