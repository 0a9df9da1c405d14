//! End-to-end golden files of `/metrics`, node_exporter style.
//!
//! Every directory under `tests/fixtures/<scenario>/` holds a host tree
//! (`rootfs/`, read through `--path.rootfs`), an optional `config.toml` and a
//! `README.md` saying what it shows and which capture (tests/data/captures/)
//! it was built from. The golden is exactly what `ocfs2-watchdog --once`
//! prints for it (tests/support/fixtures.rs runs the binary: one snapshot,
//! one dry-run rule-engine tick), with run-dependent values zeroed.
//!
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the golden files
//! (never under CI): review the diff like code. The goldens are the code
//! checked against itself; tests/key_values.rs checks the values each
//! scenario is about against its capture, and never regenerates.

mod support;

use std::collections::BTreeSet;

use support::fixtures::{golden_dir, name_of, once, scenarios};

/// Families whose values depend on the run (time, durations), not the fixture.
const RUN_DEPENDENT: &[&str] = &[
    "ocfs2_watchdog_collector_duration_seconds",
    "ocfs2_watchdog_snapshot_timestamp_seconds",
    "ocfs2_watchdog_mountinfo_read_seconds",
    "ocfs2_mount_probe_duration_seconds",
    // Compares the fixture's monotonic timer with this machine's clock.
    "ocfs2_net_idle_seconds",
];

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

/// `UPDATE_GOLDEN=1` rewrites; any other value is a mistake, and CI never
/// rewrites (a regenerated golden would pass whatever the code printed).
fn update_requested() -> bool {
    match std::env::var("UPDATE_GOLDEN") {
        Err(_) => false,
        Ok(value) if value == "1" => {
            assert!(
                !support::in_ci(),
                "UPDATE_GOLDEN=1 under CI: goldens are rewritten by hand and reviewed, never in CI"
            );
            true
        }
        Ok(other) => panic!("UPDATE_GOLDEN={other:?}: only UPDATE_GOLDEN=1 rewrites the goldens"),
    }
}

#[test]
fn golden_files_match() {
    let update = update_requested();
    let mut failures = Vec::new();
    for dir in scenarios() {
        assert!(
            dir.join("README.md").exists(),
            "{} has no README.md",
            dir.display()
        );
        let name = name_of(&dir);
        let actual = normalize_run_dependent(&once(&dir));
        let golden_path = golden_dir().join(format!("{name}.prom"));
        if update {
            std::fs::write(&golden_path, &actual).unwrap();
            continue;
        }
        let Ok(expected) = std::fs::read_to_string(&golden_path) else {
            failures.push(format!(
                "--- {name}: no golden file (UPDATE_GOLDEN=1 writes it)"
            ));
            continue;
        };
        if expected != actual {
            failures.push(format!(
                "--- {name}: golden differs (UPDATE_GOLDEN=1 to rewrite, then review the diff)\n{}",
                first_difference(&expected, &actual)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A golden whose scenario is gone would keep feeding the alert, dashboard
/// and docs checks with output no code produces any more.
#[test]
fn every_golden_file_has_its_fixture() {
    let scenarios: BTreeSet<String> = scenarios().iter().map(|d| name_of(d)).collect();
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        match file.strip_suffix(".prom") {
            Some(name) if scenarios.contains(name) => {}
            _ => orphans.push(file),
        }
    }
    assert!(
        orphans.is_empty(),
        "files in tests/golden/ without a scenario in tests/fixtures/ (delete them): {orphans:?}"
    );
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

/// `--once` acts on nothing and leaves no trace: its dry-run decisions go to
/// a scratch audit log, never the configured one; a pause file in the
/// configured state directory is honoured. (The goldens themselves run with
/// an empty scratch state directory.)
#[test]
fn once_honours_the_pause_file_and_writes_no_audit_log() {
    use ocfs2_watchdog::config::{Config, StateDir};
    let fixture = support::fixtures::fixtures_dir().join("mounts-stacked");
    let state = tempfile::tempdir().unwrap();
    let mut config = Config::load(&fixture.join("config.toml")).unwrap();
    config.kernel_log.enabled = false;
    config.state_dir = StateDir(state.path().to_path_buf());
    let config_path = state.path().join("config.toml");
    std::fs::write(&config_path, config.to_toml()).unwrap();
    let run = || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .arg("--once")
            .arg("--config")
            .arg(&config_path)
            .arg("--path.rootfs")
            .arg(fixture.join("rootfs"))
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    let unpaused = run();
    assert_eq!(
        support::sample_value(&unpaused, "ocfs2_watchdog_paused"),
        Some(0.0)
    );
    assert_eq!(
        support::sample_value(&unpaused, "ocfs2_watchdog_enforcing"),
        Some(0.0)
    );
    std::fs::write(state.path().join("pause"), "").unwrap();
    let paused = run();
    assert_eq!(
        support::sample_value(&paused, "ocfs2_watchdog_paused"),
        Some(1.0)
    );
    let left: Vec<_> = std::fs::read_dir(state.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !left.iter().any(|name| name.starts_with("audit")),
        "--once wrote to the configured state directory: {left:?}"
    );
}
