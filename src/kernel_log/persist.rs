//! State that must survive a daemon restart, kept as one JSON file in the
//! state directory (`state_dir`, default `/var/lib/ocfs2-watchdog`):
//! the boot it belongs to, the last `/dev/kmsg` sequence number counted in
//! that boot (so a restart does not count the ring buffer twice), and the
//! self-fences found in earlier boots (so `ocfs2_fences_total` survives
//! reboots and each boot is examined once).
//!
//! Written atomically (temporary file, fsync, rename, fsync of the
//! directory) so a crash or a fence mid-write leaves the old or the new file,
//! never a torn one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const STATE_FILE: &str = "kernel-log.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    /// `/proc/sys/kernel/random/boot_id` of the boot this state is from.
    pub boot_id: String,
    /// Last `/dev/kmsg` sequence number counted in that boot.
    pub last_seq: Option<u64>,
    /// Boots found to have ended in an OCFS2 self-fence, over the node's life.
    pub fences_total: u64,
    /// Whether the boot before `boot_id` ended in a fence.
    pub fence_previous_boot: bool,
    /// pstore records already counted (`name@mtime`), in case nothing clears
    /// them (systemd-pstore normally moves them away).
    #[serde(default)]
    pub pstore_counted: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid state: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// `Ok(None)` when there is no state yet (first start on this node).
pub fn load(dir: &Path) -> Result<Option<PersistedState>, PersistError> {
    let path = state_path(dir);
    let text = match crate::durable::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PersistError::Read { path, source }),
    };
    parse_state(&text)
        .map(Some)
        .map_err(|source| PersistError::Parse { path, source })
}

/// Parses and checks the file's text: a sequence number or a fence count
/// no real node reaches (a kernel counting a million records a second
/// needs 290 000 years for 2^63) is a forged or corrupt file, refused like
/// one that is not JSON, and counted (`crate::input`, source `state_file`).
pub fn parse_state(text: &str) -> Result<PersistedState, serde_json::Error> {
    use serde::de::Error as _;
    let state: PersistedState = serde_json::from_str(text).inspect_err(|e| {
        crate::input::reject(
            crate::input::Source::StateFile,
            crate::input::InputError::Malformed {
                field: STATE_FILE,
                message: e.to_string(),
            },
        );
    })?;
    let limits = [
        ("last_seq", state.last_seq.unwrap_or(0), MAX_SEQ),
        ("fences_total", state.fences_total, MAX_FENCES),
    ];
    for (field, value, max) in limits {
        if value > max {
            let error = crate::input::reject(
                crate::input::Source::StateFile,
                crate::input::InputError::OutOfRange {
                    field,
                    value: value.to_string(),
                    range: format!("at most {max}"),
                },
            );
            return Err(serde_json::Error::custom(error));
        }
    }
    Ok(state)
}

/// Largest `/dev/kmsg` sequence number believed.
pub const MAX_SEQ: u64 = 1 << 63;
/// Largest fence count believed.
pub const MAX_FENCES: u64 = 1 << 32;

pub fn save(dir: &Path, state: &PersistedState) -> Result<(), PersistError> {
    let path = state_path(dir);
    let write_error = |source| PersistError::Write {
        path: path.clone(),
        source,
    };
    let text =
        serde_json::to_string_pretty(state).map_err(|e| write_error(std::io::Error::other(e)))?;
    crate::durable::write_atomically(&path, text.as_bytes()).map_err(write_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let state = PersistedState {
            boot_id: "b1".into(),
            last_seq: Some(42),
            fences_total: 2,
            fence_previous_boot: true,
            pstore_counted: vec!["dmesg-ramoops-0@1".into()],
        };
        save(dir.path(), &state).unwrap();
        save(dir.path(), &state).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(state));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(STATE_FILE)]);
    }

    #[test]
    fn garbage_and_unwritable_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(state_path(dir.path()), "{not json").unwrap();
        assert!(matches!(load(dir.path()), Err(PersistError::Parse { .. })));
        assert!(parse_state("").is_err());
        let forged = r#"{"boot_id":"b","last_seq":18446744073709551615,"fences_total":0,"fence_previous_boot":false}"#;
        assert!(parse_state(forged)
            .unwrap_err()
            .to_string()
            .contains("last_seq"));
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            save(&file, &PersistedState::default()),
            Err(PersistError::Write { .. })
        ));
    }
}
