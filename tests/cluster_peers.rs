//! Two real daemons on 127.0.0.2 and 127.0.0.3 with a fixture cluster.conf
//! (issue #12): maintenance set on one node holds the other within a poll,
//! a daemon restarted without its record learns it from the peer at start,
//! `off` on the other node ends it on both, a wrong cluster token leaves
//! the peers unreachable (and counted) until the token is rotated with a
//! SIGHUP, the state endpoint answers signed requests only, signing its
//! answer, and a peer listener whose address is taken at start binds once
//! it is free.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::cluster::{cluster_conf, peer_node, wait, PeerNode};

/// The peer port both nodes share: one the OS gave, free on both addresses.
fn peer_port() -> u16 {
    support::listen::os_port_on(&["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()])
}

/// A cluster token the daemon accepts (32 bytes or more).
const SAME: &str = "same-0123456789abcdef0123456789abcdef";

fn node(base: &Path, name: &str, peer_port: u16, cluster_token: &str) -> PeerNode {
    let conf = cluster_conf(&[("n1", "127.0.0.2"), ("n2", "127.0.0.3")]);
    peer_node(base, name, &conf, peer_port, cluster_token)
}

#[test]
fn maintenance_set_on_one_node_holds_the_other_and_off_anywhere_ends_it() {
    let base = tempfile::tempdir().unwrap();
    let port = peer_port();
    let mut n1 = node(
        base.path(),
        "n1",
        port,
        "cluster-s3cret-0123456789abcdef0123456789abcdef",
    );
    let mut n2 = node(
        base.path(),
        "n2",
        port,
        "cluster-s3cret-0123456789abcdef0123456789abcdef",
    );
    n1.start();
    n2.start();
    wait("peers up", || {
        n1.metrics().contains(&format!(
            "ocfs2_watchdog_cluster_peer_up{{peer=\"n2\",address=\"127.0.0.3:{port}\"}} 1"
        )) && n2.metrics().contains(&format!(
            "ocfs2_watchdog_cluster_peer_up{{peer=\"n1\",address=\"127.0.0.2:{port}\"}} 1"
        ))
    });

    let set = Instant::now();
    n1.cli(&["on", "--reason", "resize vol1", "--for", "1h"]);
    wait("n2 in maintenance", || {
        n2.has("ocfs2_watchdog_maintenance 1")
    });
    let propagation = set.elapsed();
    wait("n1 in maintenance", || {
        n1.has("ocfs2_watchdog_maintenance 1")
    });
    assert!(propagation < Duration::from_secs(3), "{propagation:?}");
    let m = n2.metrics();
    assert!(
        m.contains("node=\"n1\""),
        "set on n1: {}",
        m.lines()
            .filter(|l| l.contains("maintenance"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // n2 restarts without its record: it asks n1 at start.
    n2.stop();
    std::fs::remove_file(n2.dir.join("state/maintenance.json")).unwrap();
    n2.start();
    assert!(
        n2.has("ocfs2_watchdog_maintenance 1")
            || std::fs::read_to_string(n2.dir.join("state/maintenance.json"))
                .is_ok_and(|r| r.contains("resize vol1")),
        "learnt from the peer before the first scrape"
    );

    // Off on n2 ends it on n1 too.
    n2.cli(&["off"]);
    wait("n1 out of maintenance", || {
        n1.has("ocfs2_watchdog_maintenance 0")
    });
    let audit = std::fs::read_to_string(n1.dir.join("state/audit.jsonl")).unwrap();
    let off = audit
        .lines()
        .find(|l| l.contains("maintenance_off"))
        .unwrap_or_else(|| panic!("audited on n1: {audit}"));
    assert!(off.contains("peer n2 127.0.0.3"), "{off}");
}

#[test]
fn a_wrong_cluster_token_leaves_the_peer_down_until_a_sighup_reads_the_right_one() {
    let base = tempfile::tempdir().unwrap();
    let port = peer_port();
    let mut n1 = node(
        base.path(),
        "n1",
        port,
        "one-0123456789abcdef0123456789abcdef",
    );
    let mut n2 = node(
        base.path(),
        "n2",
        port,
        "two-0123456789abcdef0123456789abcdef",
    );
    n1.start();
    n2.start();
    wait("peer down", || {
        n1.metrics().contains(&format!(
            "ocfs2_watchdog_cluster_peer_up{{peer=\"n2\",address=\"127.0.0.3:{port}\"}} 0"
        ))
    });
    n1.cli(&["on", "--reason", "x"]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(n2.has("ocfs2_watchdog_maintenance 0"));
    // Each side refuses the other: n2 the requests, n1 the unsigned refusals.
    wait("rejections counted", || {
        n2.value("ocfs2_watchdog_peer_rejected_total{direction=\"request\",reason=\"bad_mac\"}")
            .is_some_and(|n| n > 0.0)
            && n1
                .value(
                    "ocfs2_watchdog_peer_rejected_total{direction=\"response\",reason=\"bad_mac\"}",
                )
                .is_some_and(|n| n > 0.0)
    });

    // The token is rotated on n2 and re-read on SIGHUP, without a restart.
    support::cluster::write_token(
        &n2.dir.join("cluster-token"),
        "one-0123456789abcdef0123456789abcdef",
    );
    n2.signal(libc::SIGHUP);
    wait("n2 in maintenance after the rotation", || {
        n2.has("ocfs2_watchdog_maintenance 1")
    });
    wait("n2 up on n1 after the rotation", || {
        n1.metrics().contains(&format!(
            "ocfs2_watchdog_cluster_peer_up{{peer=\"n2\",address=\"127.0.0.3:{port}\"}} 1"
        ))
    });
}

#[test]
fn the_state_endpoint_answers_signed_requests_only_and_signs_its_answer() {
    use ocfs2_watchdog::cluster::client::exchange;
    use ocfs2_watchdog::cluster::lease::consensus::NodeState;
    use ocfs2_watchdog::cluster::peer_auth::{PeerKey, SignedAnswer};

    let base = tempfile::tempdir().unwrap();
    let port = peer_port();
    let mut n2 = node(base.path(), "n2", port, SAME);
    n2.start();
    let address = format!("127.0.0.3:{port}");
    let path = "/cluster/v1/state";
    let ask = |token: Option<&str>, node: &str| {
        let auth = token.map(|t| {
            PeerKey::new(t.as_bytes())
                .sign_request("GET", path, b"", node)
                .unwrap()
        });
        let headers = auth
            .as_ref()
            .map(|a| a.headers().to_vec())
            .unwrap_or_default();
        let answer = exchange(
            &address,
            Some("127.0.0.2".parse().unwrap()),
            "GET",
            path,
            &headers,
            Duration::from_secs(2),
            65536,
        );
        (auth, answer)
    };
    wait("peer protocol listening", || {
        ask(Some(SAME), "n1").1.is_ok()
    });
    let (auth, answer) = ask(Some(SAME), "n1");
    let (auth, answer) = (auth.unwrap(), answer.unwrap());
    assert_eq!(answer.status, 200, "{answer:?}");
    PeerKey::new(SAME.as_bytes())
        .verify_response("n2", &auth.nonce, &SignedAnswer::of(&answer))
        .expect("signed by n2 for this request");
    let state: NodeState = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(state.node, "n2");
    assert!(!state.holds_lease && !state.acting && state.intent_at.is_none());
    assert!(state.disruptive_findings.is_empty());
    assert_eq!(ask(None, "n1").1.unwrap().status, 401);
    assert_eq!(ask(Some("other"), "n1").1.unwrap().status, 401);
    // A node of no cluster here, and n2 itself, are not peers.
    assert_eq!(ask(Some(SAME), "n9").1.unwrap().status, 401);
    assert_eq!(ask(Some(SAME), "n2").1.unwrap().status, 401);
    // The engine's report publishes the counters on its next tick.
    wait("two unknown senders counted", || {
        n2.value(
            "ocfs2_watchdog_peer_rejected_total{direction=\"request\",reason=\"unknown_node\"}",
        ) == Some(2.0)
    });
    assert!(n2.has("ocfs2_watchdog_cluster_node_known{node=\"n2\"} 1"));
    // Not enforcing and nothing firing: no attempt yet, nothing held.
    wait("the engine's first report", || {
        n2.has("ocfs2_watchdog_lease_held{route=\"peers\"} 0")
    });
    assert!(
        n2.has("ocfs2_watchdog_lease_acquisitions_total{route=\"peers\",result=\"acquired\"} 0")
    );
}

#[test]
fn the_peer_listener_binds_once_its_address_is_free() {
    let base = tempfile::tempdir().unwrap();
    let port = peer_port();
    // Something holds n1's peer address when its daemon starts.
    let squatter = std::net::TcpListener::bind(("127.0.0.2", port)).unwrap();
    let mut n1 = node(base.path(), "n1", port, SAME);
    let mut n2 = node(base.path(), "n2", port, SAME);
    n1.start();
    n2.start();
    std::thread::sleep(Duration::from_secs(2));
    assert!(n2.metrics().contains(&format!(
        "ocfs2_watchdog_cluster_peer_up{{peer=\"n1\",address=\"127.0.0.2:{port}\"}} 0"
    )));
    drop(squatter);
    // The retry backs off 1 s doubling: the next one is at most 4 s away.
    wait("n1 listening after the retry", || {
        n2.metrics().contains(&format!(
            "ocfs2_watchdog_cluster_peer_up{{peer=\"n1\",address=\"127.0.0.2:{port}\"}} 1"
        ))
    });
}
