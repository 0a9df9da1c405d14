//! A FUSE filesystem whose statfs never answers: a mount that hangs like an
//! OCFS2 volume on a dead SAN, for tests of the stuck-mount paths. Getattr
//! of the root answers, so the mount point can be stat'ed; every statfs
//! reply is held forever. A test starts `serve` in a helper process (its own
//! ignored test, run through `current_exe`) and kills it (SIGKILL) to
//! release the hang, so no test leaves a process in D state.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, INodeNo, MountOption, ReplyAttr,
    ReplyStatfs, Request,
};

/// Where the helper process mounts, passed through the environment.
pub const MOUNTPOINT_ENV: &str = "OCFS2_WATCHDOG_TEST_FUSE_MOUNTPOINT";

/// Answers getattr so the mount point can be stat'ed, and keeps every statfs
/// request pending forever (the reply is held, so fuser never answers it).
struct HungStatfs {
    held: Mutex<Vec<ReplyStatfs>>,
}

impl Filesystem for HungStatfs {
    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino != INodeNo::ROOT {
            reply.error(Errno::ENOENT);
            return;
        }
        let attr = FileAttr {
            ino: INodeNo::ROOT,
            size: 0,
            blocks: 0,
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind: FileType::Directory,
            perm: 0o755,
            nlink: 2,
            uid: 0,
            gid: 0,
            rdev: 0,
            flags: 0,
            blksize: 512,
        };
        reply.attr(&Duration::from_secs(3600), &attr);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.held.lock().unwrap().push(reply);
    }
}

/// The helper process's body: serves the hung filesystem on the mount point
/// named by `MOUNTPOINT_ENV` until killed; returns at once without it.
pub fn serve_from_env() {
    let Some(mountpoint) = std::env::var_os(MOUNTPOINT_ENV) else {
        return;
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![MountOption::FSName("hung".into())];
    let filesystem = HungStatfs {
        held: Mutex::new(Vec::new()),
    };
    fuser::mount(filesystem, PathBuf::from(mountpoint), &config).expect("serving FUSE");
}

pub fn mounted(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == path.to_str())
}

pub struct KillOnDrop(pub Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the helper test `helper` of the calling test binary serving the
/// hung filesystem on `mountpoint`, and waits until it is mounted.
pub fn start(helper: &str, mountpoint: &Path) -> KillOnDrop {
    let server = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", helper, "--include-ignored", "--nocapture"])
        .env(MOUNTPOINT_ENV, mountpoint)
        .stdout(Stdio::null())
        .spawn()
        .expect("starting the FUSE server");
    let server = KillOnDrop(server);
    crate::support::wait_for("the FUSE mount", Duration::from_secs(10), || {
        mounted(mountpoint)
    });
    server
}
