//! The mount table kept between ticks, re-read only when the kernel says it
//! changed.
//!
//! `poll()` on an open `/proc/<pid>/mountinfo` reports `POLLPRI|POLLERR`
//! once after every mount, unmount or propagation change in that namespace
//! (fs/proc_namespace.c `mounts_poll`: the namespace's event counter against
//! the one the file last saw). The cache keeps the file it last read open
//! and polls it with a zero timeout on every tick: nothing changed means the
//! parsed table is reused, so a quiet host with 20 000 mounts costs one
//! syscall per tick instead of a 20 000-line read. The file is opened before
//! it is read, so a change made during the read flags it again and is picked
//! up by the next tick: none is lost. A re-read also happens when the table
//! is older than `mounts.table_max_age` (a safety net against a missed
//! wake-up) and when the expected mount points changed (the partial table
//! only holds the paths that matter, see `parse_mountinfo_partial`).
//! A file that is not on procfs (fixture trees in tests, an unusual
//! `--path.procfs`) cannot be polled: it is read on every tick, as before,
//! so tests stay deterministic.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::mountinfo::{parse_mountinfo_partial, MountTable};
use crate::collector::{CollectError, Context};

/// One read of the mount table, shared by every tick until the next read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableRead {
    /// The file read (under the proc root).
    pub path: PathBuf,
    /// Every layer on watched or expected mount points, in table order.
    pub table: MountTable,
    /// Valid entries in the whole table.
    pub total_entries: usize,
    /// How long this read and parse took.
    pub read_seconds: f64,
    /// Reads since the daemon started, this one included.
    pub reads: u64,
    /// The file can be polled for changes (it is on procfs).
    pub change_detection: bool,
}

/// What the cache remembers between ticks (`Context::mount_table`).
#[derive(Debug, Default)]
pub struct TableCache {
    state: Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    /// The file the table was read from, kept open to poll; `None` when it
    /// is not on procfs.
    watch: Option<File>,
    read_at: Instant,
    kept_for: BTreeSet<String>,
    read: Arc<TableRead>,
}

impl TableCache {
    /// The current table: the cached one when nothing changed, else a fresh
    /// read that keeps every layer of watched mount points and of `expected`.
    pub fn current(
        &self,
        ctx: &Context,
        expected: &BTreeSet<String>,
    ) -> Result<Arc<TableRead>, CollectError> {
        self.read_for(ctx, Some(expected))
    }

    /// The current table for a reader that needs only the watched mount
    /// points (the storage collector): whatever expected paths the cached
    /// table was made for will do, so the two collectors never make each
    /// other read it again. Until the mounts collector has read a table that
    /// can be polled, this reads a copy of its own that is neither kept nor
    /// counted, so `reads` stays the mounts collector's (and deterministic
    /// on fixture trees, which are read on every tick).
    pub fn current_watched(&self, ctx: &Context) -> Result<Arc<TableRead>, CollectError> {
        let polled = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.as_ref().is_some_and(|c| c.watch.is_some())
        };
        if polled {
            return self.read_for(ctx, None);
        }
        let (_, read) = read_fresh(ctx, &BTreeSet::new(), 0)?;
        Ok(Arc::new(read))
    }

    fn read_for(
        &self,
        ctx: &Context,
        expected: Option<&BTreeSet<String>>,
    ) -> Result<Arc<TableRead>, CollectError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let expected = match (expected, state.as_ref()) {
            (Some(expected), _) => expected.clone(),
            (None, Some(cached)) => cached.kept_for.clone(),
            (None, None) => BTreeSet::new(),
        };
        if let Some(cached) = state.as_ref() {
            if is_fresh(cached, ctx, &expected) {
                return Ok(Arc::clone(&cached.read));
            }
        }
        let size_hint = state.as_ref().map_or(0, |c| c.read.total_entries * 160);
        let started = Instant::now();
        let (watch, mut read) = read_fresh(ctx, &expected, size_hint)?;
        read.reads = state.as_ref().map_or(0, |c| c.read.reads) + 1;
        let read = Arc::new(read);
        *state = Some(Cached {
            watch,
            read_at: started,
            kept_for: expected,
            read: Arc::clone(&read),
        });
        Ok(read)
    }
}

/// Reads and parses the table; the open file comes back when it can be
/// polled (it is on procfs). `reads` is left for the caller to set.
fn read_fresh(
    ctx: &Context,
    expected: &BTreeSet<String>,
    size_hint: usize,
) -> Result<(Option<File>, TableRead), CollectError> {
    let started = Instant::now();
    let (path, file, text) = open_and_read(ctx, size_hint)?;
    let fstypes = &ctx.config.mounts.fstypes;
    let parsed = parse_mountinfo_partial(
        &text,
        |fstype| fstypes.iter().any(|t| t == fstype),
        expected,
    );
    drop(text);
    let watch = file.filter(is_procfs);
    let read = TableRead {
        path,
        table: parsed.table,
        total_entries: parsed.total_entries,
        read_seconds: started.elapsed().as_secs_f64(),
        reads: 0,
        change_detection: watch.is_some(),
    };
    Ok((watch, read))
}

/// The cached table still describes the host.
fn is_fresh(cached: &Cached, ctx: &Context, expected: &BTreeSet<String>) -> bool {
    let Some(watch) = &cached.watch else {
        return false;
    };
    cached.read_at.elapsed() < ctx.config.mounts.table_max_age
        && &cached.kept_for == expected
        && !changed(watch)
}

/// The kernel flagged a change since the last poll (or poll failed: then
/// reading again is the safe answer).
fn changed(file: &File) -> bool {
    let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLPRI)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds[0].revents().map_or(true, |r| {
            r.intersects(PollFlags::POLLPRI | PollFlags::POLLERR)
        }),
        Err(error) => {
            tracing::debug!(error = %error, "Polling the mount table failed; reading it again.");
            true
        }
    }
}

fn is_procfs(file: &File) -> bool {
    nix::sys::statfs::fstatfs(file)
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
}

/// PID 1's table (the host's namespace), or the daemon's own when PID 1's
/// is unreadable. The file is opened before it is read so that poll reports
/// any change made from then on.
fn open_and_read(
    ctx: &Context,
    size_hint: usize,
) -> Result<(PathBuf, Option<File>, String), CollectError> {
    let init = ctx.paths.proc("1/mountinfo");
    match read_open(&init, size_hint) {
        Ok((file, text)) => Ok((init, Some(file), text)),
        Err(first) => {
            let own = ctx.paths.proc("self/mountinfo");
            match read_open(&own, size_hint) {
                Ok((file, text)) => {
                    tracing::debug!(error = %first, "Reading own mount table instead of PID 1's.");
                    Ok((own, Some(file), text))
                }
                Err(_) => Err(first),
            }
        }
    }
}

fn read_open(path: &Path, size_hint: usize) -> Result<(File, String), CollectError> {
    let mut file = File::open(path).map_err(|e| CollectError::io(path, &e))?;
    // Proc files report size 0: without a hint the buffer doubles its way
    // up to a 20 000-line table, leaving the smaller copies behind.
    let mut bytes = Vec::with_capacity(size_hint);
    file.read_to_end(&mut bytes)
        .map_err(|e| CollectError::io(path, &e))?;
    // Paths are bytes: one that is not UTF-8 must not fail the whole table.
    let text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Ok((file, text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::host::HostPaths;

    fn context(root: &Path) -> Context {
        let mut config = Config::default();
        config.mounts.fstypes = vec!["tmpfs".into()];
        Context::new(
            HostPaths::new(root.to_path_buf(), None, None),
            Arc::new(config),
        )
    }

    #[test]
    fn a_plain_file_is_read_on_every_tick() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("proc/1")).unwrap();
        let table = root.path().join("proc/1/mountinfo");
        std::fs::write(&table, "20 1 0:40 / /a rw - tmpfs t rw\n").unwrap();
        let ctx = context(root.path());
        let cache = TableCache::default();
        let first = cache.current(&ctx, &BTreeSet::new()).unwrap();
        assert!(!first.change_detection);
        assert_eq!((first.reads, first.table.entries.len()), (1, 1));
        std::fs::write(
            &table,
            "20 1 0:40 / /a rw - tmpfs t rw\n21 1 0:41 / /b rw - ext4 d rw\n",
        )
        .unwrap();
        let second = cache.current(&ctx, &BTreeSet::new()).unwrap();
        assert_eq!((second.reads, second.total_entries), (2, 2));
        assert_eq!(second.table.entries.len(), 1, "ext4 on /b is not kept");
    }

    #[test]
    fn procfs_table_is_kept_until_something_changes() {
        // The test process's own namespace: nothing mounts in it while this
        // runs, except what another test thread might do; a change only
        // makes the second call read again, which the assertion allows for
        // by checking the poll result itself.
        let ctx = Context::new(HostPaths::default(), Arc::new(Config::default()));
        let cache = TableCache::default();
        let first = cache.current(&ctx, &BTreeSet::new()).unwrap();
        assert!(first.change_detection, "/proc is procfs");
        let watch = cache.state.lock().unwrap();
        let changed_now = changed(watch.as_ref().unwrap().watch.as_ref().unwrap());
        drop(watch);
        let second = cache.current(&ctx, &BTreeSet::new()).unwrap();
        if !changed_now {
            assert!(Arc::ptr_eq(&first, &second), "unchanged table is reused");
        }
        let expected = BTreeSet::from(["/nowhere".to_string()]);
        let third = cache.current(&ctx, &expected).unwrap();
        assert_eq!(
            third.reads,
            second.reads + 1,
            "new expected paths read again"
        );
    }
}
