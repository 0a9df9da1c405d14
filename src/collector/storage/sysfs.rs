//! Reading single sysfs attributes so that one bad attribute degrades one value.
//!
//! A sysfs attribute is one value plus a newline. Attributes come and go with
//! the kernel version (`target_state`, connection `state` are newer), and some
//! fail at read time (`address` of a disconnected offload connection returns
//! ENOTCONN), so every read yields an `Attr` rather than an error.

use std::path::{Path, PathBuf};

/// One attribute as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    Value(String),
    /// Not present on this kernel or transport.
    Missing,
    /// Present but the read failed (EACCES, ENOTCONN, EIO…).
    Unreadable(String),
}

impl Attr {
    /// The value, with the kernel's `(null)` for unset strings as `None`.
    pub fn value(&self) -> Option<&str> {
        match self {
            Self::Value(v) if v != "(null)" => Some(v),
            _ => None,
        }
    }
}

/// Reads `dir/name`, trimmed of the trailing newline.
pub fn read_attr(dir: &Path, name: &str) -> Attr {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Attr::Value(text.trim_end_matches('\n').trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Attr::Missing,
        Err(e) => {
            tracing::debug!(file = %path.display(), error = %e, "Cannot read sysfs attribute.");
            Attr::Unreadable(e.to_string())
        }
    }
}

/// The attribute's value when present and readable, else `None`.
pub fn attr(dir: &Path, name: &str) -> Option<String> {
    read_attr(dir, name).value().map(str::to_string)
}

/// Entry names of a directory, sorted; empty when it does not exist.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort_by_cached_key(|n| natural_key(n));
    names
}

/// Sorts `session10` after `session9`.
fn natural_key(name: &str) -> (String, Vec<u64>, String) {
    let prefix: String = name.chars().take_while(|c| !c.is_ascii_digit()).collect();
    let numbers = name[prefix.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (prefix, numbers, name.to_string())
}

/// Follows symlinks (sysfs class links) to the real directory; the same
/// relative links resolve inside a fixture tree.
pub fn real_dir(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_degrade_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state"), "LOGGED_IN\n").unwrap();
        std::fs::write(dir.path().join("username"), "(null)\n").unwrap();
        std::fs::create_dir(dir.path().join("address")).unwrap();
        assert_eq!(attr(dir.path(), "state").as_deref(), Some("LOGGED_IN"));
        assert_eq!(attr(dir.path(), "username"), None);
        assert_eq!(read_attr(dir.path(), "target_state"), Attr::Missing);
        assert!(matches!(
            read_attr(dir.path(), "address"),
            Attr::Unreadable(_)
        ));
    }

    #[test]
    fn natural_order() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["session10", "session9", "session1"] {
            std::fs::create_dir(dir.path().join(n)).unwrap();
        }
        assert_eq!(list_dir(dir.path()), ["session1", "session9", "session10"]);
    }
}
