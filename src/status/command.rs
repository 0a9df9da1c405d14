//! The `status` and `check` subcommands: get an overview (from the local
//! daemon, or from one snapshot taken here exactly as `--once` takes it),
//! judge it with the `[check]` thresholds and print it. Both exit with the
//! Nagios plugin codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), so either
//! can sit in a monitoring agent; a configuration error is UNKNOWN.

use std::sync::Arc;

use serde_json::json;

use super::check::{self, State, Verdict};
use super::model::Overview;
use super::{client, origin_line, render, text};
use crate::config::Config;
use crate::host::HostPaths;

/// Where the overview came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Daemon(std::net::SocketAddr),
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
}

/// The overview from the daemon, or from a snapshot taken here.
pub fn gather(config: &Config, paths: HostPaths, local: bool) -> (Overview, Source) {
    let why = if local {
        "--local".to_string()
    } else {
        match client::fetch_overview(&config.web) {
            Ok((address, overview)) => return (overview, Source::Daemon(address)),
            Err(error) => {
                tracing::debug!(error = %error, "Taking a snapshot here: the daemon did not answer.");
                error.to_string()
            }
        }
    };
    let snapshot = crate::sampler::take_one(paths, Arc::new(config.clone()));
    (super::overview(&snapshot), Source::Local(why))
}

/// `ocfs2-watchdog status`: prints the screen, returns the exit code.
pub fn status(config: &Config, paths: HostPaths, options: &Options) -> u8 {
    let (overview, source) = gather(config, paths, options.local);
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
    let (overview, _) = gather(config, paths, options.local);
    let verdict = check::evaluate(&overview, &config.check);
    println!("{}", verdict.line());
    verdict.state.exit_code()
}

/// What either subcommand prints when the configuration cannot be used.
pub fn configuration_error(error: &dyn std::fmt::Display, json: bool) -> u8 {
    let verdict = Verdict::unknown(&format!("configuration error: {error}"));
    if json {
        let document = json!({
            "state": verdict.state.as_str(),
            "exit_code": verdict.state.exit_code(),
            "findings": [{ "state": "UNKNOWN", "text": verdict.findings[0].text }],
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
