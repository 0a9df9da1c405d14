//! Proves that a scratch tree's deletion cannot reach through a mount.
//!
//! A bind of a canary directory (kept in its own scratch tree) is mounted
//! under the tree being dropped: the canary must survive when `ScratchDir`
//! can unmount the bind, when it cannot, and when the mount table cannot be
//! read; a tree on another filesystem or mount below it is never entered
//! even when the table lies. The refusals are driven through the injectable
//! table reader and unmount of `tests/support/scratch.rs`. Each test runs in
//! its own private mount namespace, so nothing it mounts outlives it.

mod support;

use std::path::{Path, PathBuf};

use support::scratch::{read_own_mountinfo, remove_tree, unmount_lazily};
use support::{bind, enter_private_namespace, make_shared, mount_tmpfs, ScratchDir};

/// A canary tree: a file and a nested file, in a scratch tree of its own.
fn canary() -> (ScratchDir, PathBuf) {
    let home = ScratchDir::new();
    let canary = home.path().join("canary");
    std::fs::create_dir_all(canary.join("nested")).unwrap();
    std::fs::write(canary.join("file"), "alive").unwrap();
    std::fs::write(canary.join("nested").join("file"), "alive").unwrap();
    (home, canary)
}

fn assert_alive(canary: &Path) {
    assert_eq!(
        std::fs::read_to_string(canary.join("file")).ok().as_deref(),
        Some("alive"),
        "the canary was deleted through the bind"
    );
    assert_eq!(
        std::fs::read_to_string(canary.join("nested").join("file"))
            .ok()
            .as_deref(),
        Some("alive"),
        "the canary's subdirectory was deleted through the bind"
    );
}

fn bind_canary_under(scratch: &ScratchDir, canary: &Path) -> PathBuf {
    let inside = scratch.path().join("a").join("bound");
    std::fs::create_dir_all(&inside).unwrap();
    bind(canary, &inside);
    assert!(inside.join("file").exists(), "the bind is in place");
    inside
}

fn mounted_at(point: &Path) -> bool {
    read_own_mountinfo()
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(point.to_str().unwrap()))
}

fn refuse_unmount(_: &Path) -> nix::Result<()> {
    Err(nix::errno::Errno::EPERM)
}

fn unreadable_table() -> std::io::Result<String> {
    Err(std::io::Error::other("injected: mountinfo unreadable"))
}

/// A table that shows nothing mounted anywhere: only the deletion's own
/// device and mount checks stand between it and what is mounted below.
fn lying_table() -> std::io::Result<String> {
    Ok(String::new())
}

/// Removes a tree a refusing `ScratchDir` kept, once the test unmounted it.
fn clean_up_kept(path: &Path, mounts: &[&Path]) {
    for point in mounts {
        unmount_lazily(point).unwrap();
    }
    remove_tree(path).unwrap();
}

#[test]
fn a_bind_under_a_scratch_tree_is_unmounted_and_survives_the_drop() {
    if !enter_private_namespace("a_bind_under_a_scratch_tree_is_unmounted_and_survives_the_drop") {
        return;
    }
    let (_home, canary) = canary();
    let scratch = ScratchDir::new();
    let inside = bind_canary_under(&scratch, &canary);
    // A recursive bind too: the shape that once took a host's /etc with it.
    let recursive = scratch.path().join("rbind");
    std::fs::create_dir_all(&recursive).unwrap();
    nix::mount::mount(
        Some(canary.parent().unwrap()),
        &recursive,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    )
    .unwrap();
    let path = scratch.path().to_path_buf();
    assert_eq!(std::fs::canonicalize(&path).unwrap(), path, "canonical");
    drop(scratch);
    assert_alive(&canary);
    assert!(!mounted_at(&inside) && !mounted_at(&recursive));
    assert!(!path.exists(), "the scratch tree itself is removed");
}

#[test]
fn a_mount_it_cannot_unmount_keeps_the_tree() {
    if !enter_private_namespace("a_mount_it_cannot_unmount_keeps_the_tree") {
        return;
    }
    let (_home, canary) = canary();
    let scratch = ScratchDir::with_hooks(read_own_mountinfo, refuse_unmount);
    let inside = bind_canary_under(&scratch, &canary);
    let path = scratch.path().to_path_buf();
    let kept = scratch
        .release()
        .expect_err("kept while something is mounted");
    assert!(kept.contains("still mounted"), "{kept}");
    assert!(
        kept.contains(inside.to_str().unwrap()),
        "names the mount: {kept}"
    );
    assert_alive(&canary);
    assert!(
        mounted_at(&inside) && path.join("a").exists(),
        "left as it was"
    );
    clean_up_kept(&path, &[&inside]);
    assert_alive(&canary);
}

#[test]
fn an_unreadable_mount_table_keeps_the_tree() {
    if !enter_private_namespace("an_unreadable_mount_table_keeps_the_tree") {
        return;
    }
    let (_home, canary) = canary();
    let scratch = ScratchDir::with_hooks(unreadable_table, unmount_lazily);
    let inside = bind_canary_under(&scratch, &canary);
    let path = scratch.path().to_path_buf();
    let kept = scratch.release().expect_err("kept without a mount table");
    assert!(kept.contains("cannot read the mount table"), "{kept}");
    assert_alive(&canary);
    assert!(
        mounted_at(&inside) && path.join("a").exists(),
        "left as it was"
    );
    clean_up_kept(&path, &[&inside]);
    assert_alive(&canary);
}

#[test]
fn deletion_never_enters_another_filesystem_mount_or_symlink() {
    if !enter_private_namespace("deletion_never_enters_another_filesystem_mount_or_symlink") {
        return;
    }
    let (_home, canary) = canary();
    // The table lies and the unmount refuses: the walk alone must hold.
    let scratch = ScratchDir::with_hooks(lying_table, refuse_unmount);
    // A bind from the same filesystem: same device, another mount.
    let inside = bind_canary_under(&scratch, &canary);
    // Another filesystem: a tmpfs with a file of its own.
    let other = scratch.path().join("b").join("tmpfs");
    std::fs::create_dir_all(&other).unwrap();
    mount_tmpfs(&other);
    std::fs::write(other.join("kept"), "kept").unwrap();
    // A symlink to the canary is removed, never followed.
    std::os::unix::fs::symlink(&canary, scratch.path().join("link")).unwrap();
    std::fs::write(scratch.path().join("plain"), "goes").unwrap();
    let path = scratch.path().to_path_buf();
    let kept = scratch.release().expect_err("kept what it would not enter");
    assert!(kept.contains("not entering"), "{kept}");
    assert!(
        kept.contains(other.to_str().unwrap()),
        "names the tmpfs: {kept}"
    );
    assert!(
        kept.contains(inside.to_str().unwrap()),
        "names the bind: {kept}"
    );
    assert_alive(&canary);
    assert_eq!(std::fs::read_to_string(other.join("kept")).unwrap(), "kept");
    assert!(!path.join("plain").exists(), "what is its own is deleted");
    assert!(!path.join("link").exists(), "the symlink itself is deleted");
    clean_up_kept(&path, &[&inside, &other]);
    assert_alive(&canary);
}

#[test]
fn mount_points_with_escaped_names_are_found() {
    if !enter_private_namespace("mount_points_with_escaped_names_are_found") {
        return;
    }
    let (_home, canary) = canary();
    let scratch = ScratchDir::new();
    // mountinfo writes a space as \040: an unescaped comparison misses it.
    let inside = scratch.path().join("with space\\and backslash");
    std::fs::create_dir_all(&inside).unwrap();
    bind(&canary, &inside);
    let path = scratch.path().to_path_buf();
    scratch.release().unwrap();
    assert_alive(&canary);
    assert!(!path.exists());
}

#[test]
fn unmounting_an_rbind_of_a_shared_tree_never_unmounts_the_original() {
    if !enter_private_namespace("unmounting_an_rbind_of_a_shared_tree_never_unmounts_the_original")
    {
        return;
    }
    // The "host": a shared root with a leaf mount, as a host's `/` is shared
    // with `/run/lock` or `/dev/mqueue` below it.
    let home = ScratchDir::new();
    let host = home.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    mount_tmpfs(&host);
    make_shared(&host);
    let leaf = host.join("leaf");
    std::fs::create_dir_all(&leaf).unwrap();
    mount_tmpfs(&leaf);
    std::fs::write(leaf.join("file"), "alive").unwrap();
    // A scratch tree with an rbind of it: the copy is a peer of the host.
    let scratch = ScratchDir::new();
    let copy = scratch.path().join("host");
    std::fs::create_dir_all(&copy).unwrap();
    nix::mount::mount(
        Some(&host),
        &copy,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    )
    .unwrap();
    assert!(copy.join("leaf").join("file").exists());
    let path = scratch.path().to_path_buf();
    drop(scratch);
    assert!(
        mounted_at(&leaf),
        "unmounting the copy unmounted the original through propagation"
    );
    assert_eq!(std::fs::read_to_string(leaf.join("file")).unwrap(), "alive");
    assert!(!path.exists(), "the scratch tree itself is removed");
}
