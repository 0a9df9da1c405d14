//! Shared-secret tokens read from files: the admin token (`[web]
//! admin_token_file`) today, and designed for the cluster token too.
//!
//! A token guards actions that stop or start remediation on a node, so the
//! rules are strict and checked where the file is read, at start (including
//! `--check-config`) and on every SIGHUP reload: the file belongs to root (or
//! to the daemon's own user) and nobody else may read or write it, the token
//! is at least `MIN_TOKEN_BYTES` long, and it is none of the placeholders this
//! repository ships (`PLACEHOLDER_TOKENS`), which anyone could read on
//! GitHub. Every refusal says how to fix it. The owner and mode are checked
//! on the opened file, so a file swapped between the check and the read is
//! the one checked.

use std::fmt;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// The shortest token accepted: 32 bytes, what `openssl rand -hex 16` gives
/// at the least (the docs say `openssl rand -hex 32`, 64 bytes).
pub const MIN_TOKEN_BYTES: usize = 32;

/// A token file larger than this is not a token file.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// Every placeholder token this repository ships or has shipped in a
/// manifest, an example or a document. A deployment that kept one of them
/// has a secret everyone knows; tests/deploy.rs checks that every
/// `CHANGE-ME` placeholder in the repository is listed here.
pub const PLACEHOLDER_TOKENS: &[&str] = &["CHANGE-ME-admin-token", "CHANGE-ME-scrape-token"];

/// Why a token file is refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "cannot read {path}: {source} (create it: openssl rand -hex 32 > {path}; chmod 600 {path})"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is empty (fill it: openssl rand -hex 32 > {path})")]
    Empty { path: PathBuf },
    #[error("{path} is larger than {MAX_TOKEN_FILE_BYTES} bytes: not a token file")]
    TooLarge { path: PathBuf },
    #[error("{path} holds a {len}-byte token; at least {MIN_TOKEN_BYTES} bytes are required (make one: openssl rand -hex 32 > {path})")]
    TooShort { path: PathBuf, len: usize },
    #[error("{path} holds a placeholder token shipped with ocfs2-watchdog that anyone can read; replace it: openssl rand -hex 32 > {path}")]
    Placeholder { path: PathBuf },
    #[error("{path} has mode {mode:04o}: group and others must have no access (chmod 600 {path})")]
    Mode { path: PathBuf, mode: u32 },
    #[error("{path} is owned by uid {uid}, neither root nor this process's uid {euid} (chown root:root {path})")]
    Owner { path: PathBuf, uid: u32, euid: u32 },
}

/// A token that passed the rules. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// The token as sent in `Authorization: Bearer`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where `given` first differs.
    pub fn matches(&self, given: &str) -> bool {
        constant_time_eq(given.as_bytes(), self.0.as_bytes())
    }
}

/// True when `token` is one of the placeholders shipped in this repository.
pub fn is_placeholder(token: &str) -> bool {
    PLACEHOLDER_TOKENS.contains(&token.trim())
}

/// Reads and checks the token file at `path` (see the module doc).
pub fn load_token(path: &Path) -> Result<Token, TokenError> {
    let read = |source| TokenError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let meta = file.metadata().map_err(read)?;
    check_owner_and_mode(path, meta.uid(), meta.mode())?;
    if meta.len() > MAX_TOKEN_FILE_BYTES {
        return Err(TokenError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let mut text = String::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read)?;
    check_text(path, &text)
}

fn check_owner_and_mode(path: &Path, uid: u32, mode: u32) -> Result<(), TokenError> {
    let euid = nix::unistd::geteuid().as_raw();
    if uid != 0 && uid != euid {
        return Err(TokenError::Owner {
            path: path.to_path_buf(),
            uid,
            euid,
        });
    }
    if mode & 0o077 != 0 {
        return Err(TokenError::Mode {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// The content rules, apart from the file's owner and mode.
pub fn check_text(path: &Path, text: &str) -> Result<Token, TokenError> {
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::Empty {
            path: path.to_path_buf(),
        });
    }
    if is_placeholder(token) {
        return Err(TokenError::Placeholder {
            path: path.to_path_buf(),
        });
    }
    if token.len() < MIN_TOKEN_BYTES {
        return Err(TokenError::TooShort {
            path: path.to_path_buf(),
            len: token.len(),
        });
    }
    Ok(Token(token.to_string()))
}

/// Equality in time independent of where the inputs first differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    const GOOD: &str = "0123456789abcdef0123456789abcdef";

    fn file(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let path = dir.join("token");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_long_private_token_is_accepted_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let token = load_token(&file(dir.path(), &format!("{GOOD}\n"), 0o600)).unwrap();
        assert_eq!(token.expose(), GOOD);
        assert!(token.matches(GOOD));
        assert!(!token.matches(&GOOD[1..]));
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
        assert!(load_token(&file(dir.path(), GOOD, 0o400)).is_ok());
    }

    #[test]
    fn each_rule_refuses_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (GOOD, 0o644, "chmod 600"),
            (GOOD, 0o640, "chmod 600"),
            (GOOD, 0o602, "chmod 600"),
            ("short", 0o600, "openssl rand -hex 32"),
            ("\n", 0o600, "openssl rand -hex 32"),
            ("CHANGE-ME-admin-token\n", 0o600, "placeholder"),
        ];
        for (text, mode, fix) in cases {
            let error = load_token(&file(dir.path(), text, mode)).unwrap_err();
            assert!(
                error.to_string().contains(fix),
                "{text:?} {mode:o}: {error}"
            );
        }
        let error = load_token(&dir.path().join("missing")).unwrap_err();
        assert!(error.to_string().contains("openssl rand"), "{error}");
        let error = load_token(&file(dir.path(), &"x".repeat(5000), 0o600)).unwrap_err();
        assert!(matches!(error, TokenError::TooLarge { .. }), "{error}");
    }

    #[test]
    fn a_file_of_another_user_is_refused() {
        let euid = nix::unistd::geteuid().as_raw();
        let other = if euid == 0 { 4242 } else { euid + 1 };
        let error = check_owner_and_mode(Path::new("/t"), other, 0o100600).unwrap_err();
        assert!(error.to_string().contains("chown root"), "{error}");
        assert!(check_owner_and_mode(Path::new("/t"), 0, 0o100600).is_ok());
        assert!(check_owner_and_mode(Path::new("/t"), euid, 0o100400).is_ok());
    }
}
