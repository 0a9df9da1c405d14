//! The `status` and `check` subcommands: get an overview (from the local
//! daemon, or from one snapshot taken here exactly as `--once` takes it),
//! judge it with the `[check]` thresholds and print it. Both exit with the
//! Nagios plugin codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), so either
//! can sit in a monitoring agent; a configuration error is UNKNOWN.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::check::{self, State, Verdict};
use super::model::Overview;
use super::{client, cluster, origin_line, render, text};
use crate::config::Config;
use crate::host::HostPaths;

/// Where the overview came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The daemon's address: its admin socket (`unix:/path`) or TCP.
    Daemon(String),
    /// Taken by this command; why the daemon was not used.
    Local(String),
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Self::Daemon(address) => format!("from the daemon on {address}"),
            Self::Local(why) => format!("taken by this command ({why})"),
        }
    }
}

/// How the subcommand was asked to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Take a snapshot here even when a daemon runs.
    pub local: bool,
    /// `status --json`.
    pub json: bool,
    /// `--cluster`: every node, from the daemon's cluster view.
    pub cluster: bool,
    /// Take the snapshot in this very process (the helper `gather` starts).
    pub in_process: bool,
    /// The long global flags (without `--`) that take a value, so the
    /// helper's command line keeps each value with its flag: the CLI knows
    /// them (`cli::value_flags`), this module does not name the CLI.
    pub value_flags: Vec<String>,
}

/// Why no overview could be had at all.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("cannot start the snapshot helper: {0}")]
    Spawn(std::io::Error),
    #[error("cannot make a scratch directory for the snapshot: {0}")]
    Scratch(std::io::Error),
    #[error("the snapshot helper gave no answer within {0:?}")]
    Timeout(Duration),
    #[error("the snapshot helper's answer is unusable: {0}")]
    Invalid(String),
}

/// The overview from the daemon, or from a snapshot taken here.
pub fn gather(
    config: &Config,
    paths: HostPaths,
    options: &Options,
) -> Result<(Overview, Source), GatherError> {
    if options.in_process {
        // A scratch state directory: the kernel log is read from the start
        // of the ring (not after the daemon's saved position), and nothing
        // the daemon keeps there is written.
        // Made fresh, with an unpredictable name and mode 0700: a name
        // a local user could guess is a place to plant links for root.
        let scratch = scratch_dir("ocfs2-watchdog-status-").map_err(GatherError::Scratch)?;
        let mut config = config.clone();
        config.state_dir = crate::config::StateDir(scratch.path().to_path_buf());
        let snapshot = crate::sampler::take_one(paths, Arc::new(config));
        drop(scratch);
        return Ok((super::overview(&snapshot), Source::Local("--local".into())));
    }
    let why = if options.local {
        "--local".to_string()
    } else {
        // The admin socket first: root-only, so no scrape credentials needed.
        if let Some(socket) = config.admin_socket().filter(|path| path.exists()) {
            match client::fetch_overview_from_socket(&socket) {
                Ok(overview) => {
                    let address = format!("unix:{}", socket.display());
                    return Ok((overview, Source::Daemon(address)));
                }
                Err(error) => {
                    tracing::debug!(error = %error, "Asking the scrape port: the admin socket did not answer.");
                }
            }
        }
        match client::fetch_overview(&config.web) {
            Ok((address, overview)) => return Ok((overview, Source::Daemon(address.to_string()))),
            Err(error) => {
                tracing::debug!(error = %error, "Taking a snapshot here: the daemon did not answer.");
                error.to_string()
            }
        }
    };
    let overview = snapshot_in_helper(config, &options.value_flags)?;
    Ok((overview, Source::Local(why)))
}

/// A new private directory (0700, random name) under the system temp dir,
/// removed when dropped.
pub fn scratch_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt as _;
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
}

/// Takes the snapshot in a helper process (this binary, `status --local
/// --in-process --json`) and reads its one-line answer. A probe blocked on a
/// dead device keeps the process that made it from ever exiting (its thread
/// sits in uninterruptible sleep); in the helper it costs an orphan that
/// init reaps once the I/O returns, while this command answers and exits,
/// as a monitoring agent needs.
fn snapshot_in_helper(config: &Config, value_flags: &[String]) -> Result<Overview, GatherError> {
    let exe = std::env::current_exe().map_err(GatherError::Spawn)?;
    let mut helper = Command::new(exe)
        .args(helper_args(std::env::args_os().skip(1), value_flags))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Not inherited: a helper stuck on a device would hold this
        // command's stderr open, and whoever reads it would wait for ever.
        .stderr(Stdio::null())
        .spawn()
        .map_err(GatherError::Spawn)?;
    let stdout = helper.stdout.take();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        if let Some(stdout) = stdout {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let _ = send.send(line);
    });
    // Every collector's deadline, a second look past the probe deadline,
    // and slack for a loaded host.
    let limit = config
        .sampler
        .collector_timeout
        .saturating_mul(2)
        .saturating_add(
            config
                .mounts
                .probe_timeout
                .max(config.heartbeat.disk_probe_timeout),
        )
        .saturating_add(Duration::from_secs(5));
    let line = receive
        .recv_timeout(limit)
        .map_err(|_| GatherError::Timeout(limit))?;
    // Not waited for: it may be the one stuck on the device.
    drop(helper);
    let document: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| GatherError::Invalid(e.to_string()))?;
    serde_json::from_value(document["overview"].clone())
        .map_err(|e| GatherError::Invalid(e.to_string()))
}

/// This command's arguments with the subcommand replaced by the helper's.
/// Global flags may stand on either side of the subcommand, so everything
/// but the subcommand's name and its own flags is kept, in order.
fn helper_args(args: impl Iterator<Item = OsString>, value_flags: &[String]) -> Vec<OsString> {
    const OWN_FLAGS: [&str; 4] = ["--json", "--local", "--in-process", "--cluster"];
    let mut out = Vec::new();
    let mut in_subcommand = false;
    let mut takes_value = false;
    for arg in args {
        let flag_with_value = arg
            .to_str()
            .and_then(|a| a.strip_prefix("--"))
            .is_some_and(|a| !a.contains('=') && value_flags.iter().any(|f| f == a));
        if !takes_value && !in_subcommand && (arg == "status" || arg == "check") {
            in_subcommand = true;
        } else if !takes_value && in_subcommand && OWN_FLAGS.iter().any(|f| arg == *f) {
        } else {
            out.push(arg);
        }
        takes_value = !takes_value && flag_with_value;
    }
    out.extend(["status", "--local", "--in-process", "--json"].map(OsString::from));
    out
}

/// `ocfs2-watchdog status`: prints the screen, returns the exit code.
pub fn status(config: &Config, paths: HostPaths, options: &Options) -> u8 {
    if options.cluster {
        return status_cluster(config, options);
    }
    let (overview, source) = match gather(config, paths, options) {
        Ok(found) => found,
        Err(error) => return no_overview(&error, options.json),
    };
    let verdict = check::evaluate(&overview, &config.check);
    if options.json {
        println!("{}", json_document(&overview, &verdict, &source));
    } else {
        let origin = origin_line(&overview, &source.describe());
        let document = render::document(&overview, verdict.clone(), origin, &config.check);
        print!("{}", text::render(&document, text::colour_wanted()));
    }
    verdict.state.exit_code()
}

/// `ocfs2-watchdog check`: one Nagios line, the exit code.
pub fn check(config: &Config, paths: HostPaths, options: &Options) -> u8 {
    if options.cluster {
        let (_, status) = match client::fetch_cluster(&config.web) {
            Ok(found) => found,
            Err(error) => return unknown(&format!("no cluster view: {error}"), false),
        };
        let verdict = cluster::evaluate(&status, &config.check);
        println!("{}", verdict.line());
        return verdict.state.exit_code();
    }
    let (overview, _) = match gather(config, paths, options) {
        Ok(found) => found,
        Err(error) => return no_overview(&error, false),
    };
    let verdict = check::evaluate(&overview, &config.check);
    println!("{}", verdict.line());
    verdict.state.exit_code()
}

/// `status --cluster`: the cluster view the local daemon gathered; there
/// is no local fallback, as only the daemon talks to the peers.
fn status_cluster(config: &Config, options: &Options) -> u8 {
    let (status, address) = match client::fetch_cluster(&config.web) {
        Ok((address, status)) => (status, address),
        Err(error) => return unknown(&format!("no cluster view: {error}"), options.json),
    };
    let verdict = cluster::evaluate(&status, &config.check);
    if options.json {
        println!("{}", cluster_json(&status, &verdict, address));
    } else {
        let origin = format!(
            "Cluster view from the daemon on {address} (each node's snapshot time in its summary)"
        );
        let document = cluster::document(&status, verdict.clone(), origin);
        print!("{}", text::render(&document, text::colour_wanted()));
    }
    verdict.state.exit_code()
}

/// `status --cluster --json`: the verdict and the cluster view.
pub fn cluster_json(
    status: &cluster::ClusterStatus,
    verdict: &Verdict,
    address: std::net::SocketAddr,
) -> serde_json::Value {
    let findings: Vec<serde_json::Value> = verdict
        .findings
        .iter()
        .map(|f| json!({ "state": f.state.as_str(), "text": f.text }))
        .collect();
    json!({
        "state": verdict.state.as_str(),
        "exit_code": verdict.state.exit_code(),
        "line": verdict.line(),
        "findings": findings,
        "source": { "kind": "daemon", "address": address.to_string() },
        "cluster": status,
    })
}

fn no_overview(error: &GatherError, json: bool) -> u8 {
    unknown(&format!("no snapshot: {error}"), json)
}

/// What either subcommand prints when the configuration cannot be used.
pub fn configuration_error(error: &dyn std::fmt::Display, json: bool) -> u8 {
    unknown(&format!("configuration error: {error}"), json)
}

fn unknown(reason: &str, json: bool) -> u8 {
    let verdict = Verdict::unknown(reason);
    if json {
        let document = json!({
            "state": verdict.state.as_str(),
            "exit_code": verdict.state.exit_code(),
            "line": verdict.line(),
            "findings": [{ "state": "UNKNOWN", "text": reason }],
        });
        println!("{document}");
    } else {
        println!("{}", verdict.line());
    }
    State::Unknown.exit_code()
}

/// `status --json`: the verdict and the overview, as `/status` serves it.
fn json_document(overview: &Overview, verdict: &Verdict, source: &Source) -> serde_json::Value {
    let findings: Vec<serde_json::Value> = verdict
        .findings
        .iter()
        .map(|f| json!({ "state": f.state.as_str(), "text": f.text }))
        .collect();
    let source = match source {
        Source::Daemon(address) => json!({ "kind": "daemon", "address": address.to_string() }),
        Source::Local(why) => json!({ "kind": "local", "reason": why }),
    };
    json!({
        "state": verdict.state.as_str(),
        "exit_code": verdict.state.exit_code(),
        "line": verdict.line(),
        "findings": findings,
        "source": source,
        "overview": overview,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_directories_are_private_and_unpredictable() {
        use std::os::unix::fs::PermissionsExt as _;
        let one = scratch_dir("ocfs2-watchdog-status-").unwrap();
        let two = scratch_dir("ocfs2-watchdog-status-").unwrap();
        assert_ne!(one.path(), two.path());
        let name = one
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(!name.ends_with(&std::process::id().to_string()), "{name}");
        let mode = std::fs::metadata(one.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // A link planted at the old fixed name is not what is used.
        let old =
            std::env::temp_dir().join(format!("ocfs2-watchdog-status.{}", std::process::id()));
        assert!(one.path() != old && two.path() != old);
        let path = one.path().to_path_buf();
        drop(one);
        assert!(!path.exists());
    }

    fn value_flags() -> Vec<String> {
        ["config", "path.rootfs"].map(String::from).to_vec()
    }

    #[test]
    fn the_helper_keeps_the_global_flags_and_runs_status_in_process() {
        let args = [
            "--config",
            "c.toml",
            "--path.rootfs",
            "/host",
            "check",
            "--local",
        ];
        let helper = helper_args(args.iter().map(OsString::from), &value_flags());
        let expected = [
            "--config",
            "c.toml",
            "--path.rootfs",
            "/host",
            "status",
            "--local",
            "--in-process",
            "--json",
        ];
        assert_eq!(helper, expected.map(OsString::from));
    }

    #[test]
    fn the_helper_keeps_global_flags_given_after_the_subcommand() {
        let args = [
            "status",
            "--json",
            "--config",
            "status",
            "--local",
            "--path.rootfs=/host",
        ];
        let helper = helper_args(args.iter().map(OsString::from), &value_flags());
        let expected = [
            "--config",
            "status",
            "--path.rootfs=/host",
            "status",
            "--local",
            "--in-process",
            "--json",
        ];
        assert_eq!(helper, expected.map(OsString::from));
    }
}
