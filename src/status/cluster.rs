//! The cluster view: one screen for every node of the o2cb cluster, as
//! `status --cluster`, `check --cluster` and the `/` page show it.
//!
//! Each daemon makes a `NodeSummary` of its own latest snapshot (`summary`):
//! stack, heartbeat, mounts, rules firing and given up, maintenance, whether
//! it holds the cluster lease, the peers as it reaches them, its version and
//! its own verdict. Peers serve theirs on the peer protocol
//! (`cluster::status_route`), the local daemon gathers them into a
//! `ClusterStatus` (one `ClusterNode` per node of cluster.conf, answering or
//! not) and serves it to the CLI at `/status/cluster`. `evaluate` turns that
//! into one verdict with the Nagios exit codes of `check`: each node's own
//! findings, prefixed with its name, and a node that does not answer at the
//! `node_down` severity. `section` lays it out as one document section,
//! which the terminal screen and the `/` page both show.

use serde::{Deserialize, Serialize};

use super::check::{self, Finding, State, Verdict};
use super::model::Overview;
use super::render::{Block, Cell, Document, Section, Tone};
use super::thresholds::{CheckConfig, Severity};
use crate::snapshot::Snapshot;

/// One mount as the cluster view shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountState {
    pub mountpoint: String,
    /// `ok`, `missing`, `stuck`, `stacked` or `degraded`.
    pub state: String,
}

/// A peer as this node last reached it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerReach {
    pub node: String,
    pub up: bool,
}

/// What one node says about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub node: String,
    pub version: String,
    pub taken_at: String,
    pub taken_at_unix: f64,
    pub cluster: Option<String>,
    /// `online`, `OFFLINE`, `not configured` or `none`.
    pub stack: String,
    /// Heartbeat mode and nodes live as this node sees them (`local 3/3`).
    pub heartbeat: String,
    pub mounts: Vec<MountState>,
    /// `rule on target`, each.
    pub rules_firing: Vec<String>,
    pub rules_gave_up: Vec<String>,
    /// The reason, while cluster maintenance is in force here.
    pub maintenance: Option<String>,
    /// This node holds the cluster lease now.
    pub lease_held: bool,
    /// `None` without the peer protocol.
    pub peers: Option<Vec<PeerReach>>,
    pub mode: String,
    /// The node's own verdict (its `check` with its thresholds).
    pub state: String,
    pub findings: Vec<FindingView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingView {
    pub state: String,
    pub text: String,
}

/// One node of the cluster: its summary, or why there is none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterNode {
    pub node: String,
    pub address: Option<String>,
    /// The node that served this view.
    pub local: bool,
    pub reachable: bool,
    pub error: Option<String>,
    pub summary: Option<NodeSummary>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub cluster: Option<String>,
    /// This node first, then the peers in cluster.conf order.
    pub nodes: Vec<ClusterNode>,
}

/// This node's summary of its latest snapshot.
pub fn summary(node: &str, snapshot: &Snapshot, config: &CheckConfig) -> NodeSummary {
    let overview = super::overview(snapshot);
    let verdict = check::evaluate(&overview, config);
    let report = snapshot.remediation.as_deref();
    let mut summary = from_overview(node, &overview, &verdict);
    if let Some(report) = report {
        summary.maintenance = report
            .maintenance
            .as_ref()
            .filter(|m| m.active)
            .map(|m| format!("{} (set on {})", m.reason, m.node));
        summary.lease_held = report.lease.as_ref().is_some_and(|l| !l.held.is_empty());
        summary.peers = report.peers.as_ref().map(|peers| {
            peers
                .iter()
                .map(|p| PeerReach {
                    node: p.node.clone(),
                    up: p.up,
                })
                .collect()
        });
    }
    summary
}

/// The parts of a summary an overview and its verdict give.
pub fn from_overview(node: &str, overview: &Overview, verdict: &Verdict) -> NodeSummary {
    let stack = match &overview.cluster {
        None => "none".to_string(),
        Some(c) if c.online => "online".to_string(),
        Some(c) if !c.expected => "not configured".to_string(),
        Some(_) => "OFFLINE".to_string(),
    };
    let live = overview
        .nodes
        .iter()
        .filter(|n| n.heartbeat_live == Some(true))
        .count();
    let heartbeat = match &overview.cluster {
        Some(c) if c.online => format!(
            "{} {live}/{}",
            c.heartbeat_mode.as_deref().unwrap_or("?"),
            overview.nodes.len()
        ),
        _ => "-".to_string(),
    };
    let mounts = overview
        .volumes
        .iter()
        .flat_map(|v| &v.mounts)
        .filter(|m| m.mounted || m.missing)
        .map(|m| MountState {
            mountpoint: m.mountpoint.clone(),
            state: if m.stuck {
                "stuck"
            } else if m.missing {
                "missing"
            } else if m.duplicate_layers > 0 {
                "stacked"
            } else if m.error_readonly || m.shadowed || m.device_missing || m.mountpoint_deleted {
                "degraded"
            } else {
                "ok"
            }
            .to_string(),
        })
        .collect();
    let rules = |state: &str| {
        overview
            .remediation
            .rules
            .iter()
            .filter(|r| r.state == state)
            .map(|r| format!("{} on {}", r.rule, r.target))
            .collect()
    };
    NodeSummary {
        node: node.to_string(),
        version: overview.version.clone(),
        taken_at: overview.taken_at.clone(),
        taken_at_unix: overview.taken_at_unix,
        cluster: overview.cluster.as_ref().map(|c| c.name.clone()),
        stack,
        heartbeat,
        mounts,
        rules_firing: rules("firing"),
        rules_gave_up: rules("gave_up"),
        maintenance: None,
        lease_held: false,
        peers: None,
        mode: overview.remediation.mode.clone(),
        state: verdict.state.as_str().to_string(),
        findings: verdict
            .findings
            .iter()
            .map(|f| FindingView {
                state: f.state.as_str().to_string(),
                text: f.text.clone(),
            })
            .collect(),
    }
}

fn state_named(name: &str) -> State {
    match name {
        "OK" => State::Ok,
        "WARNING" => State::Warning,
        "CRITICAL" => State::Critical,
        _ => State::Unknown,
    }
}

/// One verdict for the cluster: every node's own findings under its name,
/// and each node that does not answer at the `node_down` severity.
pub fn evaluate(status: &ClusterStatus, config: &CheckConfig) -> Verdict {
    let mut findings = Vec::new();
    for node in &status.nodes {
        match &node.summary {
            Some(summary) => {
                let wrong = summary.findings.iter().filter(|f| f.state != "OK");
                findings.extend(wrong.map(|f| Finding {
                    state: state_named(&f.state),
                    text: format!("{}: {}", node.node, f.text),
                }));
                if summary.state != "OK" && summary.findings.is_empty() {
                    findings.push(Finding {
                        state: state_named(&summary.state),
                        text: format!("{}: {}", node.node, summary.state),
                    });
                }
            }
            None => findings.push(Finding {
                state: match config.severity.node_down {
                    Severity::Ok => State::Ok,
                    Severity::Warning => State::Warning,
                    Severity::Critical => State::Critical,
                    Severity::Unknown => State::Unknown,
                },
                text: format!(
                    "{} unreachable ({})",
                    node.node,
                    node.error.as_deref().unwrap_or("no answer")
                ),
            }),
        }
    }
    findings.sort_by_key(|f| std::cmp::Reverse(rank(f.state)));
    let state = findings
        .iter()
        .map(|f| f.state)
        .max_by_key(|s| rank(*s))
        .unwrap_or(State::Ok);
    let answering = status.nodes.iter().filter(|n| n.summary.is_some()).count();
    let ok = status
        .nodes
        .iter()
        .filter(|n| n.summary.as_ref().is_some_and(|s| s.state == "OK"))
        .count();
    let total = status.nodes.len();
    let cluster = status
        .cluster
        .as_deref()
        .map_or_else(String::new, |c| format!("cluster {c}: "));
    Verdict {
        state,
        findings,
        perfdata: vec![
            format!("'nodes_answering'={answering};;;0;{total}"),
            format!("'nodes_ok'={ok};;;0;{total}"),
        ],
        summary: format!("{cluster}{answering}/{total} nodes answer, all OK"),
    }
}

/// Nagios precedence, as `check`: CRITICAL over WARNING over UNKNOWN over OK.
fn rank(state: State) -> u8 {
    match state {
        State::Ok => 0,
        State::Unknown => 1,
        State::Warning => 2,
        State::Critical => 3,
    }
}

fn cell(text: impl Into<String>, tone: Tone) -> Cell {
    Cell {
        text: text.into(),
        tone,
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}

/// The "Cluster nodes" section: per node a title line and its facts; a
/// node that does not answer is shown with why, never left out.
pub fn section(status: &ClusterStatus) -> Section {
    let mut blocks = Vec::new();
    if status.nodes.is_empty() {
        blocks.push(Block::Lines(vec![cell(
            "no cluster nodes known (no cluster.conf naming this node)",
            Tone::Muted,
        )]));
    }
    for node in &status.nodes {
        let name = if node.local {
            format!("{} (this node)", node.node)
        } else {
            node.node.clone()
        };
        let Some(s) = &node.summary else {
            let why = node.error.as_deref().unwrap_or("no answer");
            blocks.push(Block::Lines(vec![cell(
                format!("{name}: UNREACHABLE ({why})"),
                Tone::Bad,
            )]));
            continue;
        };
        let state = state_named(&s.state);
        blocks.push(Block::Lines(vec![cell(
            format!("{name}: {}", s.state),
            Tone::of_state(state),
        )]));
        let stack_tone = match s.stack.as_str() {
            "online" => Tone::Good,
            "OFFLINE" => Tone::Bad,
            _ => Tone::Muted,
        };
        let mounts: Vec<String> = s
            .mounts
            .iter()
            .map(|m| format!("{} {}", m.mountpoint, m.state))
            .collect();
        let mounts_tone = if s.mounts.iter().all(|m| m.state == "ok") {
            Tone::Plain
        } else {
            Tone::Bad
        };
        let peers = match &s.peers {
            None => cell("no peer protocol", Tone::Muted),
            Some(peers) => cell(
                list(
                    &peers
                        .iter()
                        .map(|p| format!("{} {}", p.node, if p.up { "up" } else { "DOWN" }))
                        .collect::<Vec<_>>(),
                ),
                if peers.iter().all(|p| p.up) {
                    Tone::Plain
                } else {
                    Tone::Warn
                },
            ),
        };
        let busy = |items: &[String], tone: Tone| {
            cell(
                list(items),
                if items.is_empty() { Tone::Plain } else { tone },
            )
        };
        blocks.push(Block::Pairs(vec![
            ("stack", cell(&s.stack, stack_tone)),
            ("heartbeat", cell(&s.heartbeat, Tone::Plain)),
            ("mounts", cell(list(&mounts), mounts_tone)),
            ("firing", busy(&s.rules_firing, Tone::Warn)),
            ("gave up", busy(&s.rules_gave_up, Tone::Bad)),
            (
                "maintenance",
                match &s.maintenance {
                    Some(reason) => cell(format!("ON: {reason}"), Tone::Warn),
                    None => cell("off", Tone::Plain),
                },
            ),
            (
                "lease",
                cell(if s.lease_held { "held" } else { "-" }, Tone::Plain),
            ),
            ("peers", peers),
            ("remediation", cell(s.mode.replace('_', "-"), Tone::Plain)),
            ("version", cell(&s.version, Tone::Plain)),
        ]));
    }
    let holders: Vec<&str> = status
        .nodes
        .iter()
        .filter(|n| n.summary.as_ref().is_some_and(|s| s.lease_held))
        .map(|n| n.node.as_str())
        .collect();
    blocks.push(Block::Pairs(vec![(
        "lease holder",
        cell(
            if holders.is_empty() {
                "none".to_string()
            } else {
                holders.join(", ")
            },
            Tone::Plain,
        ),
    )]));
    Section {
        id: "cluster-nodes",
        title: match &status.cluster {
            Some(name) => format!("Cluster nodes ({name})"),
            None => "Cluster nodes".to_string(),
        },
        blocks,
    }
}

/// The `status --cluster` document: the cluster verdict and the section.
pub fn document(status: &ClusterStatus, verdict: Verdict, origin: String) -> Document {
    Document {
        verdict,
        origin,
        sections: vec![section(status)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, state: &str, findings: &[(&str, &str)]) -> ClusterNode {
        ClusterNode {
            node: name.into(),
            reachable: true,
            summary: Some(NodeSummary {
                node: name.into(),
                state: state.into(),
                findings: findings
                    .iter()
                    .map(|(s, t)| FindingView {
                        state: (*s).into(),
                        text: (*t).into(),
                    })
                    .collect(),
                ..NodeSummary::default()
            }),
            ..ClusterNode::default()
        }
    }

    #[test]
    fn an_unreachable_node_is_judged_as_a_node_down_and_never_omitted() {
        let status = ClusterStatus {
            cluster: Some("labclu".into()),
            nodes: vec![
                node("n1", "OK", &[]),
                node(
                    "n2",
                    "WARNING",
                    &[("WARNING", "/mnt/ocfs2 1 duplicate layers")],
                ),
                ClusterNode {
                    node: "n3".into(),
                    error: Some("connect timed out".into()),
                    ..ClusterNode::default()
                },
            ],
        };
        let mut config = CheckConfig::default();
        let verdict = evaluate(&status, &config);
        assert_eq!(verdict.state, State::Critical);
        assert_eq!(
            verdict.line(),
            "OCFS2 CRITICAL - n3 unreachable (connect timed out), n2: /mnt/ocfs2 1 duplicate layers | 'nodes_answering'=2;;;0;3 'nodes_ok'=1;;;0;3"
        );
        config.severity.node_down = Severity::Warning;
        assert_eq!(evaluate(&status, &config).state, State::Warning);
        let text = super::super::text::render(&document(&status, verdict, String::new()), false);
        assert!(
            text.contains("n3: UNREACHABLE (connect timed out)"),
            "{text}"
        );
    }
}
