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

mod alertmanager_kit;
#[path = "support/promql.rs"]
mod promql;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use alertmanager_kit::{
    example, get_json, start_alertmanager, start_daemon, test_rules, wait_for, webhook_receiver,
    Killed, ALERTMANAGER, DEADLINE, PROMETHEUS,
};
use serde_json::Value;

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

/// (alertname, instance or o2cb_cluster).
type Key = (String, String);
type Summary = (
    BTreeMap<(String, String), BTreeSet<Key>>,
    BTreeSet<Key>,
    usize,
);

/// Groups (receiver path, group labels) -> firing alerts of their latest
/// notification; the alerts firing in those latest notifications; the
/// notification count.
/// Fails on an alert without runbook_url or an inhibited alert delivered.
fn summarize(notifications: &[(String, Value)], inhibited: &BTreeSet<Key>) -> Summary {
    let mut groups: BTreeMap<(String, String), BTreeSet<(String, String)>> = BTreeMap::new();
    for (path, payload) in notifications {
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
                !inhibited.contains(&key),
                "inhibited alert delivered: {key:?}"
            );
            if alert["status"] == "firing" {
                firing.insert(key.clone());
            }
        }
        groups.insert((path.clone(), payload["groupLabels"].to_string()), firing);
    }
    let delivered = groups.values().flatten().cloned().collect();
    (groups, delivered, notifications.len())
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
    let (_alertmanager, am_address) = start_alertmanager(dir.path(), &webhook);
    let (_a, storm_a) = start_daemon(dir.path(), "storm-a", "heartbeat-near-timeout");
    let (_b, storm_b) = start_daemon(dir.path(), "storm-b", "heartbeat-near-timeout");
    let (_c, degraded) = start_daemon(dir.path(), "degraded", "alerts-degraded");
    // Nothing listens on `down`; Prometheus's port is known before it
    // starts: unique loopback addresses with ports from the OS.
    let down = support::listen::loopback_address();
    let prom_address = support::listen::loopback_address();
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
    // Notifications arrive after group_wait/group_interval: wait until the
    // latest notification of each group covers what Alertmanager holds active.
    let mut alerts = Value::Null;
    let mut states = BTreeMap::new();
    let mut active = BTreeSet::new();
    let mut summary = (BTreeMap::new(), BTreeSet::new(), 0);
    wait_for("every active alert to be delivered", start, || {
        alerts = am_alerts();
        states = state_of(&alerts);
        active = states
            .iter()
            .filter(|(_, s)| s.as_str() == "active")
            .map(|(k, _)| k.clone())
            .collect();
        summary = summarize(&received.lock().unwrap(), &expected_suppressed);
        let done = summary.1 == active;
        if !done && start.elapsed().as_secs() % 10 == 0 {
            eprintln!("  not yet: delivered {:?} vs active {active:?}", summary.1);
        }
        done
    });
    let (groups, delivered, notifications) = summary;
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

    eprintln!(
        "alertmanager e2e: {:?}, {notifications} notifications",
        start.elapsed()
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
