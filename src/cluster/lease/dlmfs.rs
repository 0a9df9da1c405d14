//! The dlmfs route of the cluster lease: an o2dlm EX lock taken through
//! `ocfs2_dlmfs`, when this node's o2cb stack is online.
//!
//! fs/ocfs2/dlmfs/dlmfs.c and userdlm.c, as the lab kernel does them
//! (docs/design.md, "dlmfs lock semantics"): a directory made under the
//! dlmfs mount joins a DLM domain of that name (`mkdir`; EINVAL in local
//! heartbeat mode while no volume is mounted: no heartbeat, no domain, and
//! the lease goes by the peers); `open(2)` with `O_RDWR|O_NONBLOCK` of a
//! file in it is an EX trylock that fails with `ETXTBSY` while another node
//! holds the lock. The lock belongs to the node, not the fd: a second open
//! on the same node succeeds at once. And `close(2)` does NOT free it for
//! the other nodes: userdlm keeps the lock cached at EX and only gives it
//! up on a blocking AST, which a trylock (`LKM_NOQUEUE`) never sends. So a
//! grant ends with close *and* `unlink` of the lock file
//! (`user_dlm_destroy_lock` unlocks it in the DLM; `EBUSY` while another fd
//! of this node still holds it, whose own release unlinks it later), and a
//! starting daemon unlinks what a killed predecessor left cached
//! (`release_stale`). A fenced node's locks are recovered by the surviving
//! nodes' DLM. Each acquisition leaves the idle domain and joins it again:
//! a node that stopped heartbeating (local mode, last volume unmounted)
//! keeps its old domain as a one-node island that grants every lock, where
//! a fresh join fails with EINVAL. The engine also asks the peers instead
//! when this node does not heartbeat or a DLM domain misses a live node
//! (`Context::dlm_untrusted`): a resumed zombie's domain grants locks the
//! others hold.
//!
//! A blocking open is never made: it waits in D state, and while it is
//! queued every trylock of that name on every node blocks too. A trylock
//! can still block behind someone else's blocking open (an admin's shell),
//! and a trylock or a domain join waits for o2net while a node is dying
//! (over 10 s in the lab), so leaving, joining and the trylock run on their
//! own thread with a deadline; a lock that thread gets after the deadline
//! is released when its answer finds nobody waiting.
//!
//! `LockSpace` is the seam: the engine's decision logic is tested with a
//! fake, the real `Dlmfs` in the QEMU lab. In a container (`--path.rootfs`
//! not `/`) the mount is reached through `<procfs>/1/root/dlm`, and made,
//! when absent, by a child that enters PID 1's mount namespace first.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use crate::host::HostPaths;

/// `DLMFS_MAGIC` (fs/ocfs2/dlmfs/dlmfs.c), the `statfs` type of a dlmfs mount.
const DLMFS_MAGIC: i64 = 0x76a9_f425;

/// The DLM domain (a directory under the mount) the watchdog's locks live in.
pub const DOMAIN: &str = "ocfs2-watchdog";

/// A held lock: dropping it closes the fd, which releases the lock.
pub type HeldLock = Box<dyn Send>;

#[derive(Debug, thiserror::Error)]
pub enum DlmError {
    #[error("ocfs2_dlmfs is not mounted at {path} and mounting it failed: {error}")]
    Mount { path: String, error: String },
    #[error("cannot join the DLM domain {path} (is this node heartbeating?): {source}")]
    Domain {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot take the DLM lock {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
    #[error("the DLM did not answer the domain join or trylock of {path} within {seconds} s (a node dying, or a blocking open of that lock queued somewhere)")]
    Stuck { path: String, seconds: u64 },
}

/// An EX lock of this node: dropping it closes the fd, then unlinks the
/// lock file so the DLM lock is given up for the other nodes too.
struct DlmLock {
    file: Option<File>,
    path: PathBuf,
}

impl Drop for DlmLock {
    fn drop(&mut self) {
        drop(self.file.take());
        release(&self.path);
    }
}

/// Unlinks a lock file, which unlocks its DLM lock; `EBUSY`: another fd of
/// this node holds it (its release comes later), `ENOENT`: already gone.
fn release(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(path = %path.display(), error = %error, "Cannot unlink the DLM lock file; the other nodes may not get the lease until this daemon restarts.");
        }
    }
}

/// Cluster-wide trylocks, one per lease slot.
pub trait LockSpace: Send + Sync {
    /// `Ok(Some(lock))`: slot `slot` is now this node's until `lock`
    /// drops; `Ok(None)`: another node holds it; `Err`: the DLM cannot be
    /// used from here (the lease falls back to the peers).
    fn try_slot(&self, slot: u32) -> Result<Option<HeldLock>, DlmError>;
}

/// The real dlmfs.
pub struct Dlmfs {
    /// The host's `/dlm`, as reachable from this process.
    mount: PathBuf,
    /// `<procfs>/1/ns/mnt` when the daemon runs in a container.
    host_namespace: Option<PathBuf>,
    /// How long one trylock may take.
    deadline: Duration,
}

impl Dlmfs {
    pub fn new(paths: &HostPaths, deadline: Duration) -> Self {
        let (mount, host_namespace) = if paths.rootfs() == Path::new("/") {
            (PathBuf::from("/dlm"), None)
        } else {
            (paths.proc("1/root/dlm"), Some(paths.proc("1/ns/mnt")))
        };
        Self {
            mount,
            host_namespace,
            deadline,
        }
    }

    /// Unlinks the lock files a killed daemon of this node left behind:
    /// their locks stay cached at EX on this node otherwise, and no other
    /// node's trylock would ever get them.
    pub fn release_stale(&self) {
        let domain = self.mount.join(DOMAIN);
        let Ok(entries) = std::fs::read_dir(&domain) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("lease-") {
                tracing::info!(path = %entry.path().display(), "Releasing a lease lock a previous daemon left cached on this node.");
                release(&entry.path());
            }
        }
    }

    fn mounted(&self) -> bool {
        nix::sys::statfs::statfs(&self.mount)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::FsType(DLMFS_MAGIC as _))
    }

    fn ensure_mounted(&self) -> Result<(), DlmError> {
        if self.mounted() {
            return Ok(());
        }
        let failed = |error: String| DlmError::Mount {
            path: self.mount.display().to_string(),
            error,
        };
        match &self.host_namespace {
            None => {
                std::fs::create_dir_all(&self.mount).map_err(|e| failed(e.to_string()))?;
                nix::mount::mount(
                    Some("ocfs2_dlmfs"),
                    &self.mount,
                    Some("ocfs2_dlmfs"),
                    nix::mount::MsFlags::empty(),
                    None::<&str>,
                )
                .map_err(|e| failed(e.to_string()))?;
            }
            Some(namespace) => mount_in_host_namespace(namespace).map_err(failed)?,
        }
        tracing::info!(path = %self.mount.display(), "Mounted ocfs2_dlmfs for the cluster lease.");
        Ok(())
    }
}

/// Mounts dlmfs at the host's `/dlm` from a child moved into PID 1's mount
/// namespace (`setns` is refused to the multi-threaded daemon itself).
fn mount_in_host_namespace(namespace: &Path) -> Result<(), String> {
    let ns = File::open(namespace).map_err(|e| format!("{}: {e}", namespace.display()))?;
    let fd = ns.as_raw_fd();
    let target = CString::new("/dlm").map_err(|e| e.to_string())?;
    let fstype = CString::new("ocfs2_dlmfs").map_err(|e| e.to_string())?;
    let mut child = Command::new("/bin/true");
    // SAFETY: between fork and exec only async-signal-safe syscalls run
    // (setns, mkdir, mount) on buffers allocated before the fork.
    unsafe {
        child.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::mkdir(target.as_ptr(), 0o755);
            if libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = child.status().map_err(|e| e.to_string())?;
    drop(ns);
    status
        .success()
        .then_some(())
        .ok_or_else(|| format!("mount helper exited with {status}"))
}

/// Leaves the domain when this node holds no lock in it, so the next
/// `mkdir` joins it afresh: a domain joined while this node heartbeated
/// stays joined as a one-node island after its heartbeat stopped (local
/// mode, last volume unmounted) and grants every lock; a fresh join
/// fails with EINVAL instead. `ENOTEMPTY`: a grant of this node is
/// alive (its lock files are there), the domain is in use.
fn leave_idle_domain(domain: &Path) {
    match std::fs::remove_dir(domain) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {}
        Err(error) => {
            tracing::debug!(path = %domain.display(), error = %error, "Cannot leave the lease's DLM domain before joining it again.");
        }
    }
}

/// Joins the lease's domain afresh (`rejoin`: after leaving it if idle)
/// and trylocks `path` in it. Both talk to the other nodes: run on the
/// trylock thread, under the deadline.
fn join_and_trylock(domain: &Path, path: PathBuf, rejoin: bool) -> Result<DlmLock, DlmError> {
    if rejoin {
        leave_idle_domain(domain);
    }
    match std::fs::create_dir(domain) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(DlmError::Domain {
                path: domain.display().to_string(),
                source,
            })
        }
    }
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(file) => Ok(DlmLock {
            file: Some(file),
            path,
        }),
        Err(source) => Err(DlmError::Lock {
            path: path.display().to_string(),
            source,
        }),
    }
}

impl LockSpace for Dlmfs {
    fn try_slot(&self, slot: u32) -> Result<Option<HeldLock>, DlmError> {
        self.ensure_mounted()?;
        let domain = self.mount.join(DOMAIN);
        let path = domain.join(format!("lease-{slot}"));
        let (answer, wait) = mpsc::channel();
        let opening = path.clone();
        std::thread::Builder::new()
            .name("lease-trylock".into())
            .spawn(move || {
                // Nobody waiting any more: dropping the lock releases it.
                let _ = answer.send(join_and_trylock(&domain, opening, slot == 0));
            })
            .map_err(|source| DlmError::Lock {
                path: path.display().to_string(),
                source,
            })?;
        match wait.recv_timeout(self.deadline) {
            Ok(Ok(lock)) => Ok(Some(Box::new(lock))),
            Ok(Err(DlmError::Lock { source, .. }))
                if source.raw_os_error() == Some(libc::ETXTBSY) =>
            {
                Ok(None)
            }
            Ok(Err(error)) => Err(error),
            Err(_) => Err(DlmError::Stuck {
                path: path.display().to_string(),
                seconds: self.deadline.as_secs(),
            }),
        }
    }
}
