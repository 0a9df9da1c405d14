//! Crash-safe, link-safe file access for everything the daemon keeps in
//! `state_dir` (kernel-log position, remediation state, maintenance record,
//! the audit log).
//!
//! A file replaced with `write_atomically` is the old or the new one after a
//! crash or a fence, never a torn one: temporary file, fsync, rename, fsync of
//! the directory. `sync_dir` makes a newly created directory entry durable
//! (the audit log's first line is worthless if its file name is lost).
//!
//! The daemon runs as root, so no path it writes may be redirected by a
//! symbolic link someone else planted (that would let a local user make root
//! truncate any file). The temporary file has an unpredictable name and is
//! opened `O_CREAT | O_EXCL | O_NOFOLLOW` with mode 0600; the rename then
//! replaces whatever entry has the final name (a planted link included: the
//! link goes, its target is never opened). Appends and reads open with
//! `O_NOFOLLOW` and fail with a clear error on a link. Directories the
//! daemon creates are 0700, and `check_state_dir` refuses a state directory
//! that another user owns or that group or other may write (in such a
//! directory links and files could be swapped in at will).

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// Mode of the temporary and appended files: root's own state.
const FILE_MODE: u32 = 0o600;
/// Mode of every directory the daemon creates for its state.
const DIR_MODE: u32 = 0o700;

/// Replaces `path` with `bytes` atomically and durably. A symbolic link at
/// `path` is replaced by the file, never followed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("path has no parent directory"))?;
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("path has no file name"))?;
    // Random suffix and O_EXCL: nothing can be planted at the name in
    // advance, and a leftover from a crash is never reused.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".tmp")
        .make_in(dir, |tmp| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .custom_flags(libc::O_NOFOLLOW)
                .open(tmp)
        })?;
    // A failure from here on drops `tmp`, which removes the temporary file.
    tmp.as_file_mut().write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Opens `path` for appending, creating it (mode 0600) when missing; a
/// symbolic link there is an error, not followed.
pub fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| link_error(path, e))
}

/// Opens `path` for reading; a symbolic link there is an error.
pub fn open_read(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| link_error(path, e))
}

/// Largest state file read whole (they are a few KiB; a bigger one is not
/// the daemon's and is refused rather than read into memory).
pub const MAX_STATE_FILE: u64 = 16 << 20;

/// The whole of `path`, read without following a symbolic link.
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_read(path)?
        .take(MAX_STATE_FILE + 1)
        .read_to_end(&mut bytes)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_STATE_FILE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is larger than {MAX_STATE_FILE} bytes; not a state file of this daemon",
                path.display()
            ),
        ));
    }
    Ok(bytes)
}

/// The whole of `path` as text, read without following a symbolic link.
pub fn read_to_string(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read(path)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// `O_NOFOLLOW` on a link fails with `ELOOP`, whose text ("too many levels
/// of symbolic links") would send an operator looking for a loop.
fn link_error(path: &Path, error: std::io::Error) -> std::io::Error {
    if error.raw_os_error() == Some(libc::ELOOP) {
        std::io::Error::new(
            error.kind(),
            format!(
                "{} is a symbolic link; state files are never followed through one \
                 (remove the link)",
                path.display()
            ),
        )
    } else {
        error
    }
}

/// Creates `dir` (and missing parents) with mode 0700; an existing one is
/// left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// fsyncs a directory, so entries created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Why the state directory is not safe to keep root's state in.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("cannot use state_dir {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state_dir {path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error(
        "state_dir {path} is owned by uid {owner}, not by this daemon (uid {euid}); \
         fix it with `chown {euid} {path}`"
    )]
    Owner {
        path: PathBuf,
        owner: u32,
        euid: u32,
    },
    #[error(
        "state_dir {path} has mode {mode:04o}: group or other may write it and plant \
         files or links the daemon would use; fix it with `chmod 0700 {path}`"
    )]
    Writable { path: PathBuf, mode: u32 },
}

/// Refuses an existing state directory another user owns or may write;
/// a missing one is fine (it is created 0700 by `ensure_state_dir`).
pub fn check_state_dir(dir: &Path) -> Result<(), StateDirError> {
    let metadata = match std::fs::metadata(dir) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StateDirError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let path = dir.to_path_buf();
    if !metadata.is_dir() {
        return Err(StateDirError::NotADirectory { path });
    }
    let euid = nix::unistd::geteuid().as_raw();
    if metadata.uid() != euid {
        return Err(StateDirError::Owner {
            path,
            owner: metadata.uid(),
            euid,
        });
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(StateDirError::Writable { path, mode });
    }
    Ok(())
}

/// Creates the state directory (0700) when missing, then checks it.
pub fn ensure_state_dir(dir: &Path) -> Result<(), StateDirError> {
    create_private_dir(dir).map_err(|source| StateDirError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    check_state_dir(dir)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn names(dir: &Path) -> Vec<std::ffi::OsString> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(read_to_string(&path).unwrap(), "two");
        assert_eq!(names(&dir.path().join("sub")), ["state.json"]);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("sub")), 0o700);
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_planted_link_is_replaced_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("state.json");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        // The old fixed temporary name, planted as well.
        std::os::unix::fs::symlink(&victim, dir.path().join(".state.json.tmp")).unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn appends_and_reads_refuse_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("audit.jsonl");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let error = open_append(&path).unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
        let error = read_to_string(&path).unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn an_oversized_state_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let file = File::create(&path).unwrap();
        file.set_len(MAX_STATE_FILE + 1).unwrap();
        let error = read(&path).unwrap_err();
        assert!(error.to_string().contains("larger than"), "{error}");
        file.set_len(MAX_STATE_FILE).unwrap();
        assert_eq!(read(&path).unwrap().len() as u64, MAX_STATE_FILE);
    }

    #[test]
    fn a_state_dir_others_may_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        check_state_dir(&state).unwrap();
        ensure_state_dir(&state).unwrap();
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
        check_state_dir(&state).unwrap();
        for bad in [0o775, 0o757, 0o1777] {
            std::fs::set_permissions(&state, std::fs::Permissions::from_mode(bad)).unwrap();
            let error = check_state_dir(&state).unwrap_err();
            assert!(matches!(error, StateDirError::Writable { .. }), "{error}");
            assert!(error.to_string().contains("chmod 0700"), "{error}");
        }
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            check_state_dir(&file),
            Err(StateDirError::NotADirectory { .. })
        ));
    }

    #[test]
    fn a_state_dir_owned_by_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let euid = nix::unistd::geteuid();
        if !euid.is_root() {
            // Only root can give a directory away.
            return;
        }
        std::os::unix::fs::chown(dir.path(), Some(65534), None).unwrap();
        let error = check_state_dir(dir.path()).unwrap_err();
        assert!(
            matches!(error, StateDirError::Owner { owner: 65534, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("chown 0"), "{error}");
    }
}
