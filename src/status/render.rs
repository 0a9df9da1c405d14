//! Lays the `Overview` out as a `Document`: the verdict, then titled
//! sections of key/value lines and tables whose rows carry a tone (good,
//! warn, bad) and tags (`stuck`, `down`, `zombie`...). `text.rs` prints a
//! document for a terminal and `html.rs` for a browser, so the command and
//! the page show the same content by construction.

use super::check::{State, Verdict};
use super::model::*;
use super::thresholds::CheckConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tone {
    Plain,
    Muted,
    Good,
    Warn,
    Bad,
}

impl Tone {
    pub fn of_state(state: State) -> Self {
        match state {
            State::Ok => Self::Good,
            State::Warning | State::Unknown => Self::Warn,
            State::Critical => Self::Bad,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Muted => "muted",
            Self::Good => "good",
            Self::Warn => "warn",
            Self::Bad => "bad",
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_are_short() {
        for (value, text) in [
            (0.4, "0s"),
            (40.0, "40s"),
            (125.0, "2m 5s"),
            (3600.0, "1h"),
            (3780.0, "1h 3m"),
            (86400.0 * 3.0 + 3600.0 * 4.0, "3d 4h"),
            (f64::INFINITY, "never"),
        ] {
            assert_eq!(super::seconds(value), text);
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub text: String,
    pub tone: Tone,
}

fn cell(text: impl Into<String>, tone: Tone) -> Cell {
    Cell {
        text: text.into(),
        tone,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The worst tone of the row's cells, for the whole row.
    pub tone: Tone,
    /// What is wrong on the row, as CSS classes (`stuck`, `down`, ...).
    pub tags: Vec<&'static str>,
    pub cells: Vec<Cell>,
    /// Lines under the row (storage path, evidence), indented.
    pub details: Vec<Cell>,
}

impl Row {
    fn new(cells: Vec<Cell>) -> Self {
        let tone = cells.iter().map(|c| c.tone).max().unwrap_or(Tone::Plain);
        Self {
            tone,
            tags: Vec::new(),
            cells,
            details: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// `key: value` pairs on one or a few lines.
    Pairs(Vec<(&'static str, Cell)>),
    Table {
        headers: Vec<&'static str>,
        rows: Vec<Row>,
    },
    Lines(Vec<Cell>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub id: &'static str,
    pub title: String,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub verdict: Verdict,
    /// Where the data came from and when.
    pub origin: String,
    pub sections: Vec<Section>,
}

/// "40s", "2m 5s", "1h 3m", "3d 4h": short enough for a table.
pub fn seconds(value: f64) -> String {
    if !value.is_finite() {
        return "never".to_string();
    }
    let whole = value.max(0.0).round() as u64;
    let (d, h, m, s) = (
        whole / 86400,
        whole % 86400 / 3600,
        whole % 3600 / 60,
        whole % 60,
    );
    let (big, small) = match (d, h, m) {
        (0, 0, 0) => return format!("{s}s"),
        (0, 0, _) => ((m, "m"), (s, "s")),
        (0, _, _) => ((h, "h"), (m, "m")),
        _ => ((d, "d"), (h, "h")),
    };
    if small.0 == 0 {
        format!("{}{}", big.0, big.1)
    } else {
        format!("{}{} {}{}", big.0, big.1, small.0, small.1)
    }
}

fn milliseconds(ms: Option<u32>) -> String {
    ms.map_or("?".to_string(), |ms| seconds(f64::from(ms) / 1000.0))
}

pub fn bytes(value: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = value.max(0.0);
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Unix seconds as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn time(unix: f64) -> String {
    crate::input::rfc3339(unix.max(0.0))
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
}

fn yes_no(value: Option<bool>, yes: &str, no: &str, no_tone: Tone) -> Cell {
    match value {
        Some(true) => cell(yes, Tone::Good),
        Some(false) => cell(no, no_tone),
        None => cell("?", Tone::Muted),
    }
}

pub fn document(
    overview: &Overview,
    verdict: Verdict,
    origin: String,
    thresholds: &CheckConfig,
) -> Document {
    let mut sections = vec![cluster_section(overview), node_section(overview)];
    sections.push(volume_section(overview, thresholds));
    sections.push(super::sections::events_section(overview));
    sections.push(super::sections::remediation_section(overview));
    sections.push(super::sections::collector_section(overview));
    Document {
        verdict,
        origin,
        sections,
    }
}

fn cluster_section(overview: &Overview) -> Section {
    let Some(cluster) = &overview.cluster else {
        return Section {
            id: "cluster",
            title: "Cluster".into(),
            blocks: vec![Block::Lines(vec![cell(
                "no o2cb cluster registered and none configured",
                Tone::Muted,
            )])],
        };
    };
    let timeout = match (cluster.heartbeat_timeout_seconds, cluster.dead_threshold) {
        (Some(t), Some(d)) => format!("{} (dead_threshold {d})", seconds(t)),
        _ => "?".to_string(),
    };
    let local = match (cluster.local_node, &cluster.local_name) {
        (Some(n), Some(name)) => format!("{n} ({name})"),
        (Some(n), None) => n.to_string(),
        _ => "?".to_string(),
    };
    let mut pairs = vec![
        ("name", cell(&cluster.name, Tone::Plain)),
        (
            "stack",
            if cluster.online {
                cell("online", Tone::Good)
            } else if !cluster.expected {
                cell("offline (not configured to run)", Tone::Plain)
            } else {
                cell("OFFLINE", Tone::Bad)
            },
        ),
    ];
    if cluster.online {
        pairs.extend([
            (
                "heartbeat",
                cell(
                    cluster.heartbeat_mode.as_deref().unwrap_or("?"),
                    Tone::Plain,
                ),
            ),
            ("fence timeout", cell(timeout, Tone::Plain)),
            (
                "idle",
                cell(milliseconds(cluster.idle_timeout_ms), Tone::Plain),
            ),
            (
                "keepalive",
                cell(milliseconds(cluster.keepalive_delay_ms), Tone::Plain),
            ),
            (
                "reconnect",
                cell(milliseconds(cluster.reconnect_delay_ms), Tone::Plain),
            ),
            (
                "fence method",
                cell(cluster.fence_method.as_deref().unwrap_or("?"), Tone::Plain),
            ),
            ("this node", cell(local, Tone::Plain)),
        ]);
    }
    let mut blocks = vec![Block::Pairs(pairs)];
    let mut lines = Vec::new();
    for drift in &cluster.drift {
        lines.push(cell(
            format!("drift {}: {}", drift.setting, drift.detail),
            Tone::Warn,
        ));
    }
    for invariant in &cluster.invariants_violated {
        lines.push(cell(
            format!(
                "{}: {} is not more than {}",
                invariant.check,
                seconds(invariant.larger_seconds),
                seconds(invariant.smaller_seconds)
            ),
            Tone::Warn,
        ));
    }
    if lines.is_empty() {
        lines.push(cell("no configuration drift", Tone::Muted));
    }
    blocks.push(Block::Lines(lines));
    Section {
        id: "cluster",
        title: "Cluster".into(),
        blocks,
    }
}

fn node_section(overview: &Overview) -> Section {
    let rows: Vec<Row> = overview.nodes.iter().map(node_row).collect();
    let blocks = if rows.is_empty() {
        vec![Block::Lines(vec![cell(
            "no nodes in configfs",
            Tone::Muted,
        )])]
    } else {
        vec![Block::Table {
            headers: vec!["#", "name", "heartbeat", "disk slot", "o2net", "dlm"],
            rows,
        }]
    };
    Section {
        id: "nodes",
        title: "Nodes".into(),
        blocks,
    }
}

fn node_row(node: &NodeView) -> Row {
    let disk = match &node.disk {
        None => cell("not read", Tone::Muted),
        Some(d) if !d.written => cell("never written", Tone::Muted),
        Some(d) if d.stopped => cell("stopped cleanly", Tone::Muted),
        Some(d) if d.active => cell(format!("active, {}", seconds(d.age_seconds)), Tone::Good),
        Some(d) if d.age_known => cell(format!("stale {}", seconds(d.age_seconds)), Tone::Warn),
        Some(_) => cell("written", Tone::Plain),
    };
    let name = if node.local {
        format!("{} (this node)", node.name)
    } else {
        node.name.clone()
    };
    let connected = if node.local {
        cell("self", Tone::Muted)
    } else {
        yes_no(node.connected, "connected", "NOT CONNECTED", Tone::Bad)
    };
    let mut row = Row::new(vec![
        cell(node.number.to_string(), Tone::Plain),
        cell(name, Tone::Plain),
        yes_no(node.heartbeat_live, "live", "NOT LIVE", Tone::Bad),
        disk,
        connected,
        yes_no(node.dlm_member, "member", "NOT MEMBER", Tone::Bad),
    ]);
    if node.is_down() {
        row.tags.push("down");
    }
    if node.zombie {
        row.tags.push("zombie");
        row.tone = Tone::Bad;
    }
    if !node.mismatches.is_empty() {
        row.tags.push("mismatch");
    }
    row.details = node
        .mismatches
        .iter()
        .map(|m| cell(m, if node.zombie { Tone::Bad } else { Tone::Warn }))
        .collect();
    row
}

fn volume_section(overview: &Overview, thresholds: &CheckConfig) -> Section {
    let mut rows = Vec::new();
    for volume in &overview.volumes {
        for mount in &volume.mounts {
            rows.push(super::sections::mount_row(volume, mount, thresholds));
        }
    }
    let blocks = if rows.is_empty() {
        vec![Block::Lines(vec![cell(
            "no OCFS2 mounts and none expected",
            Tone::Muted,
        )])]
    } else {
        vec![Block::Table {
            headers: vec![
                "mount point",
                "volume",
                "state",
                "layers",
                "space",
                "heartbeat",
            ],
            rows,
        }]
    };
    Section {
        id: "volumes",
        title: "Volumes".into(),
        blocks,
    }
}

pub(super) fn make_cell(text: impl Into<String>, tone: Tone) -> Cell {
    cell(text, tone)
}

pub(super) fn make_row(cells: Vec<Cell>) -> Row {
    Row::new(cells)
}
