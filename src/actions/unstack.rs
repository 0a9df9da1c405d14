//! Unstack: pop duplicate layers off a mount point until one remains.
//!
//! Only the run of layers at the top that each duplicate the layer directly
//! below (same device, root, per-mount flags and propagation type,
//! `stack::duplicate_layer`) is removed, so the last layer, a deliberate
//! read-only self-bind and any different filesystem shadowing the stack are
//! never touched. Mount points matching `[mounts] unstack_ignore` never get
//! a plan (the `duplicate_mount_layers` rule leaves them out), and the action
//! refuses them once more just before it acts: the list is read again on
//! SIGHUP, which can come between the decision and the action.
//! `umount2(path, 0)` pops the topmost layer (docs/interfaces.md §7.3).
//! A layer in a shared peer group is made private first (`MS_PRIVATE` on that
//! one mount, not recursive). That alone is not enough: an unmount propagates
//! through the *parent's* peer group (the layer below, still shared), so
//! popping one path can remove a layer of a peer path. With shared layers the
//! table is therefore re-read before every pop and the count re-derived, so
//! every path ends with exactly one layer and none with zero (§7.4; tested
//! in tests/remediation.rs). Private stacks are popped in batches with one
//! re-read per batch, which keeps 4096 → 1 at about the cost of the syscalls.
//! Every pop is for one layer named by its mount id (mountinfo field 1,
//! from the last re-read): immediately before `MS_PRIVATE` and `umount2`
//! the id on top at the path is read again (`statx` `STATX_MNT_ID`, the
//! last component not followed) and a different one refuses the action as
//! `precondition_changed`; `umount2` gets `UMOUNT_NOFOLLOW`. So a path
//! swapped for a symbolic link, or a mount slipped on top, between the
//! re-read and the syscall is never what gets unmounted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::{not_mine, Action, ActionError, Checked, HostActions, Plan, VolumeClaim};
use crate::collector::mounts::mountinfo::{parse_mountinfo, MountEntry, MountTable};
use crate::collector::mounts::stack::{duplicate_layer, TableIndex};

/// Pops duplicate layers off `Plan::Unstack`'s mount point.
pub struct Unstack;

impl Action for Unstack {
    fn name(&self) -> &'static str {
        "unstack"
    }

    fn check(&self, host: &HostActions, plan: &Plan) -> Checked {
        let Plan::Unstack { mountpoint } = plan else {
            return Err(not_mine(self, plan));
        };
        Ok(check(host, mountpoint)?)
    }

    fn run(&self, host: &HostActions, plan: &Plan) -> Result<String, ActionError> {
        let Plan::Unstack { mountpoint } = plan else {
            return Err(ActionError::Failed(not_mine(self, plan)));
        };
        run(host, mountpoint)
    }

    fn claim(&self, plan: &Plan) -> VolumeClaim {
        let Plan::Unstack { mountpoint } = plan else {
            return VolumeClaim::keys(Vec::new()).whole_stack();
        };
        VolumeClaim::keys(vec![VolumeClaim::mount(mountpoint)]).on_stack()
    }

    fn disruptive(&self) -> bool {
        false
    }

    fn destructive(&self) -> bool {
        true
    }

    fn held_by_partition(&self) -> bool {
        true
    }

    fn needs_lease(&self, _serialize_remounts: bool) -> bool {
        // Only a duplicate layer goes; the volume stays mounted.
        false
    }

    fn takes_down<'p>(&self, plan: &'p Plan) -> Option<Vec<&'p str>> {
        match plan {
            Plan::Unstack { mountpoint } => Some(vec![mountpoint.as_str()]),
            _ => None,
        }
    }
}

/// The daemon's own mount table could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {error}", path.display())]
pub struct TableError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// Why an unstack does not (or did not fully) happen.
#[derive(Debug, thiserror::Error)]
pub enum UnstackError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("{0} matches [mounts] unstack_ignore; left stacked")]
    Ignored(String),
    #[error("no duplicate layer on top of {mountpoint} ({layers} layers)")]
    NoDuplicate { mountpoint: String, layers: usize },
    #[error(
        "timed out after unmounting {popped} layers of {mountpoint}; {duplicates} duplicates left"
    )]
    TimedOut {
        mountpoint: String,
        popped: usize,
        duplicates: usize,
    },
    #[error("unmount of a layer of {mountpoint} failed after {popped} layers: {error}")]
    Pop {
        mountpoint: String,
        popped: usize,
        error: nix::Error,
    },
    #[error("{mountpoint} changed under the action after {popped} layers: {moved}; left as it is")]
    Moved {
        mountpoint: String,
        popped: usize,
        moved: Moved,
    },
}

/// What is at the path is not the layer the pop was planned for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Moved {
    #[error("mount {found} is on top, not {planned}")]
    Other { planned: u32, found: u64 },
    #[error("the path is a symbolic link now")]
    Link,
    #[error("cannot read the mount on top: {0}")]
    Unreadable(String),
}

/// Why one layer was not popped.
#[derive(Debug, thiserror::Error)]
pub enum PopError {
    #[error(transparent)]
    Moved(Moved),
    #[error(transparent)]
    Syscall(nix::Error),
}

/// `[mounts] unstack_ignore` shared between the daemon's SIGHUP handler
/// and the actions: the patterns in force when the action runs.
#[derive(Debug, Clone, Default)]
pub struct UnstackIgnore(Arc<RwLock<Vec<String>>>);

impl UnstackIgnore {
    pub fn new(patterns: Vec<String>) -> Self {
        Self(Arc::new(RwLock::new(patterns)))
    }

    /// Replaces the patterns (a reloaded configuration).
    pub fn set(&self, patterns: Vec<String>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = patterns;
    }

    pub fn patterns(&self) -> Vec<String> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The pattern-matching rule of `[mounts] unstack_ignore`.
    pub fn matches(&self, mountpoint: &str) -> bool {
        let patterns = self.0.read().unwrap_or_else(|e| e.into_inner());
        crate::config::unstack_ignore_matches(&patterns, mountpoint)
    }
}

/// Layers popped between two re-reads of the mount table.
const BATCH: usize = 512;

/// Test hook (tests/remediation_daemon.rs): when set to a path, the action
/// stops after its first batch of pops, creates `<path>.reached` and waits
/// (up to its deadline) until `<path>` exists, so that a test can kill the
/// daemon in the middle of the action for certain.
pub const TEST_BARRIER_ENV: &str = "OCFS2_WATCHDOG_TEST_UNSTACK_BARRIER";

fn wait_at_test_barrier(deadline: Instant) {
    let Some(barrier) = std::env::var_os(TEST_BARRIER_ENV).map(PathBuf::from) else {
        return;
    };
    let mut reached = barrier.clone().into_os_string();
    reached.push(".reached");
    if let Err(error) = std::fs::write(&reached, b"") {
        tracing::warn!(path = ?reached, error = %error, "Cannot mark the unstack test barrier as reached.");
    }
    while !barrier.exists() && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The daemon's own mount table (the namespace its syscalls act in).
pub fn read_own_table(host: &HostActions) -> Result<MountTable, TableError> {
    let path = host.paths.proc("self/mountinfo");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(parse_mountinfo(&text)),
        Err(error) => Err(TableError { path, error }),
    }
}

/// The path the daemon acts on for a host mount point.
pub fn local_path(host: &HostActions, mountpoint: &str) -> PathBuf {
    host.paths.root(mountpoint)
}

/// Layers at the top that duplicate the one below, top first.
pub fn duplicate_run<'a>(layers: &[&'a MountEntry]) -> Vec<&'a MountEntry> {
    layers
        .windows(2)
        .take_while(|pair| duplicate_layer(pair[0], pair[1]))
        .map(|pair| pair[0])
        .collect()
}

struct Stack {
    total: usize,
    duplicates: usize,
    /// Mount ids of the duplicate layers, top first.
    ids: Vec<u32>,
    shared: bool,
}

fn stack_at(host: &HostActions, path: &Path) -> Result<Stack, TableError> {
    let table = read_own_table(host)?;
    let index = TableIndex::new(&table.entries);
    let layers = index.layers(&path.to_string_lossy());
    let run = duplicate_run(&layers);
    Ok(Stack {
        total: layers.len(),
        duplicates: run.len(),
        ids: run.iter().map(|e| e.id).collect(),
        shared: run.iter().any(|e| e.shared_group().is_some()),
    })
}

pub fn check(host: &HostActions, mountpoint: &str) -> Result<String, UnstackError> {
    refuse_ignored(host, mountpoint)?;
    let path = local_path(host, mountpoint);
    let stack = stack_at(host, &path)?;
    if stack.duplicates == 0 {
        return Err(UnstackError::NoDuplicate {
            mountpoint: mountpoint.to_string(),
            layers: stack.total,
        });
    }
    Ok(format!(
        "unmount {} duplicate layers of {mountpoint}, keeping 1 of {}",
        stack.duplicates, stack.total
    ))
}

/// The operator asked (maybe since the decision) to leave it stacked.
fn refuse_ignored(host: &HostActions, mountpoint: &str) -> Result<(), UnstackError> {
    if host.unstack_ignore.matches(mountpoint) {
        return Err(UnstackError::Ignored(mountpoint.to_string()));
    }
    Ok(())
}

pub fn run(host: &HostActions, mountpoint: &str) -> Result<String, ActionError> {
    refuse_ignored(host, mountpoint).map_err(ActionError::changed)?;
    let path = local_path(host, mountpoint);
    let deadline = crate::input::deadline(host.timeout);
    let mut popped = 0usize;
    let mut at_barrier = true;
    loop {
        if popped > 0 && std::mem::take(&mut at_barrier) {
            wait_at_test_barrier(deadline);
        }
        let stack =
            stack_at(host, &path).map_err(|e| ActionError::failed(UnstackError::from(e)))?;
        if stack.duplicates == 0 {
            if popped == 0 {
                return Err(ActionError::changed(UnstackError::NoDuplicate {
                    mountpoint: mountpoint.to_string(),
                    layers: stack.total,
                }));
            }
            return Ok(format!(
                "unmounted {popped} duplicate layers of {mountpoint}; {} left",
                stack.total
            ));
        }
        if Instant::now() >= deadline {
            return Err(ActionError::failed(UnstackError::TimedOut {
                mountpoint: mountpoint.to_string(),
                popped,
                duplicates: stack.duplicates,
            }));
        }
        // Propagation can remove layers here when a peer path is popped (and
        // the reverse): with shared layers, re-read before every pop.
        let batch = if stack.shared { 1 } else { BATCH };
        for &planned in stack.ids.iter().take(batch) {
            pop_layer(&path, planned, stack.shared).map_err(|error| match error {
                PopError::Moved(moved) => ActionError::changed(UnstackError::Moved {
                    mountpoint: mountpoint.to_string(),
                    popped,
                    moved,
                }),
                PopError::Syscall(error) => ActionError::failed(UnstackError::Pop {
                    mountpoint: mountpoint.to_string(),
                    popped,
                    error,
                }),
            })?;
            popped += 1;
        }
    }
}

/// Pops the layer `planned` (a mount id) off `path`, refusing when another
/// mount is on top there or the path has become a symbolic link.
pub fn pop_layer(path: &Path, planned: u32, shared: bool) -> Result<(), PopError> {
    if shared {
        still_on_top(path, planned)?;
        mount(
            None::<&str>,
            path,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(PopError::Syscall)?;
    }
    still_on_top(path, planned)?;
    umount2(path, MntFlags::UMOUNT_NOFOLLOW).map_err(PopError::Syscall)
}

fn still_on_top(path: &Path, planned: u32) -> Result<(), PopError> {
    match top_mount(path) {
        Ok(Top::Link) => Err(PopError::Moved(Moved::Link)),
        Ok(Top::Mount(found)) if found == u64::from(planned) => Ok(()),
        Ok(Top::Mount(found)) => Err(PopError::Moved(Moved::Other { planned, found })),
        Err(e) => Err(PopError::Moved(Moved::Unreadable(e.to_string()))),
    }
}

/// What `path` names, its last component not followed.
enum Top {
    Link,
    /// The id of the mount on top there.
    Mount(u64),
}

/// The id of the mount on top at `path` (the last component not followed):
/// `statx` `STATX_MNT_ID` (Linux 5.8), else the top layer in
/// `/proc/self/mountinfo`. An error when `path` is a symbolic link.
pub fn top_mount_id(path: &Path) -> std::io::Result<u64> {
    match top_mount(path)? {
        Top::Mount(id) => Ok(id),
        Top::Link => Err(std::io::Error::other("the path is a symbolic link")),
    }
}

/// One `statx` answers both (each path walk over a deep stack costs a
/// lookup per layer, and a pop already pays one in `umount2`).
fn top_mount(path: &Path) -> std::io::Result<Top> {
    use std::os::unix::ffi::OsStrExt as _;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: all-zero is a valid `statx`; the kernel fills it in.
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    // The raw system call, not glibc's wrapper: the release binary links
    // against glibc 2.17, which has no `statx` (2.28). SAFETY: `name` is a
    // NUL-terminated path and `buf` a live, writable `statx` for the
    // duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_statx,
            libc::AT_FDCWD,
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
            libc::STATX_TYPE | libc::STATX_MNT_ID,
            &mut buf as *mut libc::statx,
        )
    };
    if rc == 0 {
        if u32::from(buf.stx_mode) & libc::S_IFMT == libc::S_IFLNK {
            return Ok(Top::Link);
        }
        if buf.stx_mask & libc::STATX_MNT_ID != 0 {
            return Ok(Top::Mount(buf.stx_mnt_id));
        }
    } else {
        let error = std::io::Error::last_os_error();
        // Before Linux 4.11 there is no statx: lstat for the link, the
        // mount table for the id.
        if error.raw_os_error() != Some(libc::ENOSYS) {
            return Err(error);
        }
        if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
            return Ok(Top::Link);
        }
    }
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    let table = parse_mountinfo(&text);
    TableIndex::new(&table.entries)
        .layers(&path.to_string_lossy())
        .first()
        .map(|top| Top::Mount(u64::from(top.id)))
        .ok_or_else(|| std::io::Error::other("nothing is mounted there"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_top_run_of_duplicates_is_removed() {
        let table = parse_mountinfo(concat!(
            "20 1 0:5 / /m rw - tmpfs a rw\n",
            "21 20 0:6 / /m rw - tmpfs b rw\n",
            "22 21 0:6 / /m rw - tmpfs b rw\n",
            "23 22 0:6 / /m rw - tmpfs b rw\n",
        ));
        let index = TableIndex::new(&table.entries);
        let layers = index.layers("/m");
        let run = duplicate_run(&layers);
        assert_eq!(run.iter().map(|e| e.id).collect::<Vec<_>>(), vec![23, 22]);
        // A read-only self-bind on top (same filesystem, other flags): kept,
        // and so is everything under it.
        let table = parse_mountinfo(concat!(
            "20 1 0:6 / /m rw - tmpfs b rw\n",
            "21 20 0:6 / /m rw - tmpfs b rw\n",
            "22 21 0:6 / /m ro - tmpfs b rw\n",
        ));
        let index = TableIndex::new(&table.entries);
        assert!(duplicate_run(&index.layers("/m")).is_empty());
        // A different filesystem on top: nothing to pop.
        let table = parse_mountinfo(concat!(
            "20 1 0:5 / /m rw - tmpfs a rw\n",
            "21 20 0:5 / /m rw - tmpfs a rw\n",
            "22 21 0:6 / /m rw - tmpfs b rw\n",
        ));
        let index = TableIndex::new(&table.entries);
        assert!(duplicate_run(&index.layers("/m")).is_empty());
        assert!(duplicate_run(&index.layers("/nothing")).is_empty());
    }
}
