//! `ocfs2-watchdog status` and `check` against the golden fixture scenarios:
//! the text screen must equal `tests/status_golden/<scenario>.txt` (with the
//! snapshot's time zeroed), and both subcommands must exit with the Nagios
//! code the scenario deserves. The binary runs with `--local` (no daemon,
//! one snapshot as `--once`), the fixture's config, the kernel log off
//! unless the fixture replays one, and state in a scratch directory.
//! `UPDATE_GOLDEN=1 cargo test --test status` rewrites the text goldens:
//! review the diff like code.
//!
//! Scenarios (the names → the closest fixture): healthy pair →
//! `cluster-mounted-n1` and `-n2`; zombie → `zombie-n1` (and `zombie-n2`,
//! where n2 sees nothing wrong); iSCSI dead → `iscsi-target-dead`; o2cb not
//! back → `o2cb-not-back`; stuck mount → no fixture can hang a probe, so
//! `tests/status_page.rs` hangs a real FUSE mount under `cluster-mounted-n1`
//! and `heartbeat-node-dead`. Also: `alerts-degraded` (dead node, read-only
//! volume), `multipath-one-path-failed`, `mounts-stale`, `kernel-log-pause`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::time::Duration;

use ocfs2_watchdog::config::{Config, KernelLogConfig, StateDir};
use ocfs2_watchdog::status::thresholds::Severity;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The fixture's config made safe to run here; returns its path.
fn scenario_config(name: &str, dir: &Path, adjust: fn(&mut Config)) -> PathBuf {
    let path = fixture(name).join("config.toml");
    let mut config = if path.exists() {
        Config::load(&path).unwrap()
    } else {
        Config::default()
    };
    if config.kernel_log.source == KernelLogConfig::default().source {
        config.kernel_log.enabled = false;
    }
    config.state_dir = StateDir(dir.join("state"));
    // Nothing answers on this port: the command must take its own snapshot.
    config.web.listen_address = support::listen::loopback_address();
    adjust(&mut config);
    let written = dir.join("config.toml");
    std::fs::write(&written, config.to_toml()).unwrap();
    written
}

mod support;

fn run(name: &str, args: &[&str], adjust: fn(&mut Config)) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let config = scenario_config(name, dir.path(), adjust);
    Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .arg("--config")
        .arg(&config)
        .arg("--path.rootfs")
        .arg(fixture(name).join("rootfs"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// The snapshot's time and sequence are the run's, not the fixture's.
/// The screen without what differs between runs and checkouts: the
/// snapshot line, and the fixture's absolute path in collector errors.
fn normalize(text: &str) -> String {
    let checkout = env!("CARGO_MANIFEST_DIR");
    text.replace(checkout, "<checkout>")
        .lines()
        .map(|line| {
            if line.starts_with("Snapshot ") {
                "Snapshot N taken (time), taken by this command (--local) (ocfs2-watchdog VERSION)"
                    .to_string()
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

const SCENARIOS: &[(&str, u8)] = &[
    ("cluster-mounted-n1", 0),
    ("cluster-mounted-n2", 0),
    ("zombie-n1", 2),
    ("zombie-n2", 0),
    ("iscsi-target-dead", 2),
    ("o2cb-not-back", 2),
    ("alerts-degraded", 2),
    ("multipath-one-path-failed", 1),
    ("mounts-stale", 1),
    ("kernel-log-pause", 0),
];

#[test]
fn status_text_matches_the_golden_screens_and_exit_codes() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/status_golden");
    let mut failures = Vec::new();
    for (name, code) in SCENARIOS {
        let output = run(name, &["status", "--local"], |_| {});
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            !stdout.contains('\x1b'),
            "{name}: colour without a terminal"
        );
        let text = normalize(&stdout);
        let golden = golden_dir.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&golden_dir).unwrap();
            std::fs::write(&golden, &text).unwrap();
        } else {
            let expected = std::fs::read_to_string(&golden)
                .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 makes it)", golden.display()));
            if expected != text {
                failures.push(format!(
                    "{name}: text differs from {}:\n{text}",
                    golden.display()
                ));
            }
        }
        if output.status.code() != Some(i32::from(*code)) {
            failures.push(format!(
                "{name}: status exited {:?}, expected {code}",
                output.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn check_prints_one_nagios_line_with_the_scenario_exit_code() {
    let states = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];
    for (name, code) in SCENARIOS {
        let output = run(name, &["check", "--local"], |_| {});
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "{name}: {stdout}");
        let prefix = format!("OCFS2 {} - ", states[usize::from(*code)]);
        assert!(stdout.starts_with(&prefix), "{name}: {stdout}");
        assert_eq!(
            output.status.code(),
            Some(i32::from(*code)),
            "{name}: {stdout}"
        );
        let (_, perfdata) = stdout.split_once(" | ").expect("performance data");
        for item in perfdata.split_whitespace() {
            let (label, value) = item.split_once('=').unwrap();
            assert!(label.starts_with('\'') && label.ends_with('\''), "{item}");
            let number = value.split(';').next().unwrap();
            assert!(number.parse::<f64>().is_ok(), "{name}: {item}");
        }
    }
}

#[test]
fn check_lines_name_what_is_wrong() {
    for (name, expected) in [
        (
            "zombie-n1",
            "node 2 (n2) zombie: live and connected but missing from DLM domain DEA93192",
        ),
        (
            "o2cb-not-back",
            "o2cb cluster labclu offline, /mnt/ocfs2 not mounted (expected by fstab)",
        ),
        ("alerts-degraded", "node 2 (n2) not live"),
        (
            "iscsi-target-dead",
            "/mnt/iscsi has no usable path: sda (session2 FAILED)",
        ),
        (
            "multipath-one-path-failed",
            "5E0F3B8C path down: sdc (session2 FAILED)",
        ),
        (
            "cluster-mounted-n1",
            "OCFS2 OK - cluster labclu online, 2/2 nodes live",
        ),
    ] {
        let output = run(name, &["check", "--local"], |_| {});
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(stdout.contains(expected), "{name}: {stdout}");
    }
    let output = run("cluster-mounted-n1", &["check", "--local"], |_| {});
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("'hb_ratio'=0.14;0.5;0.8;0;1"), "{stdout}");
    assert!(stdout.contains("'nodes_live'=2;;;0;2"), "{stdout}");
}

#[test]
fn thresholds_and_severities_come_from_the_check_section() {
    // The replayed kernel log is days old: counted only with a wide window.
    let output = run("kernel-log-pause", &["check", "--local"], |config| {
        config.check.kernel_events_window = Duration::from_secs(3650 * 86400);
    });
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("1 kernel event in the last 3650d (dlm_node_evicted)"),
        "{stdout}"
    );
    // A node down made a warning, the read-only and missing volumes silenced.
    let output = run("alerts-degraded", &["check", "--local"], |config| {
        config.check.severity.node_down = Severity::Warning;
        config.check.severity.mount_error_readonly = Severity::Ok;
        config.check.severity.mount_missing = Severity::Ok;
    });
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("OCFS2 WARNING - node 2 (n2) not live |"),
        "{stdout}"
    );
    // The heartbeat lag of cluster-mounted-n1 (0.14) over a lowered bar.
    let output = run("cluster-mounted-n1", &["check", "--local"], |config| {
        config.check.heartbeat_ratio_warning = 0.1;
        config.check.heartbeat_ratio_critical = 0.12;
    });
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("heartbeat of labvol at 14% of the fence timeout"),
        "{stdout}"
    );
}

#[test]
fn a_bad_configuration_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[check]\nheartbeat_ratio_critical = 2.0\n").unwrap();
    for command in ["check", "status"] {
        let output = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .arg("--config")
            .arg(&config)
            .arg(command)
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert_eq!(output.status.code(), Some(3), "{stdout}");
        assert!(stdout.starts_with("OCFS2 UNKNOWN - configuration error: invalid value for `check.heartbeat_ratio_critical`"), "{stdout}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn status_json_is_the_verdict_and_the_overview() {
    let output = run("zombie-n1", &["status", "--local", "--json"], |_| {});
    assert_eq!(output.status.code(), Some(2));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["state"], "CRITICAL");
    assert_eq!(document["exit_code"], 2);
    assert_eq!(document["source"]["kind"], "local");
    let overview = &document["overview"];
    assert_eq!(overview["cluster"]["name"], "labclu");
    assert_eq!(overview["nodes"][1]["zombie"], true);
    assert_eq!(overview["nodes"][1]["dlm_member"], false);
    assert_eq!(overview["volumes"][0]["label"], "labvol");
    assert_eq!(
        overview["volumes"][0]["mounts"][0]["mountpoint"],
        "/mnt/ocfs2"
    );
    assert_eq!(overview["remediation"]["mode"], "dry_run");
    // The document reads back as the typed overview the renderers use.
    let typed: ocfs2_watchdog::status::model::Overview =
        serde_json::from_value(overview.clone()).unwrap();
    assert_eq!(typed.nodes.len(), 2);
}
