//! Every inhibition of alerts/alertmanager.example.yml, each with a near
//! miss that must stay active, posted straight to a real Alertmanager
//! (Debian `prometheus-alertmanager`) and read back from its API.

mod alertmanager_kit;
#[path = "support/promql.rs"]
mod promql;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use alertmanager_kit::{
    get_json, post_json, start_alertmanager, wait_for, webhook_receiver, ALERTMANAGER,
};
use serde_json::Value;

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
    let (_alertmanager, address) = start_alertmanager(dir.path(), &webhook);
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
