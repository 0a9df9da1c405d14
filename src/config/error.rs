//! Why a configuration could not be used: the one error type of the whole
//! file (`crate::config`) and of every section's own `validate()`.
//!
//! A leaf: the section types that live with their owners
//! (`rules::config::RemediationConfig`, `status::thresholds::CheckConfig`)
//! report through it without importing the whole-file `Config` above them,
//! which imports them (`tests/layers.rs` keeps it that way).

use std::path::PathBuf;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}
