//! The HTTP surface against a real server on loopback: status codes, content
//! types, `/readyz` before and after the first snapshot, `/healthz` when the
//! sampler or the rule engine is wedged, and never rate limited.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ocfs2_watchdog::http::{router_with, AppState, Security};
use ocfs2_watchdog::sampler::Health;
use ocfs2_watchdog::snapshot::Snapshot;
use support::{http_get, http_get_accepting, PROMETHEUS_ACCEPT};
use tokio::sync::watch;

struct Server {
    address: String,
    publish: watch::Sender<Arc<Snapshot>>,
    health: Arc<Health>,
    _runtime: tokio::runtime::Runtime,
}

fn start(interval: Duration) -> Server {
    start_with(interval, &Security::default())
}

fn start_with(interval: Duration, security: &Security) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (publish, snapshots) = watch::channel(Arc::new(Snapshot::empty()));
    let health = Arc::new(Health::default());
    let state = AppState {
        snapshots,
        health: Arc::clone(&health),
        interval,
        started: Instant::now(),
        check: Default::default(),
    };
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let app = router_with(state, security, axum::Router::new());
    runtime.spawn(async move { axum::serve(listener, app).await });
    Server {
        address,
        publish,
        health,
        _runtime: runtime,
    }
}

fn published(sequence: u64) -> Arc<Snapshot> {
    let mut snapshot = Snapshot::empty();
    snapshot.sequence = sequence;
    snapshot.taken_at = std::time::SystemTime::now();
    Arc::new(snapshot)
}

#[test]
fn readyz_turns_ready_with_the_first_snapshot() {
    let server = start(Duration::from_secs(2));
    assert_eq!(http_get(&server.address, "/readyz").unwrap().0, 503);
    server.publish.send_replace(published(1));
    assert_eq!(http_get(&server.address, "/readyz").unwrap().0, 200);
}

#[test]
fn healthz_fails_when_no_tick_completes_within_three_intervals() {
    let server = start(Duration::from_millis(20));
    server.health.record_tick();
    assert_eq!(http_get(&server.address, "/healthz").unwrap().0, 200);
    std::thread::sleep(Duration::from_millis(100));
    let (status, _, body) = http_get(&server.address, "/healthz").unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("sampler wedged"), "{body}");
    server.health.record_tick();
    assert_eq!(http_get(&server.address, "/healthz").unwrap().0, 200);
}

#[test]
fn healthz_fails_when_the_rule_engine_is_wedged() {
    let server = start(Duration::from_secs(60));
    let engine = Arc::new(ocfs2_watchdog::liveness::EngineHealth::new(
        Duration::from_millis(50),
    ));
    server.health.watch_engine(Arc::clone(&engine));
    server.health.record_tick();
    engine.beat();
    assert_eq!(http_get(&server.address, "/healthz").unwrap().0, 200);
    std::thread::sleep(Duration::from_millis(100));
    let (status, _, body) = http_get(&server.address, "/healthz").unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("rule engine wedged"), "{body}");
    // Waiting for an action is not a wedge, up to the action's deadline.
    engine.busy(Some(Duration::from_secs(60)));
    assert_eq!(http_get(&server.address, "/healthz").unwrap().0, 200);
    engine.busy(None);
    assert_eq!(http_get(&server.address, "/healthz").unwrap().0, 503);
    engine.beat();
    assert_eq!(http_get(&server.address, "/healthz").unwrap().0, 200);
}

#[test]
fn the_probes_are_never_rate_limited() {
    let security = Security {
        rate_limit: Some(Arc::new(ocfs2_watchdog::http::telemetry::RateLimiter::new(
            Duration::from_secs(3600),
            2,
        ))),
        ..Security::default()
    };
    let server = start_with(Duration::from_secs(60), &security);
    server.publish.send_replace(published(1));
    server.health.record_tick();
    let codes: Vec<u16> = (0..4)
        .map(|_| http_get(&server.address, "/metrics").unwrap().0)
        .collect();
    assert_eq!(codes, [200, 200, 429, 429], "the limiter refuses scrapes");
    for _ in 0..20 {
        assert_eq!(http_get(&server.address, "/healthz").unwrap().0, 200);
        assert_eq!(http_get(&server.address, "/readyz").unwrap().0, 200);
    }
    assert_eq!(http_get(&server.address, "/status").unwrap().0, 429);
}

#[test]
fn metrics_are_openmetrics_and_status_is_json() {
    let server = start(Duration::from_secs(2));
    server.publish.send_replace(published(3));
    let (status, content_type, body) =
        http_get_accepting(&server.address, "/metrics", PROMETHEUS_ACCEPT).unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(
        body.contains("ocfs2_watchdog_build_info{version="),
        "{body}"
    );
    assert!(body.contains("ocfs2_watchdog_enforcing 0"), "{body}");
    assert!(body.ends_with("# EOF\n"));

    // Without OpenMetrics in Accept (curl, promtool): the classic text format.
    let (status, content_type, body) = http_get(&server.address, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("ocfs2_watchdog_enforcing 0"), "{body}");
    assert!(!body.contains("# EOF"));

    let (status, content_type, body) = http_get(&server.address, "/status").unwrap();
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["ready"], true);
    assert_eq!(status["sequence"], 3);

    let (status, content_type, body) = http_get(&server.address, "/").unwrap();
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"));
    for link in ["metrics", "status", "healthz", "readyz"] {
        assert!(body.contains(&format!("href=\"{link}\"")), "{body}");
    }
    assert_eq!(http_get(&server.address, "/nope").unwrap().0, 404);
}
