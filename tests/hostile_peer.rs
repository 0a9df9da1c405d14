//! A real daemon (n1) among peers that lie. cluster.conf names seven nodes
//! on distinct 127.77.0.x loopback addresses and one port from the OS: n2
//! is a real daemon; on the addresses of n3..n7 fake listeners answer
//! every request with a forgery: a maintenance record with `changed_at`
//! 1e300 and no valid signature (n3), a state saying `holds_lease: false`
//! signed with another key (n4), a 100 MB body (n5), a one-byte-per-second
//! drip (n6), and a correctly signed answer replayed to every later request
//! (n7). Every one is rejected and counted in n1's `/metrics`, n1's engine
//! keeps ticking, and n2's maintenance still applies (and ends, which it
//! could not if the 1e300 record had been taken). Forged and replayed
//! requests to n1's own listener are refused and counted too.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ocfs2_watchdog::cluster::client::exchange;
use ocfs2_watchdog::cluster::peer_auth::{PeerKey, MAC_HEADER, NODE_HEADER, NONCE_HEADER};
use support::cluster::{cluster_conf, peer_node, wait, PeerNode};

const TOKEN: &str = "hostile-peer-test-token-0123456789";

/// The peer port every node and fake shares: one the OS gave, free on all
/// their addresses (support::listen::os_port_on).
fn peer_port() -> u16 {
    let ips: Vec<std::net::IpAddr> = NODES.iter().map(|(_, ip)| ip.parse().unwrap()).collect();
    support::listen::os_port_on(&ips)
}

const NODES: [(&str, &str); 7] = [
    ("n1", "127.77.0.2"),
    ("n2", "127.77.0.3"),
    ("n3", "127.77.0.4"),
    ("n4", "127.77.0.5"),
    ("n5", "127.77.0.6"),
    ("n6", "127.77.0.7"),
    ("n7", "127.77.0.8"),
];

#[derive(Clone, Copy)]
enum Forgery {
    HugeChangedAt,
    WrongKey,
    HundredMegabytes,
    Drip,
    Replay,
}

/// The request's path and nonce header (empty when absent).
fn read_request(stream: &mut TcpStream) -> Option<(String, String)> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") && raw.len() < 16384 {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        raw.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&raw);
    let path = text.split_whitespace().nth(1)?.to_string();
    let nonce = text
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case(NONCE_HEADER)
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    Some((path, nonce))
}

fn answer(node: &str, nonce: &str, mac: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{NODE_HEADER}: {node}\r\n{NONCE_HEADER}: {nonce}\r\n{MAC_HEADER}: {mac}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn state_of(node: &str) -> String {
    format!(
        r#"{{"node":"{node}","node_num":null,"holds_lease":false,"lease_route":null,"acting":false,"intent_at":null,"maintenance":false,"disruptive_findings":[]}}"#
    )
}

fn serve(
    mut stream: TcpStream,
    node: &'static str,
    forgery: Forgery,
    recorded: &Mutex<HashMap<String, Vec<u8>>>,
) {
    let Some((path, nonce)) = read_request(&mut stream) else {
        return;
    };
    let body = if path.ends_with("/state") {
        state_of(node)
    } else {
        "null".to_string()
    };
    let _ = match forgery {
        Forgery::HugeChangedAt => {
            let record = format!(
                r#"{{"active":true,"reason":"forged","node":"{node}","caller":"forger","changed_at":1e300,"expires_at":1e300}}"#
            );
            stream.write_all(&answer(node, &nonce, &"ab".repeat(32), &record))
        }
        Forgery::WrongKey => {
            let mac = PeerKey::new(b"not-the-cluster-token").sign_response(
                node,
                &nonce,
                200,
                body.as_bytes(),
            );
            stream.write_all(&answer(node, &nonce, &mac, &body))
        }
        Forgery::HundredMegabytes => {
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 104857600\r\n\r\n";
            let chunk = vec![b' '; 1 << 16];
            stream
                .write_all(head.as_bytes())
                .and_then(|()| (0..1600).try_for_each(|_| stream.write_all(&chunk)))
        }
        Forgery::Drip => {
            let mac =
                PeerKey::new(TOKEN.as_bytes()).sign_response(node, &nonce, 200, body.as_bytes());
            answer(node, &nonce, &mac, &body).iter().try_for_each(|b| {
                std::thread::sleep(Duration::from_secs(1));
                stream.write_all(&[*b])
            })
        }
        Forgery::Replay => {
            // The first answer per path is genuine (signed with the cluster
            // token for that request); every later request gets it again.
            let raw = recorded
                .lock()
                .unwrap()
                .entry(path)
                .or_insert_with(|| {
                    let mac = PeerKey::new(TOKEN.as_bytes()).sign_response(
                        node,
                        &nonce,
                        200,
                        body.as_bytes(),
                    );
                    answer(node, &nonce, &mac, &body)
                })
                .clone();
            stream.write_all(&raw)
        }
    };
}

/// A fake listener answering every connection with `forgery`, each on its
/// own thread (a drip must not hold the next request).
fn fake(ip: &str, port: u16, node: &'static str, forgery: Forgery) {
    let listener = TcpListener::bind((ip, port)).unwrap();
    let recorded = Arc::new(Mutex::new(HashMap::new()));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let recorded = Arc::clone(&recorded);
            std::thread::spawn(move || serve(stream, node, forgery, &recorded));
        }
    });
}

fn rejected(n1: &PeerNode, direction: &str, reason: &str) -> f64 {
    n1.value(&format!(
        "ocfs2_watchdog_peer_rejected_total{{direction=\"{direction}\",reason=\"{reason}\"}}"
    ))
    .unwrap_or(0.0)
}

#[test]
fn forged_answers_and_requests_are_rejected_and_the_real_peer_still_counts() {
    let base = tempfile::tempdir().unwrap();
    let port = peer_port();
    let conf = cluster_conf(&NODES);
    let mut n1 = peer_node(base.path(), "n1", &conf, port, TOKEN);
    let mut n2 = peer_node(base.path(), "n2", &conf, port, TOKEN);
    fake("127.77.0.4", port, "n3", Forgery::HugeChangedAt);
    fake("127.77.0.5", port, "n4", Forgery::WrongKey);
    fake("127.77.0.6", port, "n5", Forgery::HundredMegabytes);
    fake("127.77.0.7", port, "n6", Forgery::Drip);
    fake("127.77.0.8", port, "n7", Forgery::Replay);
    n2.start();
    n1.start();

    let peer_up = |node: &str, ip: &str, up: u8| {
        format!("ocfs2_watchdog_cluster_peer_up{{peer=\"{node}\",address=\"{ip}:{port}\"}} {up}")
    };
    wait("n2 up on n1", || n1.has(&peer_up("n2", "127.77.0.3", 1)));
    wait("every forgery rejected and counted", || {
        rejected(&n1, "response", "bad_mac") >= 2.0
            && rejected(&n1, "response", "too_large") >= 1.0
            && rejected(&n1, "response", "timeout") >= 1.0
            && rejected(&n1, "response", "replayed_nonce") >= 1.0
    });
    let metrics = n1.metrics();
    for (node, ip) in &NODES[2..] {
        assert!(
            metrics.contains(&peer_up(node, ip, 0)),
            "{node} is not believed:\n{metrics}"
        );
    }
    assert!(
        n1.has("ocfs2_watchdog_maintenance 0"),
        "the 1e300 record was not taken"
    );
    assert!(n1.has("ocfs2_watchdog_cluster_node_known{node=\"n1\"} 1"));

    // The engine keeps ticking while the drip and the 100 MB answer go on:
    // its startup grace (120 s by default) counts down tick after tick.
    let grace = || n1.value("ocfs2_watchdog_startup_grace_seconds").unwrap();
    let before = grace();
    wait("the engine ticks", || grace() < before - 1.0);

    // The real peer's maintenance applies, and ends: it could not if the
    // forged record of 1e300 had been merged.
    n2.cli(&["on", "--reason", "resize vol1", "--for", "1h"]);
    wait("n1 in maintenance from n2", || {
        n1.has("ocfs2_watchdog_maintenance 1")
    });
    assert!(n1.metrics().contains("node=\"n2\""));
    n2.cli(&["off"]);
    wait("n1 out of maintenance", || {
        n1.has("ocfs2_watchdog_maintenance 0")
    });
}

#[test]
fn forged_and_replayed_requests_to_the_listener_are_refused_and_counted() {
    let base = tempfile::tempdir().unwrap();
    let port = peer_port();
    let conf = cluster_conf(&NODES[..2]);
    let mut n1 = peer_node(base.path(), "n1", &conf, port, TOKEN);
    n1.start();
    let address = format!("127.77.0.2:{port}");
    let path = "/cluster/v1/maintenance";
    let send = |from: &str, headers: &[(&str, String)]| {
        let from: IpAddr = from.parse().unwrap();
        exchange(
            &address,
            Some(from),
            "GET",
            path,
            headers,
            Duration::from_secs(2),
            65536,
        )
        .map(|a| a.status)
    };
    let key = PeerKey::new(TOKEN.as_bytes());
    let signed = key.sign_request("GET", path, b"", "n2").unwrap().headers();
    wait("the listener", || send("127.77.0.3", &[]).is_ok());

    // Genuine from n2's address: answered; the same request again: refused.
    assert_eq!(send("127.77.0.3", &signed).unwrap(), 200);
    assert_eq!(send("127.77.0.3", &signed).unwrap(), 401);
    // A valid signature as n2, but not from n2's address.
    let other = key.sign_request("GET", path, b"", "n2").unwrap().headers();
    assert_eq!(send("127.77.0.9", &other).unwrap(), 401);
    // Another key.
    let forged = PeerKey::new(b"guess")
        .sign_request("GET", path, b"", "n2")
        .unwrap()
        .headers();
    assert_eq!(send("127.77.0.3", &forged).unwrap(), 401);
    // Signed for another path.
    let elsewhere = key
        .sign_request("GET", "/cluster/v1/state", b"", "n2")
        .unwrap()
        .headers();
    assert_eq!(send("127.77.0.3", &elsewhere).unwrap(), 401);

    wait("counted", || {
        rejected(&n1, "request", "replayed_nonce") == 1.0
            && rejected(&n1, "request", "wrong_node") == 1.0
            // The empty probe, another key, another path.
            && rejected(&n1, "request", "bad_mac") >= 3.0
    });
}
