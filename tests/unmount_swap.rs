//! An unmount hits exactly the layer it was planned for: real mounts in a
//! private mount namespace. A path swapped for a symbolic link to a stacked
//! mount point, or a layer id that is no longer on top, is refused before
//! any syscall changes a mount (and the link's target keeps every layer);
//! the planned layer is popped with `UMOUNT_NOFOLLOW`. The o2cb restart's
//! unmount refuses a link and another mount on top the same way.

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
    let record = |mountpoint: &Path| RestoreMount {
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
    };
    // A link planted at the recorded mount point.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&volume, &link).unwrap();
    let refused = restore::unmount(&host, &record(&link), planned[0]).unwrap_err();
    assert!(refused.to_string().contains("symbolic link"), "{refused}");
    assert_eq!(ids(&volume), planned);
    // Something mounted on top since the re-check.
    bind(&volume, &volume);
    let refused = restore::unmount(&host, &record(&volume), planned[0]).unwrap_err();
    assert!(refused.to_string().contains("not the planned"), "{refused}");
    assert_eq!(ids(&volume).len(), 2);
}
