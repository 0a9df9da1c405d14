//! The daemon's configuration: one TOML file, every key optional.
//!
//! `Config::load` reads and validates it; `Config::default()` is what runs when
//! no file is given. Unknown keys are rejected (`deny_unknown_fields`) so a typo
//! never silently falls back to a default. Durations are humantime strings
//! ("2s", "500ms"). Cross-field mistakes are caught by `validate()`, which
//! `--check-config` runs too. Other modules read their section from here and
//! never parse configuration themselves.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod collectors;
pub mod error;
mod parse_error;
mod web;
pub mod web_file;
pub use collectors::{collector_names, CollectorsConfig};
pub use error::ConfigError;
pub use web::{AdminListen, WebAuthConfig, WebLimitsConfig, WebTlsConfig, RESERVED_PATHS};

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for state that must survive restarts and reboots (the
    /// kernel log position, self-fences of earlier boots). Give it a
    /// persistent volume when the daemon runs in a container.
    pub state_dir: StateDir,
    pub sampler: SamplerConfig,
    pub mounts: MountsConfig,
    pub heartbeat: HeartbeatConfig,
    pub probe: ProbeConfig,
    pub web: WebConfig,
    pub kernel_log: KernelLogConfig,
    pub fs_state: FsStateConfig,
    pub remediation: crate::rules::config::RemediationConfig,
    /// Thresholds of `ocfs2-watchdog check` and the status verdict.
    pub check: crate::status::thresholds::CheckConfig,
    /// Which collectors run (`--collector.<name>` and friends).
    pub collectors: CollectorsConfig,
    /// Peers over the interconnect: the cluster token, port, polling.
    pub cluster: crate::cluster::config::ClusterConfig,
}

/// A path with the daemon's default state directory as its default.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct StateDir(pub PathBuf);

impl Default for StateDir {
    fn default() -> Self {
        Self(PathBuf::from("/var/lib/ocfs2-watchdog"))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KernelLogConfig {
    /// Follow the kernel log at all. Turn off where the daemon may not read
    /// `/dev/kmsg` and the events are collected elsewhere.
    pub enabled: bool,
    /// `/dev/kmsg` (the daemon's own, not under the root: a container needs
    /// the device) or a file in kmsg, dmesg or journalctl format, replayed
    /// once for offline analysis. A relative path in a config file is taken
    /// from the file's directory. `--kernel-log` overrides it.
    pub source: PathBuf,
    /// Messages kept for `/status` (the counters are unaffected).
    pub recent_events: usize,
    /// Syslog files (host paths, read under the root) searched at start for
    /// a self-fence that ended the previous boot.
    pub previous_boot_logs: Vec<PathBuf>,
    /// Ask `journalctl -k -b -1` for the previous boot's messages. Turn off
    /// on hosts without a persistent journal to save the call.
    pub previous_boot_journal: bool,
    /// How long journalctl may run before it is killed.
    #[serde(with = "humantime_serde")]
    pub journal_timeout: Duration,
}

impl Default for KernelLogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            source: PathBuf::from("/dev/kmsg"),
            recent_events: 64,
            previous_boot_logs: vec!["/var/log/kern.log".into(), "/var/log/messages".into()],
            previous_boot_journal: true,
            journal_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SamplerConfig {
    /// How often a snapshot is taken. The default is one o2hb period; raise it
    /// on hosts with very large mount tables where reading mountinfo is slow.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How long one collector may run before it is reported failed with reason
    /// `timeout`. A collector still running is never started a second time.
    #[serde(with = "humantime_serde")]
    pub collector_timeout: Duration,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            collector_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MountsConfig {
    /// Filesystem types watched. Only `ocfs2` in production; tests and labs use
    /// tmpfs, ext4 or fuse in its place.
    pub fstypes: Vec<String>,
    /// Deadline of the stat/statfs probe of each mount point; past it the mount
    /// is reported stuck. Raise it for SANs whose normal latency is high.
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
    /// Read `/etc/fstab` under the root for expected mounts (entries of watched
    /// types without `noauto`). Turn off where fstab is managed elsewhere.
    pub use_fstab: bool,
    /// Mounts that must be present, in addition to fstab entries.
    pub expected: Vec<ExpectedMount>,
    /// Accept a kernel device name (`/dev/sdb`, `/dev/dm-3`) as the source of
    /// an expected OCFS2 mount. Off: such a mount is never remounted, because
    /// after an iSCSI re-login or a reboot the name can belong to another
    /// volume of the same cluster. On: remounted only when the UUID last seen
    /// mounted there is known and the device's superblock carries it.
    pub allow_kernel_names: bool,
    /// Mount points never unstacked, as glob patterns (`*` and `?` stay within
    /// one path component, `**` spans several): stacks that some tool builds
    /// on purpose. Their layers are still counted in the metrics.
    pub unstack_ignore: Vec<String>,
    /// The mount table is re-read when the kernel reports a change (poll on
    /// mountinfo) and at least this often, as a safety net.
    #[serde(with = "humantime_serde")]
    pub table_max_age: Duration,
    /// Regex of mount points that get no per-mount-point series unless they
    /// are expected or have a problem (node_exporter's
    /// `--collector.filesystem.mount-points-exclude`): kubelet pod volumes
    /// and container runtime paths by default. They are still watched,
    /// counted per filesystem and healed. Empty excludes nothing.
    pub mount_points_exclude: String,
}

impl MountsConfig {
    /// True when `mountpoint` matches an `unstack_ignore` pattern.
    pub fn unstack_ignored(&self, mountpoint: &str) -> bool {
        unstack_ignore_matches(&self.unstack_ignore, mountpoint)
    }
}

/// True when `mountpoint` matches one of the `unstack_ignore` `patterns`.
pub fn unstack_ignore_matches(patterns: &[String], mountpoint: &str) -> bool {
    let options = glob::MatchOptions {
        require_literal_separator: true,
        ..glob::MatchOptions::new()
    };
    patterns.iter().any(|pattern| {
        glob::Pattern::new(pattern).is_ok_and(|p| p.matches_with(mountpoint, options))
    })
}

/// Pod volume bind mounts and container runtime paths: thousands per node
/// on a container host, each a copy of a volume already reported elsewhere.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str = "^/(var/lib/kubelet/pods|var/lib/docker|var/lib/containers|var/lib/containerd|run/containerd|run/containers|run/docker|run/k3s|var/lib/rancher/k3s/agent/containerd)/";

impl Default for MountsConfig {
    fn default() -> Self {
        Self {
            fstypes: vec!["ocfs2".to_string()],
            probe_timeout: Duration::from_secs(5),
            use_fstab: true,
            expected: Vec::new(),
            allow_kernel_names: false,
            unstack_ignore: Vec::new(),
            table_max_age: Duration::from_secs(300),
            mount_points_exclude: DEFAULT_MOUNT_POINTS_EXCLUDE.to_string(),
        }
    }
}

/// One mount that should be present on this node.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExpectedMount {
    /// Host path where the volume belongs.
    pub mountpoint: String,
    /// `UUID=…`, `LABEL=…` or a device path. Prefer UUID/LABEL: kernel names
    /// (`/dev/sdb`) differ from node to node.
    pub source: String,
    #[serde(default = "default_fstype")]
    pub fstype: String,
    #[serde(default = "default_options")]
    pub options: String,
}

fn default_fstype() -> String {
    "ocfs2".to_string()
}

fn default_options() -> String {
    "_netdev,defaults".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatConfig {
    /// Fraction of the self-fence timeout at which a heartbeat sample counts as
    /// slow (`ocfs2_heartbeat_slow_samples_total`). 0.5 is o2hbmonitor's
    /// warning point; lower it to hear about a slowing SAN earlier.
    pub warn_ratio: f64,
    /// Window over which `ocfs2_heartbeat_timeout_ratio_max` keeps the largest
    /// ratio seen. Set it to at least the Prometheus scrape interval so a spike
    /// between two scrapes is never lost.
    #[serde(with = "humantime_serde")]
    pub ratio_max_window: Duration,
    /// Read every node's heartbeat slot from the shared disk (O_DIRECT): the
    /// one view of a peer's liveness that does not depend on the
    /// interconnect. Turn off only where reading the device is not allowed.
    pub read_disk: bool,
    /// Deadline of one read of a region's slots; past it the read counts as
    /// failed and no second read of that region starts until it returns.
    #[serde(with = "humantime_serde")]
    pub disk_probe_timeout: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            warn_ratio: 0.5,
            ratio_max_window: Duration::from_secs(60),
            read_disk: true,
            disk_probe_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FsStateConfig {
    /// Read debugfs `ocfs2/<UUID>/fs_state` for per-volume recovery state.
    /// Off by default: on the lab's 6.1 kernel, repeated opens after a
    /// recovery oopsed on every open and hung the next umount. Turn it on
    /// only on kernels known to be fixed.
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Upper bound on probe threads alive at once (running or blocked on a
    /// hung device). Past it no new probe starts, so a dead SAN cannot make the
    /// daemon spawn threads without end.
    pub max_threads: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self { max_threads: 64 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Address the HTTP server listens on; `--web.listen-address` overrides it.
    pub listen_address: String,
    /// File holding the bearer token that `POST /pause` and `POST /resume`
    /// require. Without it every state-changing endpoint answers 403.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<PathBuf>,
    /// Serve `POST /pause`, `/resume` and `/reset` only here, not on
    /// `listen_address`: `unix:/run/ocfs2-watchdog/admin.sock` (mode 0600)
    /// or a loopback `host:port` (docs/deploy.md says why that is safer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<String>,
    /// Serve HTTPS instead of HTTP (see `crate::http::tls`).
    pub tls: Option<WebTlsConfig>,
    pub auth: WebAuthConfig,
    pub limits: WebLimitsConfig,
    /// An exporter-toolkit web config (YAML) in place of `tls` and `auth`;
    /// `--web.config.file` overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_file: Option<PathBuf>,
    /// Where metrics are served; `--web.telemetry-path` overrides it.
    pub telemetry_path: String,
    /// Show audit callers, kernel log text and iSCSI names on `/` and
    /// `/status` even when the listener is not loopback and asks for no
    /// credentials (they are left out then by default: anyone who reaches
    /// the port could read them).
    pub show_sensitive_details: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen_address: "0.0.0.0:9784".to_string(),
            admin_token_file: None,
            admin_listen: None,
            tls: None,
            auth: WebAuthConfig::default(),
            limits: WebLimitsConfig::default(),
            config_file: None,
            telemetry_path: "/metrics".to_string(),
            show_sensitive_details: false,
        }
    }
}

/// Longest duration any key accepts: far beyond any sensible setting, far
/// below what a clock addition could overflow on.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 366 * 86_400);

impl Config {
    /// Parses and validates a configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: parse_error::describe(text, &e),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        config.apply_collector_switches();
        // Relative paths name files next to the config (fixtures, labs).
        if let Some(dir) = path.parent() {
            if config.kernel_log.source.is_relative() {
                config.kernel_log.source = dir.join(&config.kernel_log.source);
            }
            config.web.resolve_paths(dir);
        }
        Ok(config)
    }

    /// Catches mistakes no single field can: values that are each valid but
    /// contradict each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if self.sampler.interval < Duration::from_millis(100) {
            return invalid("sampler.interval", "must be at least 100ms".into());
        }
        if self.sampler.collector_timeout <= self.mounts.probe_timeout {
            return invalid(
                "sampler.collector_timeout",
                format!(
                    "must be longer than mounts.probe_timeout ({}), or every hung mount also times out its collector",
                    humantime::format_duration(self.mounts.probe_timeout)
                ),
            );
        }
        if self.heartbeat.disk_probe_timeout.is_zero() {
            return invalid(
                "heartbeat.disk_probe_timeout",
                "must be greater than 0".into(),
            );
        }
        if self.mounts.probe_timeout.is_zero() {
            return invalid("mounts.probe_timeout", "must be greater than 0".into());
        }
        if self.mounts.fstypes.is_empty() {
            return invalid("mounts.fstypes", "must name at least one type".into());
        }
        if let Some(name) = &self.cluster.node_name {
            // A cluster.conf node name; it also goes into the peer
            // protocol's signed fields and headers, one per line.
            let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.".contains(&b);
            if name.is_empty() || !name.bytes().all(allowed) {
                return invalid(
                    "cluster.node_name",
                    "must be this node's name in /etc/ocfs2/cluster.conf (letters, digits, '-', '_', '.')".into(),
                );
            }
        }
        if self.cluster.request_timeout.is_zero() {
            return invalid("cluster.request_timeout", "must be greater than 0".into());
        }
        if self.mounts.table_max_age < self.sampler.interval {
            return invalid(
                "mounts.table_max_age",
                "must be at least sampler.interval".into(),
            );
        }
        if let Err(e) = regex::Regex::new(&self.mounts.mount_points_exclude) {
            return invalid("mounts.mount_points_exclude", e.to_string());
        }
        if !(self.heartbeat.warn_ratio > 0.0 && self.heartbeat.warn_ratio < 1.0) {
            return invalid(
                "heartbeat.warn_ratio",
                "must be between 0 and 1 (exclusive): 1.0 is the self-fence".into(),
            );
        }
        if self.kernel_log.source.as_os_str().is_empty() {
            return invalid("kernel_log.source", "must not be empty".into());
        }
        if self.kernel_log.journal_timeout.is_zero() {
            return invalid(
                "kernel_log.journal_timeout",
                "must be greater than 0".into(),
            );
        }
        if self.probe.max_threads < 2 {
            return invalid("probe.max_threads", "must be at least 2".into());
        }
        for expected in &self.mounts.expected {
            if !expected.mountpoint.starts_with('/') {
                return invalid(
                    "mounts.expected.mountpoint",
                    format!("{:?} is not an absolute path", expected.mountpoint),
                );
            }
            if expected.source.trim().is_empty() {
                return invalid(
                    "mounts.expected.source",
                    format!("empty for {}", expected.mountpoint),
                );
            }
        }
        for pattern in &self.mounts.unstack_ignore {
            if let Err(e) = glob::Pattern::new(pattern) {
                return invalid(
                    "mounts.unstack_ignore",
                    format!("{pattern:?} is not a glob pattern: {e}"),
                );
            }
        }
        for (key, duration) in self.durations() {
            if let Err(error) = crate::input::bounded(key, duration, MAX_DURATION) {
                // Counted too: a SIGHUP reload refuses it while the daemon runs.
                let error = crate::input::reject(crate::input::Source::Config, error);
                return invalid(key, format!("{error}: no duration here may be longer"));
            }
        }
        self.cluster.validate()?;
        self.remediation.validate()?;
        self.check.validate()?;
        self.collectors.validate()?;
        if self
            .web
            .listen_address
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            return invalid(
                "web.listen_address",
                format!("{:?} is not host:port", self.web.listen_address),
            );
        }
        self.web.validate()
    }

    /// Every duration of the file, by key: each is added to clocks, so
    /// each is bounded (`MAX_DURATION`) before anything runs.
    fn durations(&self) -> Vec<(&'static str, Duration)> {
        let r = &self.remediation;
        let mut all = vec![
            ("sampler.interval", self.sampler.interval),
            ("sampler.collector_timeout", self.sampler.collector_timeout),
            ("mounts.probe_timeout", self.mounts.probe_timeout),
            ("mounts.table_max_age", self.mounts.table_max_age),
            (
                "heartbeat.ratio_max_window",
                self.heartbeat.ratio_max_window,
            ),
            (
                "heartbeat.disk_probe_timeout",
                self.heartbeat.disk_probe_timeout,
            ),
            (
                "kernel_log.journal_timeout",
                self.kernel_log.journal_timeout,
            ),
            (
                "web.limits.request_timeout",
                self.web.limits.request_timeout,
            ),
            (
                "web.limits.tls_handshake_timeout",
                self.web.limits.tls_handshake_timeout,
            ),
            ("cluster.poll_interval", self.cluster.poll_interval),
            ("cluster.request_timeout", self.cluster.request_timeout),
            ("cluster.max_maintenance", self.cluster.max_maintenance),
            ("cluster.max_clock_skew", self.cluster.max_clock_skew),
            ("remediation.startup_grace", r.startup_grace),
            ("remediation.storm_window", r.storm_window),
            ("remediation.storm_release_jitter", r.storm_release_jitter),
            ("remediation.action_timeout", r.action_timeout),
            (
                "check.kernel_events_window",
                self.check.kernel_events_window,
            ),
            (
                "check.paused_warning_after",
                self.check.paused_warning_after,
            ),
        ];
        all.extend(
            r.storm_hold_down
                .map(|d| ("remediation.storm_hold_down", d)),
        );
        for rule in r.rules.values() {
            all.extend(rule.r#for.map(|d| ("remediation.rules.for", d)));
            all.extend(rule.cooldown.map(|d| ("remediation.rules.cooldown", d)));
            all.extend(rule.backoff.map(|d| ("remediation.rules.backoff", d)));
            all.extend(
                rule.backoff_max
                    .map(|d| ("remediation.rules.backoff_max", d)),
            );
            all.extend(
                rule.failure_window
                    .map(|d| ("remediation.rules.failure_window", d)),
            );
        }
        all
    }

    /// The effective configuration as TOML, for `--check-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn mount_identity_and_unstack_ignore_keys() {
        let config = parse(
            "[mounts]\nallow_kernel_names = true\nunstack_ignore = [\"/var/lib/kubelet/pods/**\", \"/srv/*\"]\n",
        )
        .unwrap();
        assert!(config.mounts.allow_kernel_names);
        assert!(config
            .mounts
            .unstack_ignored("/var/lib/kubelet/pods/p/volumes/v"));
        assert!(config.mounts.unstack_ignored("/srv/a"));
        assert!(!config.mounts.unstack_ignored("/srv/a/b"));
        assert!(!Config::default().mounts.allow_kernel_names);
        let error = parse("[mounts]\nunstack_ignore = [\"/srv/[a\"]\n").unwrap_err();
        assert!(error.to_string().contains("unstack_ignore"), "{error}");
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(parse("").unwrap(), Config::default());
        Config::default().validate().unwrap();
    }

    #[test]
    fn full_example_parses() {
        let config = parse(
            r#"
            [sampler]
            interval = "2s"
            [mounts]
            fstypes = ["ocfs2"]
            probe_timeout = "5s"
            [[mounts.expected]]
            mountpoint = "/srv/data"
            source = "LABEL=data"
            fstype = "ocfs2"
            options = "_netdev,defaults"
            "#,
        )
        .unwrap();
        assert_eq!(config.mounts.expected[0].source, "LABEL=data");
        assert_eq!(config.sampler.interval, Duration::from_secs(2));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("[mounts]\nfstype = [\"x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `fstype`"), "{err}");
    }

    #[test]
    fn bad_exclude_regex_is_named() {
        let err = parse("[mounts]\nmount_points_exclude = \"^/(unclosed\"\n").unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "mounts.mount_points_exclude",
                    ..
                }
            ),
            "{err}"
        );
        let config = parse("[mounts]\nmount_points_exclude = \"\"\n").unwrap();
        assert_eq!(config.mounts.mount_points_exclude, "");
    }

    #[test]
    fn bad_duration_is_named() {
        let err = parse("[sampler]\ninterval = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("interval"), "{err}");
    }

    #[test]
    fn cross_field_mistake_is_named() {
        let err = parse("[mounts]\nprobe_timeout = \"20s\"\n").unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "sampler.collector_timeout",
                    ..
                }
            ),
            "{err}"
        );
        let err = parse("[[mounts.expected]]\nmountpoint = \"data\"\nsource = \"LABEL=x\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("not an absolute path"), "{err}");
    }

    #[test]
    fn heartbeat_section_parses_and_is_checked() {
        let config = parse("[heartbeat]\nwarn_ratio = 0.3\nratio_max_window = \"5m\"\n").unwrap();
        assert_eq!(config.heartbeat.warn_ratio, 0.3);
        assert_eq!(config.heartbeat.ratio_max_window, Duration::from_secs(300));
        let err = parse("[heartbeat]\nwarn_ratio = 1.5\n").unwrap_err();
        assert!(err.to_string().contains("heartbeat.warn_ratio"), "{err}");
    }

    #[test]
    fn relative_kernel_log_source_is_taken_from_the_config_dir() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[kernel_log]\nsource = \"dmesg.txt\"\n").unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(config.kernel_log.source, dir.path().join("dmesg.txt"));
        assert_eq!(config.state_dir, StateDir::default());
        let err = parse("[kernel_log]\nsource = \"\"\n").unwrap_err();
        assert!(err.to_string().contains("kernel_log.source"), "{err}");
    }

    #[test]
    fn round_trips_through_toml() {
        let config = Config::default();
        assert_eq!(parse(&config.to_toml()).unwrap(), config);
    }

    #[test]
    fn a_duration_past_the_maximum_is_refused() {
        for text in [
            "[remediation]\nstartup_grace = \"500000000y\"\n",
            "[cluster]\nmax_maintenance = \"400days\"\n",
            "[cluster]\nmax_clock_skew = \"2days\"\n",
            "[remediation.rules.missing_mount]\ncooldown = \"11years\"\n",
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains("invalid value"), "{text}: {error}");
        }
        assert!(parse("[cluster]\nmax_maintenance = \"7days\"\n").is_ok());
    }
}
