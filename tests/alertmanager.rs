//! alerts/alertmanager.example.yml against a real Alertmanager (Debian
//! `prometheus-alertmanager`, with `amtool`): the file passes
//! `amtool check-config`, routes as documented (`amtool config routes
//! test`), and end to end a real Prometheus with the project's rules scrapes
//! daemons serving fixture states and sends to Alertmanager, whose webhooks
//! (pointed at a receiver in this test) deliver exactly the expected
//! groups, every alert with a runbook_url, and no inhibited alert; the
//! inhibited ones are shown suppressed by Alertmanager's API.
//!
//! Only the timings are changed for the test: every `for:` becomes 1s,
//! group_wait 2s, group_interval 1s, evaluation and scrape every second.
//! Everything listens on loopback; processes are killed on drop.

#[path = "support/promql.rs"]
mod promql;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const PROMETHEUS: &str = "/usr/bin/prometheus";
const DEADLINE: Duration = Duration::from_secs(90);

fn example() -> PathBuf {
    promql::repo().join("alerts/alertmanager.example.yml")
}

fn amtool(args: &[&str]) -> String {
    let output = Command::new("amtool")
        .args(args)
        .output()
        .expect("amtool runs");
    assert!(
        output.status.success(),
        "amtool {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn example_config_passes_amtool_and_routes_as_documented() {
    if !support::require(
        support::have_command("amtool"),
        "amtool (apt-get install prometheus-alertmanager)",
    ) {
        return;
    }
    let config = example();
    let config = config.to_str().unwrap();
    assert!(amtool(&["check-config", config]).contains("SUCCESS"));
    for (labels, receiver) in [
        (
            &["severity=critical", "o2cb_cluster=prod"][..],
            "ocfs2-pager",
        ),
        (
            &["severity=critical", "o2cb_cluster=finance"],
            "ocfs2-pager-finance",
        ),
        (&["severity=critical"], "ocfs2-pager"),
        (&["severity=warning", "o2cb_cluster=prod"], "ocfs2-tickets"),
        (
            &["severity=warning", "o2cb_cluster=finance"],
            "ocfs2-tickets-finance",
        ),
        (
            &["severity=info", "alertname=Ocfs2JournalReplay"],
            "ocfs2-null",
        ),
        (&["alertname=Unlabelled"], "ocfs2-tickets"),
    ] {
        let mut args = vec!["config", "routes", "test", "--config.file", config];
        args.extend(labels);
        assert_eq!(amtool(&args), receiver, "{labels:?}");
    }
}

/// Kills the process when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Webhook notifications received: (path, payload).
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A minimal HTTP server taking Alertmanager's webhook POSTs.
fn webhook_receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let received: Received = Arc::default();
    let store = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(payload) = serde_json::from_slice(&body) {
                    store.lock().unwrap().push((path, payload));
                }
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (address, received)
}

/// The example with its receivers pointed at `webhook` and short timings.
fn test_alertmanager_config(dir: &Path, webhook: &str) -> PathBuf {
    let text = std::fs::read_to_string(example()).unwrap();
    let text = text
        .replace(
            "http://alert-gateway.example:9095",
            &format!("http://{webhook}"),
        )
        .lines()
        .map(|line| {
            let indent = &line[..line.len() - line.trim_start().len()];
            match line.trim_start().split_once(':') {
                Some(("group_wait", _)) => format!("{indent}group_wait: 2s"),
                Some(("group_interval", _)) => format!("{indent}group_interval: 1s"),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join("alertmanager.yml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The project's rules with every `for:` at 1s.
fn test_rules(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(promql::rules_file()).unwrap();
    let text: Vec<String> = text
        .lines()
        .map(|line| match line.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 1s", &line[..line.len() - line.trim_start().len()]),
            None => line.to_string(),
        })
        .collect();
    let path = dir.join("rules.yml");
    std::fs::write(&path, text.join("\n")).unwrap();
    path
}

fn start_daemon(dir: &Path, name: &str, fixture: &str) -> (Killed, String) {
    let address = format!("127.0.0.1:{}", support::free_port());
    let state = dir.join(format!("{name}-state"));
    std::fs::create_dir_all(&state).unwrap();
    let fixture = promql::repo().join("tests/fixtures").join(fixture);
    let extra = std::fs::read_to_string(fixture.join("config.toml")).unwrap_or_default();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!("state_dir = {state:?}\n[sampler]\ninterval = \"1s\"\n[kernel_log]\nenabled = false\n{extra}"),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .arg("--config")
        .arg(&config)
        .arg("--path.rootfs")
        .arg(fixture.join("rootfs"))
        .args(["--web.listen-address", &address, "--log.level", "warn"])
        .stdout(Stdio::null())
        .spawn()
        .expect("starting the daemon");
    (Killed(child), address)
}

fn get_json(address: &str, path: &str) -> Option<Value> {
    let (status, _, body) = support::http_get(address, path).ok()?;
    (status == 200)
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

fn wait_for(what: &str, start: Instant, mut done: impl FnMut() -> bool) {
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The end-to-end scene: two nodes of o2cb cluster `labclu` near their
/// heartbeat fence at once (a SAN storm), one node with mount problems and
/// a dead peer n2, and the watchdog target of n2 down.
#[test]
fn prometheus_pages_through_a_real_alertmanager_with_inhibitions() {
    let have = Path::new(ALERTMANAGER).exists() && Path::new(PROMETHEUS).exists();
    if !support::require(
        have,
        "prometheus and prometheus-alertmanager (apt-get install)",
    ) {
        return;
    }
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (webhook, received) = webhook_receiver();
    let am_address = format!("127.0.0.1:{}", support::free_port());
    let _alertmanager = Killed(
        Command::new(ALERTMANAGER)
            .arg(format!(
                "--config.file={}",
                test_alertmanager_config(dir.path(), &webhook).display()
            ))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("am").display()
            ))
            .arg(format!("--web.listen-address={am_address}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting alertmanager"),
    );
    let (_a, storm_a) = start_daemon(dir.path(), "storm-a", "heartbeat-near-timeout");
    let (_b, storm_b) = start_daemon(dir.path(), "storm-b", "heartbeat-near-timeout");
    let (_c, degraded) = start_daemon(dir.path(), "degraded", "alerts-degraded");
    let down = format!("127.0.0.1:{}", support::free_port());
    let prom_address = format!("127.0.0.1:{}", support::free_port());
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules:?}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am_address}']\n\
             scrape_configs:\n  - job_name: ocfs2-watchdog\n    static_configs:\n\
             \x20     - targets: ['{storm_a}', '{storm_b}', '{degraded}']\n\
             \x20     - targets: ['{down}']\n        labels: {{node: n2}}\n",
            rules = test_rules(dir.path()),
        ),
    )
    .unwrap();
    let _prometheus = Killed(
        Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prom_address}"))
            .arg("--rules.alert.resend-delay=1s")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus"),
    );

    // Alertmanager's view: which alerts it holds, and which it suppresses.
    let am_alerts = || get_json(&am_address, "/api/v2/alerts").unwrap_or(Value::Null);
    let state_of = |alerts: &Value| -> BTreeMap<(String, String), String> {
        alerts
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let labels = &a["labels"];
                let subject = labels["instance"]
                    .as_str()
                    .or(labels["o2cb_cluster"].as_str())
                    .unwrap_or("")
                    .to_string();
                (
                    (
                        labels["alertname"].as_str().unwrap_or("").to_string(),
                        subject,
                    ),
                    a["status"]["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let expected_suppressed: BTreeSet<(String, String)> = [
        ("Ocfs2HeartbeatSlow", storm_a.as_str()),
        ("Ocfs2HeartbeatSlow", storm_b.as_str()),
        // Alerts about peer n2, whose watchdog is down: the degraded node's
        // "n2 not live", the storm nodes' "n2 silent on the interconnect"
        // (their fixture's o2net timers are old).
        ("Ocfs2HeartbeatNodeNotLive", degraded.as_str()),
        ("Ocfs2InterconnectPeerSilent", storm_a.as_str()),
        ("Ocfs2InterconnectPeerSilent", storm_b.as_str()),
    ]
    .into_iter()
    .map(|(a, s)| (a.to_string(), s.to_string()))
    .collect();
    let mut last = BTreeMap::new();
    wait_for(
        "Alertmanager to hold and suppress the expected alerts",
        start,
        || {
            last = state_of(&am_alerts());
            last.contains_key(&("Ocfs2SanStorm".to_string(), "labclu".to_string()))
                && last.contains_key(&("Ocfs2WatchdogDown".to_string(), down.clone()))
                && expected_suppressed
                    .iter()
                    .all(|key| last.get(key).map(String::as_str) == Some("suppressed"))
        },
    );
    // Let a few more evaluations and group intervals pass.
    std::thread::sleep(Duration::from_secs(4));
    let alerts = am_alerts();
    let states = state_of(&alerts);
    let suppressed: BTreeSet<(String, String)> = states
        .iter()
        .filter(|(_, s)| s.as_str() == "suppressed")
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(
        suppressed, expected_suppressed,
        "suppressed in Alertmanager: {states:#?}"
    );
    for alert in alerts.as_array().unwrap() {
        if alert["status"]["state"] == "suppressed" {
            assert!(
                !alert["status"]["inhibitedBy"]
                    .as_array()
                    .unwrap()
                    .is_empty(),
                "suppressed but not by an inhibition: {alert}"
            );
        }
    }
    let active: BTreeSet<(String, String)> = states
        .iter()
        .filter(|(_, s)| s.as_str() == "active")
        .map(|(k, _)| k.clone())
        .collect();

    // What the receivers got: the latest notification of each group.
    let notifications = received.lock().unwrap().clone();
    let mut groups: BTreeMap<(String, String), BTreeSet<(String, String)>> = BTreeMap::new();
    let mut delivered = BTreeSet::new();
    for (path, payload) in &notifications {
        let mut firing = BTreeSet::new();
        for alert in payload["alerts"].as_array().unwrap() {
            let labels = &alert["labels"];
            assert!(
                alert["annotations"]["runbook_url"]
                    .as_str()
                    .is_some_and(|u| u.contains("docs/runbooks.md#")),
                "no runbook_url: {alert}"
            );
            let key = (
                labels["alertname"].as_str().unwrap().to_string(),
                labels["instance"]
                    .as_str()
                    .or(labels["o2cb_cluster"].as_str())
                    .unwrap_or("")
                    .to_string(),
            );
            assert!(
                !expected_suppressed.contains(&key),
                "inhibited alert delivered: {key:?}"
            );
            if alert["status"] == "firing" {
                firing.insert(key.clone());
                delivered.insert(key);
            }
        }
        groups.insert((path.clone(), payload["groupLabels"].to_string()), firing);
    }
    eprintln!(
        "alertmanager e2e: {:?}, {} notifications",
        start.elapsed(),
        notifications.len()
    );
    // Every active alert reached a receiver, and nothing else did.
    assert_eq!(delivered, active, "delivered vs active: {groups:#?}");
    for (key, alerts) in &groups {
        eprintln!("  group {key:?}: {alerts:?}");
    }
    // The right groups, as their latest notification shows them: the SAN
    // storm pages once for o2cb cluster labclu with the near-fence alerts and
    // the degraded node's critical mount alert of the same cluster; critical
    // alerts outside any o2cb cluster page together; warnings become one
    // ticket per alert name.
    let names = |alerts: &BTreeSet<(String, String)>| -> Vec<String> {
        let mut names: Vec<String> = alerts.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        names
    };
    let actual: BTreeMap<(String, String), Vec<String>> = groups
        .iter()
        .map(|(key, alerts)| (key.clone(), names(alerts)))
        .collect();
    let group = |path: &str, labels: &str, alerts: &[&str]| {
        (
            (path.to_string(), labels.to_string()),
            alerts.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        )
    };
    let expected: BTreeMap<(String, String), Vec<String>> = [
        group(
            "/pager",
            r#"{"o2cb_cluster":"labclu"}"#,
            &[
                "Ocfs2HeartbeatNearFence",
                "Ocfs2HeartbeatNearFence",
                "Ocfs2MountErrorReadOnly",
                "Ocfs2SanStorm",
            ],
        ),
        group("/pager", "{}", &["Ocfs2MountMissing", "Ocfs2WatchdogDown"]),
        group(
            "/tickets",
            r#"{"alertname":"Ocfs2MountUnstableDeviceName"}"#,
            &["Ocfs2MountUnstableDeviceName"],
        ),
        group(
            "/tickets",
            r#"{"alertname":"Ocfs2RemediationStormBrake"}"#,
            &["Ocfs2RemediationStormBrake", "Ocfs2RemediationStormBrake"],
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(actual, expected, "notification groups");
    assert!(start.elapsed() < DEADLINE);
}

fn post_json(address: &str, path: &str, body: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// (case id, labels, expected state in Alertmanager).
type InhibitionCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// Every inhibition of the example, each with a near miss that must stay
/// active, posted straight to a real Alertmanager.
#[test]
fn every_inhibition_suppresses_its_targets_and_nothing_else() {
    if !support::require(
        Path::new(ALERTMANAGER).exists(),
        "prometheus-alertmanager (apt-get install)",
    ) {
        return;
    }
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (webhook, _received) = webhook_receiver();
    let address = format!("127.0.0.1:{}", support::free_port());
    let _alertmanager = Killed(
        Command::new(ALERTMANAGER)
            .arg(format!(
                "--config.file={}",
                test_alertmanager_config(dir.path(), &webhook).display()
            ))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("am").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting alertmanager"),
    );
    wait_for("Alertmanager to be ready", start, || {
        support::http_get(&address, "/-/ready").is_ok_and(|(status, _, _)| status == 200)
    });
    // (id, labels, expected state)
    let cases: &[InhibitionCase] = &[
        (
            "storm",
            &[
                ("alertname", "Ocfs2SanStorm"),
                ("severity", "critical"),
                ("o2cb_cluster", "prod"),
            ],
            "active",
        ),
        (
            "storm-slow",
            &[
                ("alertname", "Ocfs2HeartbeatSlow"),
                ("severity", "warning"),
                ("o2cb_cluster", "prod"),
                ("instance", "n1"),
                ("hb_region", "A"),
            ],
            "suppressed",
        ),
        (
            "storm-session",
            &[
                ("alertname", "Ocfs2IscsiSessionDown"),
                ("severity", "warning"),
                ("o2cb_cluster", "prod"),
                ("instance", "n3"),
            ],
            "suppressed",
        ),
        (
            "storm-other-cluster",
            &[
                ("alertname", "Ocfs2HeartbeatSlow"),
                ("severity", "warning"),
                ("o2cb_cluster", "test"),
                ("instance", "t1"),
                ("hb_region", "A"),
            ],
            "active",
        ),
        (
            "nopath",
            &[
                ("alertname", "Ocfs2MultipathNoActivePath"),
                ("severity", "critical"),
                ("instance", "n2"),
                ("map", "mpatha"),
            ],
            "active",
        ),
        (
            "nopath-failed",
            &[
                ("alertname", "Ocfs2MultipathPathFailed"),
                ("severity", "warning"),
                ("instance", "n2"),
                ("map", "mpatha"),
            ],
            "suppressed",
        ),
        (
            "nopath-disk",
            &[
                ("alertname", "Ocfs2ScsiDeviceNotRunning"),
                ("severity", "warning"),
                ("instance", "n2"),
                ("device", "sdb"),
            ],
            "suppressed",
        ),
        (
            "nopath-other-node",
            &[
                ("alertname", "Ocfs2ScsiDeviceNotRunning"),
                ("severity", "warning"),
                ("instance", "n4"),
                ("device", "sdb"),
            ],
            "active",
        ),
        (
            "near",
            &[
                ("alertname", "Ocfs2HeartbeatNearFence"),
                ("severity", "critical"),
                ("instance", "n5"),
                ("hb_region", "A"),
            ],
            "active",
        ),
        (
            "near-slow",
            &[
                ("alertname", "Ocfs2HeartbeatSlow"),
                ("severity", "warning"),
                ("instance", "n5"),
                ("hb_region", "A"),
            ],
            "suppressed",
        ),
        (
            "near-other-region",
            &[
                ("alertname", "Ocfs2HeartbeatSlow"),
                ("severity", "warning"),
                ("instance", "n5"),
                ("hb_region", "B"),
            ],
            "active",
        ),
        (
            "stuck",
            &[
                ("alertname", "Ocfs2MountStuck"),
                ("severity", "critical"),
                ("instance", "n6"),
                ("mountpoint", "/srv/a"),
            ],
            "active",
        ),
        (
            "stuck-ro",
            &[
                ("alertname", "Ocfs2MountReadOnly"),
                ("severity", "warning"),
                ("instance", "n6"),
                ("mountpoint", "/srv/a"),
            ],
            "suppressed",
        ),
        (
            "stuck-other-mount",
            &[
                ("alertname", "Ocfs2MountReadOnly"),
                ("severity", "warning"),
                ("instance", "n6"),
                ("mountpoint", "/srv/b"),
            ],
            "active",
        ),
        (
            "down",
            &[
                ("alertname", "Ocfs2WatchdogDown"),
                ("severity", "critical"),
                ("instance", "n7:9784"),
                ("peer_node", "n7"),
            ],
            "active",
        ),
        (
            "down-peer",
            &[
                ("alertname", "Ocfs2InterconnectPeerDown"),
                ("severity", "critical"),
                ("instance", "n8:9784"),
                ("peer_node", "n7"),
            ],
            "suppressed",
        ),
        (
            "down-other-peer",
            &[
                ("alertname", "Ocfs2InterconnectPeerDown"),
                ("severity", "critical"),
                ("instance", "n8:9784"),
                ("peer_node", "n9"),
            ],
            "active",
        ),
    ];
    let alerts: Vec<Value> = cases
        .iter()
        .map(|(id, labels, _)| {
            let mut map: serde_json::Map<String, Value> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect();
            map.insert("case".into(), Value::from(*id));
            serde_json::json!({
                "labels": map,
                "annotations": {"runbook_url": "https://example.invalid/runbooks.md#x"},
            })
        })
        .collect();
    assert_eq!(
        post_json(&address, "/api/v2/alerts", &Value::from(alerts).to_string()),
        200
    );
    let expected: BTreeMap<String, String> = cases
        .iter()
        .map(|(id, _, state)| (id.to_string(), state.to_string()))
        .collect();
    let mut actual = BTreeMap::new();
    wait_for("the inhibitions to settle", start, || {
        actual = get_json(&address, "/api/v2/alerts")
            .and_then(|a| a.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|a| {
                (
                    a["labels"]["case"].as_str().unwrap_or("").to_string(),
                    a["status"]["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        actual == expected
    });
    assert_eq!(actual, expected);
}
