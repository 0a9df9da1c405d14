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
    ("o2cb-installed-idle", 0),
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
fn an_offline_stack_is_critical_only_where_a_cluster_is_expected() {
    // ocfs2-tools installed, O2CB_ENABLED=false, no cluster.conf, no mount.
    let output = run("o2cb-installed-idle", &["check", "--local"], |_| {});
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.starts_with("OCFS2 OK - no cluster configured"),
        "{stdout}"
    );
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    // The same host with an OCFS2 volume expected: the stack must run.
    let output = run("o2cb-installed-idle", &["check", "--local"], |config| {
        config
            .mounts
            .expected
            .push(ocfs2_watchdog::config::ExpectedMount {
                mountpoint: "/srv/data".into(),
                source: "LABEL=data".into(),
                fstype: "ocfs2".into(),
                options: "_netdev".into(),
            });
    });
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.starts_with("OCFS2 CRITICAL - o2cb cluster ocfs2 offline"),
        "{stdout}"
    );
    assert_eq!(output.status.code(), Some(2), "{stdout}");
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

/// A node's summary as its daemon would serve it: the fixture's overview
/// (a lab capture) judged with the fixture's own thresholds.
fn summary_of(name: &str, node: &str) -> ocfs2_watchdog::status::cluster::NodeSummary {
    use ocfs2_watchdog::status::{check, model::Overview};
    let output = run(name, &["status", "--local", "--json"], |_| {});
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let overview: Overview = serde_json::from_value(document["overview"].clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(&scenario_config(name, dir.path(), |_| {})).unwrap();
    let verdict = check::evaluate(&overview, &config.check);
    ocfs2_watchdog::status::cluster::from_overview(node, &overview, &verdict)
}

#[test]
fn the_cluster_view_matches_its_goldens_from_the_lab_captures() {
    use ocfs2_watchdog::status::cluster::{self, ClusterNode, ClusterStatus, PeerReach};
    use ocfs2_watchdog::status::{text, thresholds::CheckConfig};

    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/status_golden");
    let reach = |node: &str, up: bool| {
        Some(vec![PeerReach {
            node: node.into(),
            up,
        }])
    };
    let mut n1 = summary_of("cluster-mounted-n1", "n1");
    let mut n2 = summary_of("cluster-mounted-n2", "n2");
    n1.peers = reach("n2", true);
    n2.peers = reach("n1", true);
    let answering = |summary: cluster::NodeSummary, local: bool, address: &str| ClusterNode {
        node: summary.node.clone(),
        address: Some(address.into()),
        local,
        reachable: true,
        error: None,
        summary: Some(summary),
    };
    let both = ClusterStatus {
        cluster: Some("labclu".into()),
        nodes: vec![
            answering(n1.clone(), true, "10.99.0.1:9786"),
            answering(n2, false, "10.99.0.2:9786"),
        ],
    };
    // n2 powered off: its peer port times out, and n1's poll says so too.
    n1.peers = reach("n2", false);
    let one_gone = ClusterStatus {
        cluster: Some("labclu".into()),
        nodes: vec![
            answering(n1, true, "10.99.0.1:9786"),
            ClusterNode {
                node: "n2".into(),
                address: Some("10.99.0.2:9786".into()),
                local: false,
                reachable: false,
                error: Some("cannot connect to 10.99.0.2:9786: connection timed out".into()),
                summary: None,
            },
        ],
    };
    let config = CheckConfig::default();
    let mut failures = Vec::new();
    for (golden, status, code) in [
        ("cluster-pair-healthy", &both, 0),
        ("cluster-pair-n2-unreachable", &one_gone, 2),
    ] {
        let verdict = cluster::evaluate(status, &config);
        assert_eq!(
            verdict.state.exit_code(),
            code,
            "{golden}: {}",
            verdict.line()
        );
        let origin = "Cluster view from the daemon on 127.0.0.1:9784".to_string();
        let screen = text::render(&cluster::document(status, verdict, origin), false)
            .replace(env!("CARGO_PKG_VERSION"), "VERSION");
        let path = golden_dir.join(format!("{golden}.txt"));
        if update {
            std::fs::write(&path, &screen).unwrap();
        } else {
            let expected = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 makes it)", path.display()));
            if expected != screen {
                failures.push(format!(
                    "{golden}: differs from {}:\n{screen}",
                    path.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let line = cluster::evaluate(&one_gone, &config).line();
    assert!(
        line.starts_with("OCFS2 CRITICAL - n2 unreachable (cannot connect to 10.99.0.2:9786"),
        "{line}"
    );
}
