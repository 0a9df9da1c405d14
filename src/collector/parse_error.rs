//! Why a debugfs or configuration file did not parse: the one error type of
//! the collectors' text parsers (nodemap, heartbeat, net, dlm, fs_state,
//! sysconfig). `read_parsed` turns it into a `CollectError` of reason
//! `parse` with the file's path; the sysconfig parser keeps it per line.

/// A parse failure, with the offending text where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty file")]
    EmptyFile,
    #[error("more than one line")]
    ExtraLines,
    #[error("{0:?} is not a node number")]
    NotANodeNumber(String),
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error("{0} does not fit the field")]
    OutOfRange(u64),
    #[error("no {0:?} (truncated?)")]
    MissingField(&'static str),
    #[error("{field}: {value:?} is not valid")]
    BadField { field: &'static str, value: String },
    #[error("line {line}: expected {expected}")]
    BadLine { line: usize, expected: &'static str },
    #[error("not a KEY=value assignment")]
    NotAnAssignment,
    #[error("invalid variable name {0:?}")]
    InvalidName(String),
    #[error("unterminated {0} quote")]
    UnterminatedQuote(char),
    #[error("unexpected text after the value: {0:?}")]
    TrailingText(String),
}
