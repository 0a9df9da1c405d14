//! An unmount hits exactly the layer it was planned for: real mounts in a
//! private mount namespace. A path swapped for a symbolic link to a stacked
//! mount point, or a layer id that is no longer on top, is refused before
//! any syscall changes a mount (and the link's target keeps every layer);
//! the planned layer is popped with `UMOUNT_NOFOLLOW`. The o2cb restart's
//! unmount goes through the same pop (a syscall, never `umount(8)`) and
//! refuses a link, another mount on top, and a path swapped between the plan
//! and the unmount the same way.

mod support;

use std::path::Path;

use ocfs2_watchdog::actions::restore::{self, RestoreHow, RestoreMount};
use ocfs2_watchdog::actions::unstack::{pop_layer, top_mount_id, Moved, PopError};
use ocfs2_watchdog::actions::HostActions;
use ocfs2_watchdog::collector::mounts::mountinfo::parse_mountinfo;
use ocfs2_watchdog::collector::mounts::stack::TableIndex;
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::rules::config::RemediationConfig;
use support::{bind, enter_private_namespace, mount_tmpfs, ScratchDir};

/// Mount ids at `path`, top first.
fn ids(path: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let table = parse_mountinfo(&text);
    TableIndex::new(&table.entries)
        .layers(&path.to_string_lossy())
        .iter()
        .map(|e| e.id)
        .collect()
}

#[test]
fn a_swapped_path_or_another_layer_on_top_is_never_unmounted() {
    if !enter_private_namespace("a_swapped_path_or_another_layer_on_top_is_never_unmounted") {
        return;
    }
    let dir = ScratchDir::new();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    mount_tmpfs(&real);
    bind(&real, &real);
    bind(&real, &real);
    let stack = ids(&real);
    assert_eq!(stack.len(), 3);
    assert_eq!(top_mount_id(&real).unwrap(), u64::from(stack[0]));

    // The path became a link to the stack: the link is not followed.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let refused = pop_layer(&link, stack[0], false).unwrap_err();
    assert!(matches!(refused, PopError::Moved(Moved::Link)), "{refused}");
    assert_eq!(ids(&real), stack, "the link's target kept every layer");

    // Another layer is on top than the one planned for.
    let refused = pop_layer(&real, stack[1], false).unwrap_err();
    assert!(
        matches!(refused, PopError::Moved(Moved::Other { planned, found })
            if planned == stack[1] && found == u64::from(stack[0])),
        "{refused}"
    );
    assert!(refused.to_string().contains("is on top"), "{refused}");
    assert_eq!(ids(&real), stack);

    // The planned layer goes, and only it.
    pop_layer(&real, stack[0], false).unwrap();
    assert_eq!(ids(&real), stack[1..]);
    pop_layer(&real, stack[1], false).unwrap();
    assert_eq!(ids(&real), stack[2..]);
}

#[test]
fn the_o2cb_restart_unmount_refuses_a_link_and_a_new_top() {
    if !enter_private_namespace("the_o2cb_restart_unmount_refuses_a_link_and_a_new_top") {
        return;
    }
    let dir = ScratchDir::new();
    let volume = dir.path().join("vol");
    std::fs::create_dir(&volume).unwrap();
    mount_tmpfs(&volume);
    let host = HostActions::new(HostPaths::default(), &RemediationConfig::default());
    let planned = ids(&volume);
    let record = tmpfs_record;
    // A link planted at the recorded mount point.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&volume, &link).unwrap();
    let refused = restore::unmount(&host, &record(&link), planned[0]).unwrap_err();
    assert!(refused.to_string().contains("symbolic link"), "{refused}");
    assert_eq!(ids(&volume), planned);
    // Something mounted on top since the re-check.
    bind(&volume, &volume);
    let refused = restore::unmount(&host, &record(&volume), planned[0]).unwrap_err();
    assert!(refused.to_string().contains("is on top"), "{refused}");
    assert_eq!(ids(&volume).len(), 2);
}

fn tmpfs_record(mountpoint: &Path) -> RestoreMount {
    RestoreMount {
        mountpoint: mountpoint.to_string_lossy().into_owned(),
        fstype: "tmpfs".into(),
        device: (0, 0),
        root: "/".into(),
        flags: String::new(),
        shared: false,
        how: RestoreHow::Device {
            source: "tmpfs".into(),
            options: String::new(),
        },
        uuid: None,
    }
}

#[test]
fn the_o2cb_restart_unmount_refuses_a_path_swapped_after_the_plan() {
    if !enter_private_namespace("the_o2cb_restart_unmount_refuses_a_path_swapped_after_the_plan") {
        return;
    }
    let dir = ScratchDir::new();
    // A `umount` tool first in PATH that only logs: the unmount is a
    // syscall, so it must never run.
    let tools = dir.path().join("tools");
    let calls = dir.path().join("calls.log");
    std::fs::create_dir(&tools).unwrap();
    let fake = tools.join("umount");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"umount $*\" >> '{}'\nexit 1\n",
            calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::env::set_var(
        "PATH",
        format!("{}:{}", tools.display(), std::env::var("PATH").unwrap()),
    );
    let host = HostActions::new(HostPaths::default(), &RemediationConfig::default());
    let parent = dir.path().join("srv");
    let volume = parent.join("vol");
    std::fs::create_dir_all(&volume).unwrap();
    mount_tmpfs(&volume);
    let mut record = tmpfs_record(&volume);
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let table = parse_mountinfo(&text);
    let top = TableIndex::new(&table.entries).layers(&volume.to_string_lossy())[0].clone();
    record.device = (top.major, top.minor);
    let planned = restore::still_mounted(&host, &record).unwrap();
    assert_eq!(ids(&volume), [planned]);

    // Between the plan and the unmount the parent is moved away and the
    // mount point becomes a link to another stack.
    let moved = dir.path().join("srv.moved");
    std::fs::rename(&parent, &moved).unwrap();
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    mount_tmpfs(&other);
    bind(&other, &other);
    let other_stack = ids(&other);
    std::fs::create_dir(&parent).unwrap();
    std::os::unix::fs::symlink(&other, &volume).unwrap();
    let refused = restore::unmount(&host, &record, planned).unwrap_err();
    assert!(refused.to_string().contains("symbolic link"), "{refused}");
    assert_eq!(
        ids(&other),
        other_stack,
        "the link's target kept every layer"
    );
    assert_eq!(
        ids(&moved.join("vol")),
        [planned],
        "the planned mount stays"
    );

    // The mount point is a directory again, with another mount on it.
    std::fs::remove_file(&volume).unwrap();
    std::fs::create_dir(&volume).unwrap();
    mount_tmpfs(&volume);
    let intruder = ids(&volume);
    let refused = restore::unmount(&host, &record, planned).unwrap_err();
    assert!(
        matches!(&refused, restore::RestoreError::Moved { moved: Moved::Other { planned: p, .. }, .. } if *p == planned),
        "{refused}"
    );
    assert_eq!(ids(&volume), intruder, "the intruding mount stays");
    assert_eq!(ids(&moved.join("vol")), [planned]);

    // A parent swapped for a link to where the planned mount now is.
    nix::mount::umount2(&volume, nix::mount::MntFlags::empty()).unwrap();
    std::fs::remove_dir(&volume).unwrap();
    std::fs::remove_dir(&parent).unwrap();
    std::os::unix::fs::symlink(&moved, &parent).unwrap();
    let refused = restore::unmount(&host, &record, planned).unwrap_err();
    assert!(refused.to_string().contains("symbolic link"), "{refused}");
    assert_eq!(ids(&moved.join("vol")), [planned]);

    // Put back as planned: the planned layer goes, by syscall.
    std::fs::remove_file(&parent).unwrap();
    std::fs::rename(&moved, &parent).unwrap();
    restore::unmount(&host, &record, planned).unwrap();
    assert!(ids(&volume).iter().all(|id| *id != planned), "unmounted");
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap_or_default(),
        "",
        "no umount tool ran"
    );
    nix::mount::umount2(&other, nix::mount::MntFlags::empty()).unwrap();
    nix::mount::umount2(&other, nix::mount::MntFlags::empty()).unwrap();
}
