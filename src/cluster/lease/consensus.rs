//! The peer route's decision, kept pure so every case is a unit test: given
//! what each peer answered (or why it did not), may this node hold the
//! lease now?
//!
//! The rule (docs/rules.md, "The cluster lease"): every configured peer
//! either answered, or did not answer but is dead on the heartbeat disk
//! (its slot was read this tick and is not active). A peer that is live on
//! disk, or whose disk slot is unknown, and does not answer fails closed:
//! it may be acting right now. Of the answers, holders count against
//! `max_concurrent_nodes` whatever their number; peers that only intend to
//! act count when their node number is lower than this node's (the
//! deterministic tie-break), so of two nodes asking at once the lower one
//! proceeds and the higher one waits. `mod.rs` asks twice, the second time
//! after a jittered delay longer than one round of asking, so a peer that
//! started asking just after this node's first round is seen by the second.

use serde::{Deserialize, Deserializer, Serialize};

use crate::input::{self, InputError, Source};

/// Longest text and longest list a peer's state may carry.
const MAX_TEXT: usize = 1024;
const MAX_FINDINGS: usize = 4096;

/// What a node tells its peers at `GET /cluster/v1/state`. Decoding checks
/// every field (a peer is hostile until proven otherwise): bounded text and
/// lists, `intent_at` a finite time not a day ahead; a refusal is counted
/// (`crate::input`, source `peer`) and the answer is an error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    #[serde(deserialize_with = "bounded_text")]
    pub node: String,
    /// The node's number in cluster.conf, when the daemon knows it.
    pub node_num: Option<u8>,
    /// Holds the cluster lease now (either route).
    pub holds_lease: bool,
    /// Which route it holds the lease by (`dlmfs`, `peers`).
    #[serde(default, deserialize_with = "bounded_optional_text")]
    pub lease_route: Option<String>,
    /// An action thread that needed the lease is alive.
    pub acting: bool,
    /// Unix time it started asking for the lease by the peer route; set
    /// until it gives up asking or releases the lease.
    #[serde(default, deserialize_with = "intent_time")]
    pub intent_at: Option<f64>,
    /// Cluster maintenance is in force there.
    pub maintenance: bool,
    /// Its firing findings that would act destructively and are not given
    /// up (`rule/target`), for the unhealthy-nodes gate of every node: a
    /// given-up finding is not acted on, so nobody waits for it.
    #[serde(deserialize_with = "bounded_findings")]
    pub disruptive_findings: Vec<String>,
}

fn refuse<E: serde::de::Error>(error: InputError) -> E {
    E::custom(input::reject(Source::Peer, error))
}

fn check_text<E: serde::de::Error>(field: &'static str, text: &str) -> Result<(), E> {
    if text.len() > MAX_TEXT {
        return Err(refuse(InputError::Malformed {
            field,
            message: format!("{} bytes, more than {MAX_TEXT}", text.len()),
        }));
    }
    Ok(())
}

fn bounded_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    check_text("node", &text)?;
    Ok(text)
}

fn bounded_optional_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    if let Some(text) = &text {
        check_text("lease_route", text)?;
    }
    Ok(text)
}

fn bounded_findings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let findings = Vec::<String>::deserialize(d)?;
    if findings.len() > MAX_FINDINGS {
        return Err(refuse(InputError::Malformed {
            field: "disruptive_findings",
            message: format!("{} entries, more than {MAX_FINDINGS}", findings.len()),
        }));
    }
    for finding in &findings {
        check_text("disruptive_findings", finding)?;
    }
    Ok(findings)
}

/// A day is the largest `[cluster] max_clock_skew` accepts.
fn intent_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let Some(at) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    input::timestamp(
        "intent_at",
        at,
        std::time::SystemTime::now(),
        std::time::Duration::from_secs(86_400),
    )
    .map_err(refuse)?;
    Ok(Some(at))
}

/// One configured peer as this round saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerAnswer {
    pub node: String,
    pub node_num: u8,
    pub answer: Result<NodeState, String>,
    /// `Some(false)`: its heartbeat slot was read this tick and is not
    /// active (it is down); `Some(true)`: live on disk; `None`: unknown.
    pub live_on_disk: Option<bool>,
}

/// What one round of asking allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Proceed,
    /// Other nodes hold or are about to take every slot.
    Busy(String),
    /// A peer that may be acting could not be asked.
    Unreachable(String),
}

/// Decides one round; `local` is this node's number.
pub fn decide(local: u8, max_concurrent_nodes: u32, answers: &[PeerAnswer]) -> Verdict {
    let mut unreachable = Vec::new();
    let mut holders = Vec::new();
    let mut ahead = Vec::new();
    for peer in answers {
        match &peer.answer {
            Err(error) => match peer.live_on_disk {
                Some(false) => {}
                Some(true) => unreachable.push(format!(
                    "{} (node {}) is live on the heartbeat disk but did not answer: {error}",
                    peer.node, peer.node_num
                )),
                None => unreachable.push(format!(
                    "{} (node {}) did not answer and its heartbeat on disk is unknown: {error}",
                    peer.node, peer.node_num
                )),
            },
            Ok(state) if state.holds_lease || state.acting => {
                holders.push(format!("{} (node {})", peer.node, peer.node_num));
            }
            Ok(state) if state.intent_at.is_some() && peer.node_num < local => {
                ahead.push(format!("{} (node {})", peer.node, peer.node_num));
            }
            Ok(_) => {}
        }
    }
    if !unreachable.is_empty() {
        return Verdict::Unreachable(unreachable.join("; "));
    }
    let taken = holders.len() + ahead.len();
    if taken >= max_concurrent_nodes.max(1) as usize {
        let mut why = Vec::new();
        if !holders.is_empty() {
            why.push(format!("held by {}", holders.join(", ")));
        }
        if !ahead.is_empty() {
            why.push(format!(
                "lower-numbered node(s) asking at the same time: {}",
                ahead.join(", ")
            ));
        }
        return Verdict::Busy(format!(
            "{} (max_concurrent_nodes {})",
            why.join("; "),
            max_concurrent_nodes.max(1)
        ));
    }
    Verdict::Proceed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(num: u8, state: NodeState) -> PeerAnswer {
        PeerAnswer {
            node: format!("n{num}"),
            node_num: num,
            answer: Ok(state),
            live_on_disk: Some(true),
        }
    }

    fn silent(num: u8, live_on_disk: Option<bool>) -> PeerAnswer {
        PeerAnswer {
            node: format!("n{num}"),
            node_num: num,
            answer: Err("connection refused".into()),
            live_on_disk,
        }
    }

    fn idle() -> NodeState {
        NodeState::default()
    }

    fn holding() -> NodeState {
        NodeState {
            holds_lease: true,
            lease_route: Some("peers".into()),
            acting: true,
            ..NodeState::default()
        }
    }

    fn intending() -> NodeState {
        NodeState {
            intent_at: Some(1_700_000_000.0),
            ..NodeState::default()
        }
    }

    #[test]
    fn every_idle_peer_or_no_peer_lets_the_node_proceed() {
        assert_eq!(decide(1, 1, &[]), Verdict::Proceed);
        assert_eq!(
            decide(2, 1, &[answered(1, idle()), answered(3, idle())]),
            Verdict::Proceed
        );
    }

    #[test]
    fn a_holder_makes_the_lease_busy_whatever_its_number() {
        let verdict = decide(1, 1, &[answered(2, holding())]);
        assert!(
            matches!(&verdict, Verdict::Busy(why) if why.contains("held by n2 (node 2)")),
            "{verdict:?}"
        );
        let acting_only = NodeState {
            acting: true,
            ..idle()
        };
        assert!(matches!(
            decide(1, 1, &[answered(2, acting_only)]),
            Verdict::Busy(_)
        ));
    }

    #[test]
    fn concurrent_intents_are_broken_by_node_number() {
        // n1 and n2 ask at once: n1 (lower) proceeds, n2 waits.
        assert_eq!(decide(1, 1, &[answered(2, intending())]), Verdict::Proceed);
        let verdict = decide(2, 1, &[answered(1, intending())]);
        assert!(
            matches!(&verdict, Verdict::Busy(why) if why.contains("lower-numbered") && why.contains("n1")),
            "{verdict:?}"
        );
    }

    #[test]
    fn max_concurrent_nodes_admits_that_many() {
        let peers = [answered(1, holding()), answered(2, intending())];
        assert!(matches!(decide(3, 2, &peers), Verdict::Busy(_)));
        assert_eq!(decide(3, 3, &peers), Verdict::Proceed);
        assert_eq!(decide(3, 2, &peers[..1]), Verdict::Proceed);
        // 0 is read as 1: never "no limit".
        assert!(matches!(decide(3, 0, &peers[..1]), Verdict::Busy(_)));
    }

    #[test]
    fn an_unreachable_peer_fails_closed_unless_dead_on_disk() {
        let live = decide(1, 1, &[silent(2, Some(true))]);
        assert!(
            matches!(&live, Verdict::Unreachable(why) if why.contains("live on the heartbeat disk")),
            "{live:?}"
        );
        let unknown = decide(1, 1, &[silent(2, None)]);
        assert!(
            matches!(&unknown, Verdict::Unreachable(why) if why.contains("unknown")),
            "{unknown:?}"
        );
        assert_eq!(decide(1, 1, &[silent(2, Some(false))]), Verdict::Proceed);
        // Unreachable wins over busy: the reason names what is missing.
        assert!(matches!(
            decide(1, 1, &[silent(2, Some(true)), answered(3, holding())]),
            Verdict::Unreachable(_)
        ));
    }
}
