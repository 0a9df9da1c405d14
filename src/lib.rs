//! ocfs2-watchdog: a Prometheus exporter and self-healing watchdog for OCFS2
//! clusters run by the o2cb stack.
//!
//! `sampler` ticks, runs every `collector` on deadline threads (`probe`) and
//! publishes an immutable `snapshot`; `http` serves it (`metrics` renders it);
//! `config` and `host` say what to read and where; `status` shows it all to
//! people (the `status` and `check` subcommands, the `/` page).

pub mod actions;
pub mod assets;
pub mod cli;
pub mod cluster;
pub mod collector;
pub mod config;
pub mod durable;
pub mod host;
pub mod http;
pub mod input;
pub mod kernel_log;
pub mod liveness;
pub mod logtext;
pub mod metrics;
pub mod once;
pub mod probe;
pub mod rules;
pub mod sampler;
pub mod secret;
pub mod service;
pub mod snapshot;
pub mod startup;
pub mod status;

/// The tests' one CI detection, shared with tests/support.
#[cfg(test)]
#[path = "../tests/support/ci.rs"]
pub(crate) mod test_ci;
