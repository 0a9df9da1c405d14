//! End-to-end golden files of `/metrics`, node_exporter style.
//!
//! Every directory under `tests/fixtures/<scenario>/` holds a host tree
//! (`rootfs/`, read through `--path.rootfs`), an optional `config.toml` and a
//! `README.md` saying what it shows and which real capture it was built from.
//! The daemon takes one snapshot of it exactly as `--once` does; the output,
//! with run-dependent values zeroed, must equal `tests/golden/<scenario>.prom`.
//! The rule engine runs once over the snapshot in dry-run (state in a scratch
//! directory), and its report is rendered with it, as the daemon serves it.
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the golden files: review
//! the diff like code.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ocfs2_watchdog::actions::{DryRunExecutor, HostActions};
use ocfs2_watchdog::collector::Context;
use ocfs2_watchdog::config::StateDir;
use ocfs2_watchdog::config::{Config, KernelLogConfig};
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::rules::config::Mode;
use ocfs2_watchdog::rules::control::Control;
use ocfs2_watchdog::rules::Engine;
use ocfs2_watchdog::sampler::Sampler;
use std::time::Instant;

/// Families whose values depend on the run (time, durations), not the fixture.
const RUN_DEPENDENT: &[&str] = &[
    "ocfs2_watchdog_collector_duration_seconds",
    "ocfs2_watchdog_snapshot_timestamp_seconds",
    "ocfs2_watchdog_mountinfo_read_seconds",
    "ocfs2_mount_probe_duration_seconds",
    // Compares the fixture's monotonic timer with this machine's clock.
    "ocfs2_net_idle_seconds",
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Renders one scenario the way `--once` would.
pub fn render_scenario(dir: &Path) -> String {
    let config_path = dir.join("config.toml");
    let config = if config_path.exists() {
        Config::load(&config_path).expect("fixture config must be valid")
    } else {
        Config::default()
    };
    // Fixtures never follow this machine's /dev/kmsg: a scenario whose
    // config names no kernel log file gets the kernel log disabled.
    let mut config = config;
    if config.kernel_log.source == KernelLogConfig::default().source {
        config.kernel_log.enabled = false;
    }
    // The engine's audit log and pause file go to a scratch directory, and
    // it only ever decides: a fixture is never acted on.
    let state = tempfile::tempdir().expect("scratch state dir");
    config.state_dir = StateDir(state.path().to_path_buf());
    config.remediation.mode = Mode::DryRun;
    // The decision itself, not the wait after start, is what a fixture shows.
    config.remediation.startup_grace = std::time::Duration::ZERO;
    let config = Arc::new(config);
    let paths = HostPaths::new(dir.join("rootfs"), None, None);
    let mut sampler = Sampler::new(Arc::new(Context::new(paths.clone(), Arc::clone(&config))));
    let mut snapshot = sampler.tick(config.sampler.collector_timeout);
    // As the daemon serves it: the snapshot plus the rule engine's report on it.
    let control = Arc::new(Control::new(state.path(), None));
    let executor = DryRunExecutor(HostActions::new(paths, &config.remediation));
    let mut engine = Engine::new(Arc::clone(&config), Box::new(executor), control);
    snapshot.remediation = Some(Arc::new(engine.tick(&snapshot, Instant::now())));
    normalize_run_dependent(snapshot.rendered_text())
}

/// The build's git revision and compiler, set by build.rs: the build, not
/// the fixture, decides them.
fn normalize_build_info(line: &str) -> String {
    if !line.starts_with("ocfs2_watchdog_build_info{") {
        return line.to_string();
    }
    let mut out = line.to_string();
    for label in ["revision", "rustc_version"] {
        let key = format!("{label}=\"");
        if let Some(start) = out.find(&key).map(|i| i + key.len()) {
            if let Some(len) = out[start..].find('"') {
                out.replace_range(start..start + len, "BUILD");
            }
        }
    }
    out
}

fn normalize_run_dependent(text: &str) -> String {
    text.lines()
        .map(normalize_build_info)
        .map(|line| {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            if !line.starts_with('#') && RUN_DEPENDENT.contains(&&line[..name_end]) {
                let value_start = line.rfind(' ').unwrap_or(line.len());
                format!("{} 0.0", &line[..value_start])
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn golden_files_match() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("rootfs").is_dir())
        .collect();
    scenarios.sort();
    assert!(!scenarios.is_empty(), "no fixture scenarios found");
    let mut failures = Vec::new();
    for dir in &scenarios {
        assert!(
            dir.join("README.md").exists(),
            "{} has no README.md",
            dir.display()
        );
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let actual = render_scenario(dir);
        let golden_path = golden_dir.join(format!("{name}.prom"));
        if update {
            std::fs::write(&golden_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "--- {name}: golden differs (UPDATE_GOLDEN=1 to rewrite, then review the diff)\n{}",
                first_difference(&expected, &actual)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn first_difference(expected: &str, actual: &str) -> String {
    for (number, pair) in expected.lines().zip(actual.lines()).enumerate() {
        if pair.0 != pair.1 {
            return format!(
                "line {}:\n  golden: {}\n  actual: {}",
                number + 1,
                pair.0,
                pair.1
            );
        }
    }
    format!(
        "lengths differ: golden {} lines, actual {} lines",
        expected.lines().count(),
        actual.lines().count()
    )
}
