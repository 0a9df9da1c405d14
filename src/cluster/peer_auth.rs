//! Mutual authentication of the peer protocol (`peers.rs`): the shared
//! cluster token keys an HMAC-SHA256 and never goes on the wire.
//!
//! A request carries the sender's cluster.conf node name, a fresh random
//! nonce, its Unix time and a MAC over the method, the path, the body's
//! SHA-256, the node, the nonce and the time. The server (one middleware
//! for every peer route, `peer_server::routes`) checks the MAC, that the sender
//! is a node of its cluster (and, where it knows it, that the connection
//! comes from that node's `ip_address`), that the time is within
//! `MAX_SKEW` and that the nonce was not seen within the window
//! (`NonceCache`, bounded). The answer is signed by the answering node
//! over its node name, the request's nonce, the status and the body's
//! SHA-256: the client (`peers::Peers::call`, the one client function)
//! rejects an answer that is not from the node cluster.conf names for the
//! address it asked, or that does not carry its own nonce, so a recorded
//! answer replayed later fails. Every rejection is counted by direction
//! and reason (`Rejections`, `ocfs2_watchdog_peer_rejected_total`) and
//! logged. docs/design.md ("Peer authentication") says why HMAC and not
//! mutual TLS.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};
use serde::Serialize;

use crate::metrics::Family;

pub const NODE_HEADER: &str = "x-ocfs2-watchdog-node";
pub const NONCE_HEADER: &str = "x-ocfs2-watchdog-nonce";
pub const TIME_HEADER: &str = "x-ocfs2-watchdog-time";
pub const MAC_HEADER: &str = "x-ocfs2-watchdog-mac";

/// Largest peer request or answer (head and body): a node state or a
/// maintenance record is well under 4 KiB.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Nonces remembered at most. A request's time may differ from this
/// node's clock by `[cluster] max_clock_skew` (the one bound on peers'
/// clocks, default 5 min) and the cache remembers nonces for twice as long,
/// so a request is either too old or its nonce is still known: at the
/// default, ten minutes of polls, about 5 400 for 16 nodes polling every
/// 5 s. A flood of validly signed requests (only a node with the token can
/// make one) is refused rather than forgetting a nonce early.
const NONCE_CAPACITY: usize = 65_536;
const NONCE_BYTES: usize = 16;

/// Which side rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// This node's listener refused a request.
    Request,
    /// This node refused a peer's answer.
    Response,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Request => "request",
            Direction::Response => "response",
        }
    }
}

/// Why a request or an answer was refused (`reason` label, a fixed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The MAC is missing or wrong (another token, or a forger).
    BadMac,
    /// The sender is not a node of this node's cluster in cluster.conf.
    UnknownNode,
    /// The answer is from another node than cluster.conf names for the
    /// address, or the request comes from another address than the node's.
    WrongNode,
    /// The request's time is further than `MAX_SKEW` from this clock.
    StaleTime,
    /// A nonce seen before (a replayed request), or an answer to another
    /// request than this one (a replayed answer).
    ReplayedNonce,
    /// Larger than `MAX_MESSAGE`.
    TooLarge,
    /// Not complete by the request's total deadline.
    Timeout,
    /// Not HTTP, a missing or unreadable field, a body that does not decode.
    Malformed,
    /// The nonce cache is full (only validly signed requests fill it).
    NonceCacheFull,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::BadMac,
        Reason::UnknownNode,
        Reason::WrongNode,
        Reason::StaleTime,
        Reason::ReplayedNonce,
        Reason::TooLarge,
        Reason::Timeout,
        Reason::Malformed,
        Reason::NonceCacheFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadMac => "bad_mac",
            Reason::UnknownNode => "unknown_node",
            Reason::WrongNode => "wrong_node",
            Reason::StaleTime => "stale_time",
            Reason::ReplayedNonce => "replayed_nonce",
            Reason::TooLarge => "too_large",
            Reason::Timeout => "timeout",
            Reason::Malformed => "malformed",
            Reason::NonceCacheFull => "nonce_cache_full",
        }
    }
}

/// A peer exchange that failed: `reason` is set when something answered
/// (or was sent) and was refused; `None` when nobody could be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PeerError {
    pub reason: Option<Reason>,
    pub message: String,
}

impl PeerError {
    pub fn rejected(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason: Some(reason),
            message: format!("rejected ({}): {}", reason.as_str(), message.into()),
        }
    }

    pub fn unreachable(message: impl Into<String>) -> Self {
        Self {
            reason: None,
            message: message.into(),
        }
    }
}

/// The authentication fields of one request, as sent in its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAuth {
    pub node: String,
    pub nonce: String,
    pub time: u64,
    pub mac: String,
}

impl RequestAuth {
    /// The request headers that carry it.
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (NODE_HEADER, self.node.clone()),
            (NONCE_HEADER, self.nonce.clone()),
            (TIME_HEADER, self.time.to_string()),
            (MAC_HEADER, self.mac.clone()),
        ]
    }
}

/// An answer as the client checks it: its status, body and the
/// authentication headers it carried.
#[derive(Debug, Clone, Copy)]
pub struct SignedAnswer<'a> {
    pub status: u16,
    pub body: &'a [u8],
    pub node: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub mac: Option<&'a str>,
}

impl<'a> SignedAnswer<'a> {
    pub fn of(answer: &'a crate::cluster::client::FullAnswer) -> Self {
        Self {
            status: answer.status,
            body: &answer.body,
            node: answer.header(NODE_HEADER),
            nonce: answer.header(NONCE_HEADER),
            mac: answer.header(MAC_HEADER),
        }
    }
}

/// The HMAC key made from the cluster token.
pub struct PeerKey {
    key: hmac::Key,
}

impl PeerKey {
    pub fn new(token: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, token),
        }
    }

    /// Signs a request from `node` with a fresh nonce and the current time.
    pub fn sign_request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        node: &str,
    ) -> Result<RequestAuth, PeerError> {
        let nonce = fresh_nonce()?;
        let time = unix_now();
        let message = request_message(method, path, body, node, &nonce, time);
        Ok(RequestAuth {
            node: node.to_string(),
            nonce,
            time,
            mac: hex(hmac::sign(&self.key, &message).as_ref()),
        })
    }

    /// Checks a request's MAC only (in constant time); membership, time
    /// and nonce are the caller's (`Verifier`).
    pub fn verify_request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        auth: &RequestAuth,
    ) -> Result<(), Reason> {
        let message = request_message(method, path, body, &auth.node, &auth.nonce, auth.time);
        let mac = unhex(&auth.mac).ok_or(Reason::BadMac)?;
        hmac::verify(&self.key, &message, &mac).map_err(|_| Reason::BadMac)
    }

    /// The MAC of an answer from `node` to the request with `nonce`.
    pub fn sign_response(&self, node: &str, nonce: &str, status: u16, body: &[u8]) -> String {
        hex(hmac::sign(&self.key, &response_message(node, nonce, status, body)).as_ref())
    }

    /// Checks that `answer` comes from `expected_node` and answers the
    /// request with `nonce`.
    pub fn verify_response(
        &self,
        expected_node: &str,
        nonce: &str,
        answer: &SignedAnswer<'_>,
    ) -> Result<(), PeerError> {
        let (status, body) = (answer.status, answer.body);
        let (Some(node), Some(echoed), Some(mac)) = (answer.node, answer.nonce, answer.mac) else {
            return Err(PeerError::rejected(
                Reason::BadMac,
                format!("answered {status} without the peer signature"),
            ));
        };
        let mac = unhex(mac)
            .ok_or_else(|| PeerError::rejected(Reason::BadMac, "the signature is not hex"))?;
        if node != expected_node {
            // Checked with the MAC so a forger cannot learn which check failed
            // from a guessed name alone: a signed answer of another node is
            // still that node's, not the one at this address.
            let genuine = hmac::verify(
                &self.key,
                &response_message(node, echoed, status, body),
                &mac,
            )
            .is_ok();
            return Err(PeerError::rejected(
                if genuine {
                    Reason::WrongNode
                } else {
                    Reason::BadMac
                },
                format!("the answer says it is from {node}, cluster.conf names {expected_node} for this address"),
            ));
        }
        if echoed != nonce {
            return Err(PeerError::rejected(
                Reason::ReplayedNonce,
                "the answer is to another request (a replayed answer)",
            ));
        }
        hmac::verify(
            &self.key,
            &response_message(node, nonce, status, body),
            &mac,
        )
        .map_err(|_| PeerError::rejected(Reason::BadMac, "the answer's signature is wrong"))
    }
}

fn body_hash(body: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, body).as_ref())
}

/// Each field on its own line, prefixed with the protocol and direction,
/// so a request's MAC can never be taken for an answer's. Node names and
/// nonces cannot hold a newline (cluster.conf names; hex), and a path with
/// one is not HTTP.
fn request_message(
    method: &str,
    path: &str,
    body: &[u8],
    node: &str,
    nonce: &str,
    time: u64,
) -> Vec<u8> {
    format!(
        "ocfs2-watchdog-peer-request-v1\n{method}\n{path}\n{}\n{node}\n{nonce}\n{time}",
        body_hash(body)
    )
    .into_bytes()
}

fn response_message(node: &str, nonce: &str, status: u16, body: &[u8]) -> Vec<u8> {
    format!(
        "ocfs2-watchdog-peer-response-v1\n{node}\n{nonce}\n{status}\n{}",
        body_hash(body)
    )
    .into_bytes()
}

fn fresh_nonce() -> Result<String, PeerError> {
    let mut bytes = [0u8; NONCE_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PeerError::unreachable("the system random generator failed"))?;
    Ok(hex(&bytes))
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 256 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A request's nonce is well formed: the hex of `NONCE_BYTES` bytes.
pub fn valid_nonce(nonce: &str) -> bool {
    nonce.len() == NONCE_BYTES * 2 && nonce.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Nonces of accepted requests, kept for twice the allowed clock skew.
#[derive(Debug, Default)]
pub struct NonceCache {
    seen: Mutex<HashMap<String, u64>>,
}

impl NonceCache {
    /// Remembers `nonce` seen at `now` (Unix seconds), or says why not;
    /// `skew` is the clock skew requests are accepted with.
    pub fn admit(&self, nonce: &str, now: u64, skew: Duration) -> Result<(), Reason> {
        let window = skew.as_secs().saturating_mul(2);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains_key(nonce) {
            return Err(Reason::ReplayedNonce);
        }
        if seen.len() >= NONCE_CAPACITY {
            seen.retain(|_, at| now.saturating_sub(*at) <= window);
        }
        if seen.len() >= NONCE_CAPACITY {
            return Err(Reason::NonceCacheFull);
        }
        seen.insert(nonce.to_string(), now);
        Ok(())
    }
}

/// Checks a request's time against this clock, within `skew`.
pub fn fresh_time(time: u64, now: u64, skew: Duration) -> Result<(), Reason> {
    if time.abs_diff(now) > skew.as_secs() {
        Err(Reason::StaleTime)
    } else {
        Ok(())
    }
}

/// How often one kind of rejection is logged at `warn`: a flood of forged
/// requests is counted in full but does not flood the journal.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Rejections by direction and reason, for `/metrics`.
#[derive(Debug, Default)]
pub struct Rejections {
    counts: Mutex<BTreeMap<(Direction, Reason), u64>>,
    logged: Mutex<HashMap<(Direction, Reason), Instant>>,
}

impl Rejections {
    /// Counts and logs one rejection; `peer` is who sent it (a node name
    /// or an address).
    pub fn count(&self, direction: Direction, reason: Reason, peer: &str, detail: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry((direction, reason)).or_default();
        *n = n.saturating_add(1);
        drop(counts);
        let now = Instant::now();
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        let loud = match logged.get(&(direction, reason)) {
            Some(at) => now.saturating_duration_since(*at) >= LOG_EVERY,
            None => true,
        };
        if loud {
            logged.insert((direction, reason), now);
        }
        drop(logged);
        let (direction, reason) = (direction.as_str(), reason.as_str());
        let (peer, detail) = (peer.escape_debug(), detail.escape_debug());
        if loud {
            tracing::warn!(direction, reason, peer = %peer, detail = %detail, "Peer protocol message rejected.");
        } else {
            tracing::debug!(direction, reason, peer = %peer, detail = %detail, "Peer protocol message rejected.");
        }
    }

    pub fn snapshot(&self) -> Vec<(Direction, Reason, u64)> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        [Direction::Request, Direction::Response]
            .into_iter()
            .flat_map(|d| Reason::ALL.into_iter().map(move |r| (d, r)))
            .map(|(d, r)| (d, r, counts.get(&(d, r)).copied().unwrap_or(0)))
            .collect()
    }
}

/// What `/metrics` shows of the peer protocol's identity and rejections.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PeerMetrics {
    /// This node's `[cluster] node_name` is a node of cluster.conf.
    pub node_known: bool,
    pub node_name: String,
    pub rejected: Vec<(Direction, Reason, u64)>,
}

impl PeerMetrics {
    pub fn families(&self) -> Vec<Family> {
        let mut rejected = Family::counter(
            "ocfs2_watchdog_peer_rejected",
            "Peer-protocol requests (this node's listener) and answers (this node's polls) rejected, by reason: bad_mac, unknown_node, wrong_node, stale_time, replayed_nonce, too_large, timeout, malformed, nonce_cache_full.",
        );
        for (direction, reason, n) in &self.rejected {
            rejected.push(
                &[
                    ("direction", direction.as_str()),
                    ("reason", reason.as_str()),
                ],
                *n as f64,
            );
        }
        vec![
            Family::gauge(
                "ocfs2_watchdog_cluster_node_known",
                "1 when this node's name ([cluster] node_name, default the short hostname) is a node of /etc/ocfs2/cluster.conf; 0: no peers, and actions that need the cluster lease are held.",
            )
            .with(&[("node", self.node_name.as_str())], if self.node_known { 1.0 } else { 0.0 }),
            rejected,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_verifies_only_with_the_same_key_and_fields() {
        let key = PeerKey::new(b"cluster-secret");
        let auth = key
            .sign_request("GET", "/cluster/v1/state", b"", "n1")
            .unwrap();
        assert!(valid_nonce(&auth.nonce));
        assert_eq!(
            key.verify_request("GET", "/cluster/v1/state", b"", &auth),
            Ok(())
        );
        assert_eq!(
            key.verify_request("GET", "/cluster/v1/maintenance", b"", &auth),
            Err(Reason::BadMac)
        );
        assert_eq!(
            key.verify_request("GET", "/cluster/v1/state", b"x", &auth),
            Err(Reason::BadMac)
        );
        let other_node = RequestAuth {
            node: "n2".into(),
            ..auth.clone()
        };
        assert_eq!(
            key.verify_request("GET", "/cluster/v1/state", b"", &other_node),
            Err(Reason::BadMac)
        );
        assert_eq!(
            PeerKey::new(b"other").verify_request("GET", "/cluster/v1/state", b"", &auth),
            Err(Reason::BadMac)
        );
        let garbage = RequestAuth {
            mac: "zz".into(),
            ..auth
        };
        assert_eq!(
            key.verify_request("GET", "/cluster/v1/state", b"", &garbage),
            Err(Reason::BadMac)
        );
    }

    #[test]
    fn an_answer_must_name_the_node_and_carry_this_requests_nonce() {
        let key = PeerKey::new(b"cluster-secret");
        let mac = key.sign_response("n2", "aa", 200, b"{}");
        fn signed<'a>(
            node: &'a str,
            status: u16,
            body: &'a [u8],
            mac: &'a str,
        ) -> SignedAnswer<'a> {
            SignedAnswer {
                status,
                body,
                node: Some(node),
                nonce: Some("aa"),
                mac: Some(mac),
            }
        }
        let check = |node, nonce, status, body: &[u8], mac: &str| {
            key.verify_response("n2", nonce, &signed(node, status, body, mac))
                .map_err(|e| e.reason)
        };
        assert_eq!(check("n2", "aa", 200, b"{}", &mac), Ok(()));
        assert_eq!(
            check("n2", "aa", 200, b"{ }", &mac),
            Err(Some(Reason::BadMac))
        );
        assert_eq!(
            check("n2", "aa", 500, b"{}", &mac),
            Err(Some(Reason::BadMac))
        );
        // A recorded answer replayed to a later request.
        assert_eq!(
            check("n2", "bb", 200, b"{}", &mac),
            Err(Some(Reason::ReplayedNonce))
        );
        // A genuine answer of n3 given at n2's address.
        let n3 = key.sign_response("n3", "aa", 200, b"{}");
        assert_eq!(
            check("n3", "aa", 200, b"{}", &n3),
            Err(Some(Reason::WrongNode))
        );
        let unsigned = SignedAnswer {
            node: None,
            nonce: None,
            mac: None,
            ..signed("n2", 200, b"{}", &mac)
        };
        assert_eq!(
            key.verify_response("n2", "aa", &unsigned)
                .map_err(|e| e.reason),
            Err(Some(Reason::BadMac))
        );
        // Another key.
        assert_eq!(
            PeerKey::new(b"other")
                .verify_response("n2", "aa", &signed("n2", 200, b"{}", &mac))
                .map_err(|e| e.reason),
            Err(Some(Reason::BadMac))
        );
    }

    #[test]
    fn nonces_are_single_use_and_the_cache_is_bounded() {
        let cache = NonceCache::default();
        let skew = Duration::from_secs(30);
        assert_eq!(cache.admit("a", 100, skew), Ok(()));
        assert_eq!(cache.admit("a", 101, skew), Err(Reason::ReplayedNonce));
        for i in 1..NONCE_CAPACITY {
            cache.admit(&format!("n{i}"), 100, skew).unwrap();
        }
        assert_eq!(cache.admit("late", 100, skew), Err(Reason::NonceCacheFull));
        // Twice the skew later the old nonces are forgotten.
        assert_eq!(cache.admit("late", 100 + 61, skew), Ok(()));
        assert_eq!(fresh_time(100, 130, skew), Ok(()));
        assert_eq!(fresh_time(100, 131, skew), Err(Reason::StaleTime));
        assert_eq!(fresh_time(u64::MAX, 0, skew), Err(Reason::StaleTime));
        // The configured bound: five minutes apart is within 5 min.
        let five = Duration::from_secs(300);
        assert_eq!(fresh_time(100, 400, five), Ok(()));
        assert_eq!(fresh_time(100, 401, five), Err(Reason::StaleTime));
    }

    #[test]
    fn rejections_are_counted_for_every_reason() {
        let rejections = Rejections::default();
        rejections.count(Direction::Response, Reason::TooLarge, "n2", "100 MB");
        let snapshot = rejections.snapshot();
        assert_eq!(snapshot.len(), 2 * Reason::ALL.len());
        assert!(snapshot.contains(&(Direction::Response, Reason::TooLarge, 1)));
        assert!(snapshot.contains(&(Direction::Request, Reason::TooLarge, 0)));
    }
}
