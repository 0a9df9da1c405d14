//! The alerts and dashboards against a real Prometheus (Debian package
//! `prometheus`, `/usr/bin/prometheus`): two daemons serve fixture roots, one
//! healthy (`cluster-mounted-n1`) and one with problems (`alerts-degraded`:
//! a dead peer, an error read-only mount, a missing mount named by a kernel
//! device). Prometheus scrapes both every second on loopback and evaluates
//! `alerts/ocfs2.rules.yml` every second. Through its HTTP API the test
//! checks that every rule evaluates without error, that every alert
//! expression and every dashboard query parses and evaluates, that the
//! degraded node raises exactly the expected alerts (pending or firing) and
//! that the healthy node raises none. Bounded by `DEADLINE`; every process
//! is killed on drop and the temporary directories removed.

#[path = "support/promql.rs"]
mod promql;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(100);
const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Alerts the degraded fixture must raise, with the states accepted within
/// the test's time (alerts with a `for:` of minutes stay pending).
const EXPECTED_DEGRADED: &[(&str, &[&str])] = &[
    ("Ocfs2HeartbeatNodeNotLive", &["pending", "firing"]),
    ("Ocfs2MountMissing", &["pending", "firing"]),
    ("Ocfs2MountErrorReadOnly", &["firing"]),
    ("Ocfs2MountUnstableDeviceName", &["firing"]),
];

/// Kills the process when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fixtures() -> PathBuf {
    promql::repo().join("tests/fixtures")
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn api(address: &str, path: &str) -> Value {
    let (status, body) = support::http_get(address, path)
        .map(|(status, _, body)| (status, body))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let json: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"));
    assert_eq!(status, 200, "GET {path}: {body}");
    json
}

/// Runs an instant query; the error text when Prometheus rejects it.
fn query(address: &str, expr: &str) -> Result<Value, String> {
    let (status, _, body) = support::http_get(
        address,
        &format!("/api/v1/query?query={}", url_encode(expr)),
    )
    .map_err(|e| e.to_string())?;
    let json: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if status == 200 && json["status"] == "success" {
        Ok(json["data"]["result"].clone())
    } else {
        Err(format!("{status}: {}", json["error"]))
    }
}

/// Every wait shares one deadline counted from `start`.
fn wait_for(what: &str, start: Instant, done: impl FnMut() -> bool) {
    support::wait_until(what, start, DEADLINE, Duration::from_millis(250), done);
}

/// The healthy fixture copied with its o2net socket timers moved an hour
/// ahead of this machine's CLOCK_MONOTONIC: a live kernel refreshes them on
/// every message, a static file ages, and the idle time (now − timer,
/// clamped at 0) would otherwise grow without bound.
fn healthy_root(dir: &Path) -> PathBuf {
    let root = dir.join("healthy");
    support::copy_tree(&fixtures().join("cluster-mounted-n1/rootfs"), &root);
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    let ahead_us = now.tv_sec() * 1_000_000 + now.tv_nsec() / 1_000 + 3_600_000_000;
    let path = root.join("sys/kernel/debug/o2net/sock_containers");
    let text = std::fs::read_to_string(&path).unwrap();
    let rewritten: String = text
        .lines()
        .map(|line| match line.trim_start().strip_prefix("timer:") {
            Some(_) => format!("  timer:           {ahead_us} usecs\n"),
            None => format!("{line}\n"),
        })
        .collect();
    std::fs::write(&path, rewritten).unwrap();
    root
}

fn start_daemon(
    dir: &Path,
    name: &str,
    root: &Path,
    fixture_config: Option<&Path>,
) -> (Killed, String) {
    let state = dir.join(format!("{name}-state"));
    std::fs::create_dir_all(&state).unwrap();
    let extra = fixture_config
        .map(|p| std::fs::read_to_string(p).unwrap())
        .unwrap_or_default();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "state_dir = {state:?}\n[sampler]\ninterval = \"1s\"\n[kernel_log]\nenabled = false\n{extra}"
        ),
    )
    .unwrap();
    let (child, address) = support::listen::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .arg("--config")
            .arg(&config)
            .arg("--path.rootfs")
            .arg(root)
            .stdout(Stdio::null()),
    );
    (Killed(child), address)
}

fn start_prometheus(dir: &Path, targets: &[(&str, &str)]) -> (Killed, String) {
    // Another program's port, known before it starts: a unique loopback
    // address with a port from the OS (support::listen).
    let address = support::listen::loopback_address();
    let mut static_configs = String::new();
    for (scenario, target) in targets {
        static_configs.push_str(&format!(
            "      - targets: ['{target}']\n        labels: {{scenario: {scenario}}}\n"
        ));
    }
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules:?}\n\
             scrape_configs:\n  - job_name: ocfs2-watchdog\n    static_configs:\n{static_configs}",
            rules = promql::rules_file(),
        ),
    )
    .unwrap();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={address}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting prometheus");
    (Killed(child), address)
}

/// alertname → state, for the alerts whose `instance` is `instance`
/// (or that have no instance at all, like Ocfs2WatchdogAbsent).
fn alerts_of(alerts: &Value, instance: &str) -> BTreeMap<String, String> {
    alerts["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| match a["labels"]["instance"].as_str() {
            Some(labelled) => labelled == instance,
            None => true,
        })
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn expected_reached(alerts: &BTreeMap<String, String>) -> bool {
    EXPECTED_DEGRADED.iter().all(|(name, states)| {
        alerts
            .get(*name)
            .is_some_and(|state| states.contains(&state.as_str()))
    })
}

#[test]
fn alerts_and_dashboards_work_on_a_real_prometheus() {
    if !support::require(
        Path::new(PROMETHEUS).exists(),
        "/usr/bin/prometheus (apt-get install prometheus)",
    ) {
        return;
    }
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let healthy = healthy_root(dir.path());
    let (_healthy_daemon, healthy_address) = start_daemon(dir.path(), "healthy", &healthy, None);
    let degraded_fixture = fixtures().join("alerts-degraded");
    let (_degraded_daemon, degraded_address) = start_daemon(
        dir.path(),
        "degraded",
        &degraded_fixture.join("rootfs"),
        Some(&degraded_fixture.join("config.toml")),
    );
    let (_prometheus, prometheus) = start_prometheus(
        dir.path(),
        &[
            ("healthy", &healthy_address),
            ("degraded", &degraded_address),
        ],
    );

    wait_for("Prometheus to be ready", start, || {
        support::http_get(&prometheus, "/-/ready").is_ok_and(|(status, _, _)| status == 200)
    });
    wait_for("both daemons scraped", start, || {
        query(&prometheus, "sum(up{job=\"ocfs2-watchdog\"})")
            .is_ok_and(|r| r[0]["value"][1].as_str() == Some("2"))
    });

    // The expected alerts on the degraded node.
    let mut last = Value::Null;
    wait_for("the degraded node's alerts", start, || {
        last = api(&prometheus, "/api/v1/alerts");
        expected_reached(&alerts_of(&last, &degraded_address))
    });
    // Give rules a few more evaluations to raise anything unexpected.
    std::thread::sleep(Duration::from_secs(3));
    let alerts = api(&prometheus, "/api/v1/alerts");
    let degraded = alerts_of(&alerts, &degraded_address);
    let expected: BTreeSet<&str> = EXPECTED_DEGRADED.iter().map(|(n, _)| *n).collect();
    let raised: BTreeSet<&str> = degraded.keys().map(String::as_str).collect();
    assert_eq!(raised, expected, "degraded node alerts: {degraded:?}");
    let healthy_alerts = alerts_of(&alerts, &healthy_address);
    assert!(
        healthy_alerts.is_empty(),
        "the healthy node raised alerts: {healthy_alerts:?}"
    );

    // Every rule evaluated without error.
    let rules = api(&prometheus, "/api/v1/rules");
    let mut evaluated = 0;
    for group in rules["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            assert_eq!(
                rule["health"], "ok",
                "rule {} in {}: {}",
                rule["name"], group["name"], rule["lastError"]
            );
            evaluated += 1;
        }
    }
    let loaded = promql::load_rules();
    assert_eq!(evaluated, loaded.len(), "rules loaded by Prometheus");

    // Every alert expression and dashboard query parses and evaluates.
    let mut failures = Vec::new();
    for rule in &loaded {
        if let Err(e) = query(&prometheus, &rule.expr) {
            failures.push(format!(
                "rule {:?}: {e}",
                rule.alert.as_ref().or(rule.record.as_ref())
            ));
        }
    }
    let mut with_data = 0;
    let queries = promql::dashboard_queries();
    for (file, panel, expr) in &queries {
        match query(&prometheus, &promql::expand_grafana_variables(expr)) {
            Ok(result) => {
                with_data += usize::from(result.as_array().is_some_and(|r| !r.is_empty()))
            }
            Err(e) => failures.push(format!("{file} panel {panel:?}: {e}: {expr}")),
        }
    }
    assert!(
        failures.is_empty(),
        "queries rejected:\n{}",
        failures.join("\n")
    );
    // Most panels show something for these two nodes (not the remediation
    // ones that need a decision, nor iSCSI/multipath: the fixtures have none).
    assert!(
        with_data * 2 >= queries.len(),
        "only {with_data} of {} dashboard queries returned data",
        queries.len()
    );
    eprintln!(
        "prometheus e2e: {} rules, {} dashboard queries ({with_data} with data), {:?}",
        loaded.len(),
        queries.len(),
        start.elapsed()
    );
    assert!(start.elapsed() < DEADLINE);
}
