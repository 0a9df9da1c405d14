//! `/` and `/status` on a listener anyone may reach without credentials
//! leave out audit callers, kernel log text and iSCSI names; the same
//! snapshot served the default way (loopback, or credentials asked) shows
//! them. Real fixture snapshots (a replayed kernel log, iSCSI sessions)
//! and a real server on loopback; the redaction is switched on the way
//! `Security::from_config` switches it for a non-loopback open listener.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use ocfs2_watchdog::config::{Config, StateDir};
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::http::{router_with, AppState, Security};
use ocfs2_watchdog::rules::Report;
use ocfs2_watchdog::snapshot::Snapshot;
use support::http_get;
use tokio::sync::watch;

const CALLER: &str = "192.0.2.77:41234";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The fixture's snapshot, with an engine report that names an admin caller
/// (a pause, and an audit line) as a running daemon's would.
fn snapshot(name: &str, state: &Path) -> Snapshot {
    let path = fixture(name).join("config.toml");
    let mut config = if path.exists() {
        Config::load(&path).unwrap()
    } else {
        Config::default()
    };
    config.state_dir = StateDir(state.to_path_buf());
    let rootfs = fixture(name).join("rootfs");
    let mut snapshot =
        ocfs2_watchdog::sampler::take_one(HostPaths::new(rootfs, None, None), Arc::new(config));
    let audit = serde_json::json!({
        "time": "2026-12-06T02:00:00Z", "rule": "", "target": "", "action": "pause",
        "mode": "enforce", "phase": "control", "outcome": "paused", "evidence": "",
        "caller": CALLER,
    });
    snapshot.remediation = Some(Arc::new(Report {
        paused: true,
        pause_reason: Some(format!("paused through POST /pause by {CALLER}")),
        recent_audit: vec![audit.to_string()],
        ..Report::default()
    }));
    snapshot
}

/// Serves `snapshot` on loopback; `redact` as an open listener would.
fn serve(snapshot: Snapshot, redact: bool) -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (_publish, snapshots) = watch::channel(Arc::new(snapshot));
    let state = AppState {
        snapshots,
        health: Arc::default(),
        interval: Duration::from_secs(10),
        started: Instant::now(),
        check: Default::default(),
    };
    let security = Security {
        redact_details: redact,
        ..Security::default()
    };
    let app = router_with(state, &security, Router::new());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap().to_string();
    runtime.spawn(async move { axum::serve(listener, app).await });
    (address, runtime)
}

fn bodies(address: &str) -> (String, String) {
    let (status, _, json) = http_get(address, "/status").unwrap();
    assert_eq!(status, 200, "{json}");
    let (status, _, page) = http_get(address, "/").unwrap();
    assert_eq!(status, 200, "{page}");
    (json, page)
}

#[test]
fn an_open_listener_leaves_out_callers_kernel_text_and_iqns() {
    let state = tempfile::tempdir().unwrap();
    for (name, secrets) in [
        (
            "kernel-log-pause",
            vec![CALLER, "No longer connected to node n2"],
        ),
        (
            "multipath-one-path-failed",
            vec![CALLER, "iqn.2024-01.lab.ocfs2:shared"],
        ),
    ] {
        let (open, _open_runtime) = serve(snapshot(name, state.path()), true);
        let (local, _local_runtime) = serve(snapshot(name, state.path()), false);
        let (json, page) = bodies(&local);
        let (hidden_json, hidden_page) = bodies(&open);
        for secret in &secrets {
            // Shown the default way: the test would see a leak.
            assert!(json.contains(secret), "{name}: {secret} not in /status");
            assert!(
                !hidden_json.contains(secret),
                "{name}: {secret} in {hidden_json}"
            );
            assert!(
                !hidden_page.contains(secret),
                "{name}: {secret} in {hidden_page}"
            );
        }
        // The page shows the IQN (the session's target) and the kernel text
        // only the default way.
        assert!(page.contains(secrets[1]), "{name}: {} not on /", secrets[1]);
        // Kinds and counts stay: the same kernel events and sessions.
        let shown: serde_json::Value = serde_json::from_str(&json).unwrap();
        let hidden: serde_json::Value = serde_json::from_str(&hidden_json).unwrap();
        let kinds = |v: &serde_json::Value| {
            v["overview"]["events"]["recent"].as_array().map(|events| {
                events
                    .iter()
                    .map(|e| e["event"].clone())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(kinds(&shown), kinds(&hidden), "{name}");
        assert!(hidden_json.contains("(hidden)"), "{name}: {hidden_json}");
        assert_eq!(
            shown["overview"]["volumes"].as_array().map(Vec::len),
            hidden["overview"]["volumes"].as_array().map(Vec::len)
        );
    }
}
