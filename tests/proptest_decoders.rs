//! Property tests for every decoder of what peers, admins and the daemon's
//! own state files send it: arbitrary JSON, and JSON shaped like each record
//! with hostile numbers (1e300, -0.0, huge integers, NaN-like strings, times
//! far ahead), never panics a decoder; what is accepted satisfies the
//! invariants of `ocfs2_watchdog::input` (finite, in range, not ahead of the
//! clock by more than the skew, windows bounded); and the report and metrics
//! rendered after accepting it render.
//!
//! Case counts are small by default; `PROPTEST_CASES=N` raises them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use serde_json::Value;

use ocfs2_watchdog::actions::audit::AuditLog;
use ocfs2_watchdog::cluster::admin::{parse_for, MaintenanceStatus};
use ocfs2_watchdog::cluster::lease::consensus::{decide, NodeState, PeerAnswer};
use ocfs2_watchdog::cluster::maintenance::{Limits, Maintenance, MaintenanceRecord};
use ocfs2_watchdog::kernel_log::persist;
use ocfs2_watchdog::rules::state::{self, Clock};
use ocfs2_watchdog::rules::Report;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 48;
    }
    config
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A JSON number (or a thing in its place) as text: the hostile ones and
/// times around now.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "1e300",
            "-1e300",
            "1e309",
            "-0.0",
            "0",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            "123456789012345678901234567890",
            "9007199254740993",
            "1.5e16",
            "\"NaN\"",
            "\"inf\"",
            "\"-Infinity\"",
            "null",
            "true",
            "[]",
            "{}",
        ])
        .prop_map(str::to_string),
        any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        // Around now: behind, a little ahead, far ahead.
        (-1e7f64..1e9).prop_map(|d| format!("{}", now_unix() + d)),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 ./:=-]{0,40}",
        (0usize..3000).prop_map(|n| "x".repeat(n)),
        Just(String::new()),
    ]
}

fn json_text(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Arbitrary JSON values, nested.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        "[a-z_]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "active",
                    "reason",
                    "node",
                    "caller",
                    "changed_at",
                    "expires_at",
                    "node_num",
                    "holds_lease",
                    "intent_at",
                    "disruptive_findings",
                    "spent",
                    "targets",
                    "version",
                    "last_seq",
                    "boot_id",
                    "x",
                ])
                .prop_map(str::to_string),
                inner,
                0..8,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON shaped like a `MaintenanceRecord`, fields sometimes missing.
fn record_json() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("true"), Just("false"), Just("1"), Just("null")],
        text(),
        text(),
        number(),
        number(),
        any::<bool>(),
    )
        .prop_map(|(active, reason, node, changed, expires, drop_one)| {
            let mut fields = vec![
                format!("\"active\":{active}"),
                format!("\"reason\":{}", json_text(&reason)),
                format!("\"node\":{}", json_text(&node)),
                "\"caller\":\"10.0.0.2:1\"".to_string(),
                format!("\"changed_at\":{changed}"),
                format!("\"expires_at\":{expires}"),
            ];
            if drop_one {
                fields.remove(3);
            }
            format!("{{{}}}", fields.join(","))
        })
}

/// JSON shaped like a peer's `NodeState`.
fn node_state_json() -> impl Strategy<Value = String> {
    (
        number(),
        any::<bool>(),
        number(),
        prop::collection::vec(text(), 0..5),
        (0usize..6000),
    )
        .prop_map(|(node_num, holds, intent, findings, many)| {
            let mut findings: Vec<String> = findings.iter().map(|f| json_text(f)).collect();
            if many > 4000 {
                findings.extend((0..many).map(|i| format!("\"r/{i}\"")));
            }
            format!(
                "{{\"node\":\"n2\",\"node_num\":{node_num},\"holds_lease\":{holds},\
                 \"lease_route\":\"peers\",\"acting\":false,\"intent_at\":{intent},\
                 \"maintenance\":false,\"disruptive_findings\":[{}]}}",
                findings.join(",")
            )
        })
}

/// JSON shaped like the engine's `remediation-state.json`.
fn engine_state_json() -> impl Strategy<Value = String> {
    (number(), number(), number(), number(), number()).prop_map(
        |(spent, attempt, waiting, seen, failures)| {
            format!(
                "{{\"version\":1,\"spent\":[{{\"rule\":\"missing_mount\",\"at\":{spent}}}],\
                 \"targets\":[{{\"rule\":\"missing_mount\",\"target\":\"/srv/a\",\
                 \"attempts\":[{attempt}],\"failures\":{failures},\"precondition_streak\":0,\
                 \"waiting_until\":{waiting},\"waiting\":\"backoff\",\"last_seen\":{seen}}}]}}"
            )
        },
    )
}

/// JSON shaped like `kernel-log.json`.
fn kernel_log_json() -> impl Strategy<Value = String> {
    (number(), number()).prop_map(|(seq, fences)| {
        format!(
            "{{\"boot_id\":\"b\",\"last_seq\":{seq},\"fences_total\":{fences},\
             \"fence_previous_boot\":false}}"
        )
    })
}

fn maintenance(dir: &std::path::Path) -> Maintenance {
    Maintenance::open(dir, "n1", Arc::new(Mutex::new(AuditLog::new(dir, 10))))
}

/// The invariants every record this node holds satisfies.
fn check_record(record: &MaintenanceRecord, now: SystemTime) {
    let limits = Limits::default();
    let now = now.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(record.changed_at.is_finite() && record.changed_at >= 0.0);
    assert!(record.changed_at <= now + limits.max_skew.as_secs_f64() + 1.0);
    assert!(record.expires_at.is_finite() && record.expires_at >= 0.0);
    if record.active {
        let window = limits.max_duration.as_secs_f64();
        assert!(record.expires_at - record.changed_at <= window + 1.0);
        assert!(record.expires_at <= now + window + limits.max_skew.as_secs_f64() + 1.0);
    }
}

/// What a scrape and `/status` do with the record: render it.
fn render(maintenance: &Maintenance, now: SystemTime) {
    let _ = maintenance.holding(now);
    let status = MaintenanceStatus::of(maintenance, now);
    serde_json::to_string(&status).unwrap();
    let report = Report {
        maintenance: maintenance.record().filter(|r| r.in_force(now)),
        maintenance_unreadable: maintenance.unreadable(),
        ..Report::default()
    };
    let text =
        ocfs2_watchdog::metrics::encode(ocfs2_watchdog::metrics::normalize(report.families()));
    assert!(text.contains("ocfs2_watchdog_maintenance "), "{text}");
    serde_json::to_string(&report).unwrap();
    if let Some(record) = maintenance.record() {
        let _ = ocfs2_watchdog::status::render::time(record.expires_at);
    }
}

fn merge_and_render(text: &str) {
    let now = SystemTime::now();
    let Ok(Some(remote)) = serde_json::from_str::<Option<MaintenanceRecord>>(text) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let m = maintenance(dir.path());
    m.set_on("local", Some(Duration::from_secs(60)), "op", now)
        .unwrap();
    let _ = m.merge_at(remote, "10.0.0.2:9786", now);
    check_record(&m.record().unwrap(), now);
    render(&m, now);
}

fn load_and_render(text: &str) {
    let now = SystemTime::now();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("maintenance.json"), text).unwrap();
    let m = maintenance(dir.path());
    if let Some(record) = m.record() {
        check_record(&record, now);
    } else if !text.trim().is_empty() {
        assert!(m.holding(now).is_some(), "a file that is not used holds");
    }
    render(&m, now);
}

fn check_node_state(text: &str) {
    let Ok(state) = serde_json::from_str::<NodeState>(text) else {
        return;
    };
    if let Some(at) = state.intent_at {
        assert!(at.is_finite() && at >= 0.0 && at <= now_unix() + 86_401.0);
    }
    assert!(state.disruptive_findings.len() <= 4096);
    assert!(state.disruptive_findings.iter().all(|f| f.len() <= 1024));
    let answer = PeerAnswer {
        node: "n2".into(),
        node_num: state.node_num.unwrap_or(2),
        answer: Ok(state),
        live_on_disk: Some(true),
    };
    let _ = decide(1, 1, &[answer]);
}

fn check_engine_state(text: &str) {
    let clock = Clock::now();
    let Ok(ledger) = state::parse(text, &clock) else {
        return;
    };
    let horizon = clock.anchor() + ocfs2_watchdog::config::MAX_DURATION + Duration::from_secs(1);
    let soon = clock.anchor() + Duration::from_secs(301);
    for (at, _) in &ledger.spent {
        assert!(*at <= soon);
    }
    for history in ledger.histories.values() {
        assert!(history.attempts.iter().all(|at| *at <= soon));
        assert!(history.last_seen <= soon);
        if let Some((until, _)) = history.waiting {
            assert!(until <= horizon);
        }
    }
    // What the engine saves, it can read back.
    let dir = tempfile::tempdir().unwrap();
    state::save(dir.path(), &clock, &ledger).unwrap();
    state::load(dir.path(), &clock).unwrap();
}

fn check_kernel_log(text: &str) {
    if let Ok(state) = persist::parse_state(text) {
        assert!(state.last_seq.unwrap_or(0) <= persist::MAX_SEQ);
        assert!(state.fences_total <= persist::MAX_FENCES);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_json_never_panics_a_decoder(value in any_json()) {
        let text = value.to_string();
        merge_and_render(&text);
        load_and_render(&text);
        check_node_state(&text);
        check_engine_state(&text);
        check_kernel_log(&text);
    }

    #[test]
    fn a_peer_record_is_accepted_only_within_the_limits(text in record_json()) {
        merge_and_render(&text);
    }

    #[test]
    fn a_maintenance_file_holds_or_is_within_the_limits(text in record_json()) {
        load_and_render(&text);
    }

    #[test]
    fn a_peer_state_is_accepted_only_within_the_limits(text in node_state_json()) {
        check_node_state(&text);
    }

    #[test]
    fn the_engine_state_file_never_restores_a_time_out_of_range(text in engine_state_json()) {
        check_engine_state(&text);
    }

    #[test]
    fn the_kernel_log_state_is_within_range(text in kernel_log_json()) {
        check_kernel_log(&text);
    }

    #[test]
    fn an_admin_window_is_within_the_maximum(
        window in prop_oneof![
            "[0-9]{1,25}(ns|us|ms|s|m|h|d|w|M|y|days|years)",
            "[ -~]{0,30}",
            Just("500000000y".to_string()),
            Just("NaN".to_string()),
            Just("-1h".to_string()),
        ],
    ) {
        let limits = Limits::default();
        let Ok(duration) = parse_for(&window, limits.max_duration) else {
            return Ok(());
        };
        prop_assert!(!duration.is_zero() && duration <= limits.max_duration);
        let now = SystemTime::now();
        let dir = tempfile::tempdir().unwrap();
        let m = maintenance(dir.path());
        m.set_on("admin", Some(duration), "op", now).unwrap();
        check_record(&m.record().unwrap(), now);
        render(&m, now);
    }
}
