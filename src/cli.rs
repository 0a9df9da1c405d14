//! Command-line flags and start-up wiring shared by `main` and the tests.
//!
//! Flags follow node_exporter's names (`--web.listen-address`,
//! `--path.rootfs`, ...). A flag overrides the same setting in the config
//! file; with neither, the built-in defaults apply, so the daemon runs with
//! no configuration at all.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigError};
use crate::host::HostPaths;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "ocfs2-watchdog",
    version,
    about = "Prometheus exporter and self-healing watchdog for OCFS2 clusters"
)]
pub struct Args {
    /// A subcommand instead of the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// TOML configuration file; every key is optional.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print the effective one and exit (2 on error).
    #[arg(long)]
    pub check_config: bool,
    /// Take one snapshot, print its /metrics text to stdout and exit.
    #[arg(long)]
    pub once: bool,
    /// Address to listen on (overrides web.listen_address).
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    pub listen_address: Option<String>,
    /// Root under which every host file is read ("/host" in a container).
    #[arg(long = "path.rootfs", default_value = "/", value_name = "DIR")]
    pub rootfs: PathBuf,
    /// proc mount point (default: <rootfs>/proc).
    #[arg(long = "path.procfs", value_name = "DIR")]
    pub procfs: Option<PathBuf>,
    /// sys mount point (default: <rootfs>/sys).
    #[arg(long = "path.sysfs", value_name = "DIR")]
    pub sysfs: Option<PathBuf>,
    /// Kernel log to follow (`/dev/kmsg`) or a log file to replay
    /// (overrides kernel_log.source; see docs/kernel-log.md for formats).
    #[arg(long = "kernel-log", value_name = "PATH")]
    pub kernel_log: Option<PathBuf>,
    /// Let remediation act (sets remediation.mode = "enforce"); without it,
    /// and without that setting, every decision is a dry run.
    #[arg(long)]
    pub enforce: bool,
    /// Log level: error, warn, info, debug, trace (or a tracing filter).
    #[arg(long = "log.level", default_value = "info", value_name = "LEVEL")]
    pub log_level: String,
    /// Log format.
    #[arg(long = "log.format", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Args {
    /// The configuration file (or defaults) with flag overrides applied and
    /// validated.
    pub fn effective_config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(address) = &self.listen_address {
            config.web.listen_address = address.clone();
        }
        if let Some(source) = &self.kernel_log {
            config.kernel_log.source = source.clone();
        }
        if self.enforce {
            config.remediation.mode = crate::rules::config::Mode::Enforce;
        }
        config.validate()?;
        Ok(config)
    }

    pub fn host_paths(&self) -> HostPaths {
        HostPaths::new(self.rootfs.clone(), self.procfs.clone(), self.sysfs.clone())
    }
}

/// Sets up `tracing` once; logs go to stderr so `--once` output stays clean.
pub fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Cluster-wide maintenance mode (docs/rules.md): no node acts while on.
    /// Talks to the local daemon's admin endpoint with the admin token.
    Maintenance {
        #[command(subcommand)]
        action: MaintenanceAction,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum MaintenanceAction {
    /// Turn maintenance on (every node stops acting).
    On {
        /// Why, shown in /status, metrics and the audit log.
        #[arg(long)]
        reason: String,
        /// How long before it ends by itself (default 2h).
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
    },
    /// Turn maintenance off everywhere.
    Off,
    /// Show the maintenance state as JSON.
    Status,
}
