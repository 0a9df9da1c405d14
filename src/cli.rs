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
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Without a subcommand the daemon runs.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Show the cluster, nodes, volumes, kernel events and remediation on one
    /// screen (from the local daemon, else from one snapshot taken now).
    /// Exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, as `check`.
    Status {
        /// Print the machine-readable form (verdict and overview) as JSON.
        #[arg(long)]
        json: bool,
        /// Take a snapshot here instead of asking the daemon.
        #[arg(long)]
        local: bool,
        /// Take the snapshot in this process (the helper that `--local`
        /// starts, so that a probe hung on a dead device cannot keep the
        /// command from exiting).
        #[arg(long, hide = true)]
        in_process: bool,
    },
    /// Nagios/Icinga plugin: one line with performance data; exit 0 OK,
    /// 1 WARNING, 2 CRITICAL, 3 UNKNOWN (thresholds: the [check] section).
    Check {
        /// Take a snapshot here instead of asking the daemon.
        #[arg(long)]
        local: bool,
    },
}

/// The configuration file `status` and `check` read when `--config` is not
/// given: the one the packaged systemd unit runs the daemon with.
pub const DEFAULT_CONFIG: &str = "/etc/ocfs2-watchdog/config.toml";

/// Runs `status` or `check`; returns the exit code (Nagios plugin codes).
pub fn run_status_command(args: &Args, command: &Command) -> u8 {
    use crate::status::command::{self, Options};
    // Quiet by default: the screen or the plugin line is the output.
    let level = if args.log_level == "info" {
        "error"
    } else {
        &args.log_level
    };
    init_logging(level, args.log_format);
    let mut args = args.clone();
    if args.config.is_none() && std::path::Path::new(DEFAULT_CONFIG).exists() {
        args.config = Some(PathBuf::from(DEFAULT_CONFIG));
    }
    let options = match command {
        Command::Status {
            json,
            local,
            in_process,
        } => Options {
            json: *json,
            local: *local,
            in_process: *in_process,
        },
        Command::Check { local } => Options {
            json: false,
            local: *local,
            in_process: false,
        },
    };
    let config = match args.effective_config() {
        Ok(config) => config,
        Err(error) => return command::configuration_error(&error, options.json),
    };
    match command {
        Command::Status { .. } => command::status(&config, args.host_paths(), &options),
        Command::Check { .. } => command::check(&config, args.host_paths(), &options),
    }
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
    let colour = colour_wanted(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR"),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Colour escapes only for a person at a terminal: journald and log files
/// get plain text, and `NO_COLOR` (any non-empty value, no-color.org) turns
/// colour off even there.
pub fn colour_wanted(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && !matches!(no_color, Some(value) if !value.is_empty())
}

#[cfg(test)]
mod colour_tests {
    use super::colour_wanted;

    #[test]
    fn colour_only_at_a_terminal_without_no_color() {
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some("".into())));
        assert!(!colour_wanted(true, Some("1".into())));
        assert!(!colour_wanted(false, None));
    }
}
