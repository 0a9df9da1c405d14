//! Command-line flags and start-up wiring shared by `main` and the tests.
//!
//! Flags follow node_exporter's names (`--web.listen-address`,
//! `--path.rootfs`, ...). A flag overrides the same setting in the config
//! file; with neither, the built-in defaults apply, so the daemon runs with
//! no configuration at all.

use std::path::PathBuf;

use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::config::{collector_names, Config, ConfigError};
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
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print the effective one and exit (2 on error).
    #[arg(long, global = true)]
    pub check_config: bool,
    /// Take one snapshot, run the rule engine once over it in dry-run, print
    /// the /metrics text to stdout and exit.
    #[arg(long, global = true)]
    pub once: bool,
    /// exporter-toolkit web configuration (YAML: tls_server_config,
    /// basic_auth_users, http_server_config); excludes [web.tls]/[web.auth].
    #[arg(long = "web.config.file", value_name = "FILE", global = true)]
    pub web_config_file: Option<PathBuf>,
    /// Path under which metrics are served (overrides web.telemetry_path).
    #[arg(long = "web.telemetry-path", value_name = "PATH", global = true)]
    pub telemetry_path: Option<String>,
    /// Run no collector unless enabled with --collector.<name>.
    #[arg(long = "collector.disable-defaults", global = true)]
    pub collector_disable_defaults: bool,
    /// `--collector.<name>` (true) and `--no-collector.<name>` (false), in
    /// the order given; filled by `Args::parse_command_line`.
    #[arg(skip)]
    pub collector_switches: Vec<(String, bool)>,
    /// Address to listen on (overrides web.listen_address).
    #[arg(long = "web.listen-address", value_name = "ADDR", global = true)]
    pub listen_address: Option<String>,
    /// Root under which every host file is read ("/host" in a container).
    #[arg(
        long = "path.rootfs",
        default_value = "/",
        value_name = "DIR",
        global = true
    )]
    pub rootfs: PathBuf,
    /// proc mount point (default: <rootfs>/proc).
    #[arg(long = "path.procfs", value_name = "DIR", global = true)]
    pub procfs: Option<PathBuf>,
    /// sys mount point (default: <rootfs>/sys).
    #[arg(long = "path.sysfs", value_name = "DIR", global = true)]
    pub sysfs: Option<PathBuf>,
    /// Kernel log to follow (`/dev/kmsg`) or a log file to replay
    /// (overrides kernel_log.source; see docs/kernel-log.md for formats).
    #[arg(long = "kernel-log", value_name = "PATH", global = true)]
    pub kernel_log: Option<PathBuf>,
    /// Let remediation act (sets remediation.mode = "enforce"); without it,
    /// and without that setting, every decision is a dry run.
    #[arg(long, global = true)]
    pub enforce: bool,
    /// Log level: error, warn, info, debug, trace (or a tracing filter).
    #[arg(
        long = "log.level",
        default_value = "info",
        value_name = "LEVEL",
        global = true
    )]
    pub log_level: String,
    /// Log format.
    #[arg(long = "log.format", value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
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
        #[arg(long, conflicts_with = "cluster")]
        local: bool,
        /// Every node of the cluster: the local daemon's view of itself and
        /// of its peers (over the peer protocol); a node that does not
        /// answer is shown as unreachable.
        #[arg(long)]
        cluster: bool,
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
        #[arg(long, conflicts_with = "cluster")]
        local: bool,
        /// Judge every node of the cluster (as `status --cluster`); a node
        /// that does not answer counts at the `node_down` severity.
        #[arg(long)]
        cluster: bool,
    },
    /// Cluster-wide maintenance mode (docs/rules.md): no node acts while on.
    /// Talks to the local daemon's admin endpoint with the admin token.
    Maintenance {
        #[command(subcommand)]
        action: MaintenanceAction,
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
            cluster,
            in_process,
        } => Options {
            json: *json,
            local: *local,
            cluster: *cluster,
            in_process: *in_process,
            value_flags: value_flags(),
        },
        Command::Check { local, cluster } => Options {
            json: false,
            local: *local,
            cluster: *cluster,
            in_process: false,
            value_flags: value_flags(),
        },
        // Handled in main: it needs the daemon's admin endpoint, not a view.
        Command::Maintenance { .. } => return 3,
    };
    let config = match args.effective_config() {
        Ok(config) => config,
        Err(error) => return command::configuration_error(&error, options.json),
    };
    match command {
        Command::Status { .. } => command::status(&config, args.host_paths(), &options),
        Command::Check { .. } => command::check(&config, args.host_paths(), &options),
        Command::Maintenance { .. } => 3,
    }
}

/// The long flags (without `--`) that take a value, for the status
/// helper's command line (`status::command::Options::value_flags`).
pub fn value_flags() -> Vec<String> {
    Args::command()
        .get_arguments()
        .filter(|a| a.get_action().takes_values())
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect()
}

impl Args {
    /// Parses the process's arguments, with a `--collector.<name>` and a
    /// `--no-collector.<name>` flag for every collector, as node_exporter.
    pub fn parse_command_line() -> Self {
        Self::parse_from_args(std::env::args_os())
    }

    /// As `parse_command_line`, from the given arguments (tests); exits with
    /// clap's usage message on a bad flag.
    pub fn parse_from_args<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut command = Self::command();
        for name in collector_names() {
            command = command
                .arg(
                    clap::Arg::new(format!("collector.{name}"))
                        .long(format!("collector.{name}"))
                        .action(ArgAction::SetTrue)
                        .global(true)
                        .help(format!("Enable the {name} collector.")),
                )
                .arg(
                    clap::Arg::new(format!("no-collector.{name}"))
                        .long(format!("no-collector.{name}"))
                        .action(ArgAction::SetTrue)
                        .global(true)
                        .help(format!("Disable the {name} collector.")),
                );
        }
        let matches = command.get_matches_from(args);
        let mut parsed = match Self::from_arg_matches(&matches) {
            Ok(parsed) => parsed,
            Err(error) => error.exit(),
        };
        parsed.collector_switches = collector_switches(&matches);
        parsed
    }

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
        if let Some(path) = &self.telemetry_path {
            config.web.telemetry_path = path.clone();
        }
        if let Some(path) = &self.web_config_file {
            config.web.config_file = Some(path.clone());
        }
        if self.collector_disable_defaults {
            config.collectors.disable_defaults = true;
        }
        for (name, on) in &self.collector_switches {
            config.collectors.enabled.insert(name.clone(), *on);
        }
        config.apply_collector_switches();
        config.validate()?;
        Ok(config)
    }

    pub fn host_paths(&self) -> HostPaths {
        HostPaths::new(self.rootfs.clone(), self.procfs.clone(), self.sysfs.clone())
    }
}

/// The collector flags given, the later of `--collector.x` and
/// `--no-collector.x` winning as the later flag does in node_exporter.
fn collector_switches(matches: &ArgMatches) -> Vec<(String, bool)> {
    let mut given: Vec<(usize, String, bool)> = Vec::new();
    for name in collector_names() {
        for (id, on) in [
            (format!("collector.{name}"), true),
            (format!("no-collector.{name}"), false),
        ] {
            if matches.get_flag(&id) {
                let index = matches.index_of(&id).unwrap_or(0);
                given.push((index, name.to_string(), on));
            }
        }
    }
    given.sort();
    given.into_iter().map(|(_, name, on)| (name, on)).collect()
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
