//! The peers' `GET /cluster/v1/state` answers as last polled, with when
//! each arrived, so the engine can tell a fresh report from an old one.
//!
//! The peer thread (`cluster::peers::Peers::poll_once`) records every
//! round; the engine reads them through `read` at the moment it decides
//! (`rules::storm`'s unhealthy-nodes and peer-unknown gates, and the peers'
//! maintenance flag in `rules::decision`). A peer that stops answering
//! keeps its last answer, which ages: past the bound the engine gives
//! (`max_age`) it is `Heard::Stale`, and what that peer is doing now is
//! unknown. The clock is the caller's, so tests drive it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::consensus::NodeState;
use super::Member;

/// One peer's last answer and when it arrived.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    state: NodeState,
}

#[derive(Debug, Default)]
struct Inner {
    /// This node's number, from the last round's cluster.conf.
    local: Option<u8>,
    /// Names by node number, from the last round's cluster.conf.
    names: BTreeMap<u8, String>,
    last: BTreeMap<u8, Received>,
    /// Why the last ask of a peer failed, if it did.
    errors: BTreeMap<u8, String>,
}

/// What this node last heard from one peer, read against a bound.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// Answered within the bound.
    Fresh(NodeState),
    /// No answer within the bound: `last` is the last one (with its age),
    /// `error` why the last ask failed.
    Stale {
        last: Option<(Duration, NodeState)>,
        error: Option<String>,
    },
}

impl Heard {
    /// The last state this peer reported, however old.
    pub fn last_state(&self) -> Option<&NodeState> {
        match self {
            Heard::Fresh(state) => Some(state),
            Heard::Stale { last, .. } => last.as_ref().map(|(_, s)| s),
        }
    }
}

/// Every peer's report at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerStates {
    /// This node's number in cluster.conf, when a round knew it.
    pub local: Option<u8>,
    /// The bound a report was read against.
    pub max_age: Duration,
    /// Peers by node number: name and what was heard. A configured peer
    /// missing here was never heard from.
    pub peers: BTreeMap<u8, (String, Heard)>,
}

impl PeerStates {
    /// What was heard from `node`: never heard from counts as stale.
    pub fn heard(&self, node: u8) -> Heard {
        self.peers
            .get(&node)
            .map(|(_, heard)| heard.clone())
            .unwrap_or(Heard::Stale {
                last: None,
                error: None,
            })
    }

    /// `name (node N)`, the name when a round knew it.
    pub fn label(&self, node: u8) -> String {
        match self.peers.get(&node) {
            Some((name, _)) if !name.is_empty() => format!("{name} (node {node})"),
            _ => format!("node {node}"),
        }
    }
}

/// The store the peer thread writes and the engine reads.
#[derive(Debug, Default)]
pub struct PeerReports {
    inner: Mutex<Inner>,
}

impl PeerReports {
    pub fn new() -> Self {
        Self::default()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One round: `answers[i]` is `members[i]`'s, received `at`. A failed
    /// ask keeps the previous answer (it ages) and notes why.
    pub fn record(
        &self,
        local: u8,
        members: &[Member],
        answers: &[Result<NodeState, String>],
        at: Instant,
    ) {
        let mut inner = self.inner();
        inner.local = Some(local);
        inner.names = members
            .iter()
            .map(|m| (m.node_num, m.node.clone()))
            .collect();
        let known: Vec<u8> = members.iter().map(|m| m.node_num).collect();
        // A node taken out of cluster.conf is no peer any more.
        inner.last.retain(|n, _| known.contains(n));
        inner.errors.retain(|n, _| known.contains(n));
        for (member, answer) in members.iter().zip(answers) {
            match answer {
                Ok(state) => {
                    inner.errors.remove(&member.node_num);
                    inner.last.insert(
                        member.node_num,
                        Received {
                            at,
                            state: state.clone(),
                        },
                    );
                }
                Err(error) => {
                    inner.errors.insert(member.node_num, error.clone());
                }
            }
        }
    }

    /// Every peer as heard at `now`: fresh when its last answer is at most
    /// `max_age` old.
    pub fn read(&self, now: Instant, max_age: Duration) -> PeerStates {
        let inner = self.inner();
        let peers = inner
            .names
            .iter()
            .map(|(num, name)| {
                let error = inner.errors.get(num).cloned();
                let heard = match inner.last.get(num) {
                    Some(received) => {
                        let age = now.saturating_duration_since(received.at);
                        // One failed ask is not yet "unknown": a poll or
                        // two may fail within the bound.
                        if age <= max_age {
                            Heard::Fresh(received.state.clone())
                        } else {
                            Heard::Stale {
                                last: Some((age, received.state.clone())),
                                error,
                            }
                        }
                    }
                    None => Heard::Stale { last: None, error },
                };
                (*num, (name.clone(), heard))
            })
            .collect();
        PeerStates {
            local: inner.local,
            max_age,
            peers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(num: u8) -> Member {
        Member {
            node: format!("n{num}"),
            node_num: num,
            address: format!("10.0.0.{num}:9786"),
        }
    }

    #[test]
    fn a_report_is_fresh_within_the_bound_then_stale_with_its_age() {
        let reports = PeerReports::new();
        let t0 = Instant::now();
        let trouble = NodeState {
            disruptive_findings: vec!["o2cb_down/c".into()],
            ..NodeState::default()
        };
        reports.record(1, &[member(2)], &[Ok(trouble.clone())], t0);
        let bound = Duration::from_secs(15);
        let fresh = reports.read(t0 + Duration::from_secs(15), bound);
        assert_eq!(fresh.local, Some(1));
        assert_eq!(fresh.heard(2), Heard::Fresh(trouble.clone()));
        assert_eq!(fresh.label(2), "n2 (node 2)");
        let aged = reports.read(t0 + Duration::from_secs(16), bound);
        assert_eq!(
            aged.heard(2),
            Heard::Stale {
                last: Some((Duration::from_secs(16), trouble.clone())),
                error: None
            }
        );
        // Never heard from: stale with nothing.
        assert_eq!(
            aged.heard(3),
            Heard::Stale {
                last: None,
                error: None
            }
        );
    }

    #[test]
    fn a_failed_ask_keeps_the_last_answer_which_ages() {
        let reports = PeerReports::new();
        let t0 = Instant::now();
        let maintenance = NodeState {
            maintenance: true,
            ..NodeState::default()
        };
        reports.record(1, &[member(2)], &[Ok(maintenance.clone())], t0);
        let later = t0 + Duration::from_secs(5);
        reports.record(1, &[member(2)], &[Err("timed out".into())], later);
        let bound = Duration::from_secs(15);
        assert_eq!(
            reports.read(later, bound).heard(2),
            Heard::Fresh(maintenance.clone())
        );
        let heard = reports.read(t0 + Duration::from_secs(16), bound).heard(2);
        assert_eq!(heard.last_state(), Some(&maintenance));
        assert!(
            matches!(&heard, Heard::Stale { error: Some(e), .. } if e == "timed out"),
            "{heard:?}"
        );
        // A node removed from cluster.conf is forgotten.
        reports.record(1, &[], &[], t0);
        assert!(reports.read(t0, Duration::from_secs(15)).peers.is_empty());
    }
}
