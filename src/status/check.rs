//! The verdict: findings with a severity, computed from the `Overview` and
//! the `[check]` thresholds, and the one-line Nagios plugin output
//! (`OCFS2 CRITICAL - /srv/data stuck 40s, node 2 not live | 'hb_ratio'=...`)
//! with its exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). `status`
//! shows the same findings and exits with the same code; the `/` page
//! colours the same verdict.

use std::fmt::Write as _;

use super::model::{NodeView, Overview};
use super::render::seconds;
use super::thresholds::{CheckConfig, Severity};

/// Nagios plugin states, with their exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl State {
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Warning => 1,
            Self::Critical => 2,
            Self::Unknown => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
            Self::Unknown => "UNKNOWN",
        }
    }

    fn of(severity: Severity) -> Self {
        match severity {
            Severity::Ok => Self::Ok,
            Severity::Warning => Self::Warning,
            Severity::Critical => Self::Critical,
            Severity::Unknown => Self::Unknown,
        }
    }

    /// Nagios precedence: CRITICAL over WARNING over UNKNOWN over OK.
    fn rank(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Unknown => 1,
            Self::Warning => 2,
            Self::Critical => 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub state: State,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub state: State,
    /// Worst first, then in the order found.
    pub findings: Vec<Finding>,
    /// Nagios performance data, `'label'=value;warn;crit;min;max` each.
    pub perfdata: Vec<String>,
    /// What the OK line says when nothing is wrong.
    pub summary: String,
}

impl Verdict {
    /// The verdict when no snapshot could be had at all.
    pub fn unknown(reason: &str) -> Self {
        Self {
            state: State::Unknown,
            findings: vec![Finding {
                state: State::Unknown,
                text: reason.to_string(),
            }],
            perfdata: Vec::new(),
            summary: String::new(),
        }
    }

    /// The Nagios plugin output line.
    pub fn line(&self) -> String {
        let shown: Vec<&str> = self
            .findings
            .iter()
            .filter(|f| f.state != State::Ok)
            .map(|f| f.text.as_str())
            .collect();
        let text = if shown.is_empty() {
            self.summary.clone()
        } else {
            shown.join(", ")
        };
        let mut line = format!("OCFS2 {} - {}", self.state.as_str(), one_line(&text));
        if !self.perfdata.is_empty() {
            let _ = write!(line, " | {}", self.perfdata.join(" "));
        }
        line
    }
}

/// Host text (paths, kernel messages) must not break the one-line format:
/// `|` starts the performance data and a newline starts long output.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '|' => '/',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

pub fn evaluate(overview: &Overview, config: &CheckConfig) -> Verdict {
    let mut findings = Vec::new();
    let severity = &config.severity;
    let mut push = |severity: Severity, text: String| {
        findings.push(Finding {
            state: State::of(severity),
            text,
        });
    };

    if let Some(cluster) = &overview.cluster {
        if !cluster.online && cluster.expected {
            push(
                severity.stack_offline,
                format!("o2cb cluster {} offline", cluster.name),
            );
        }
        for drift in &cluster.drift {
            push(
                severity.config_drift,
                format!("config drift {}: {}", drift.setting, drift.detail),
            );
        }
        for invariant in &cluster.invariants_violated {
            push(
                severity.timeout_invariant,
                format!(
                    "{} violated ({} <= {})",
                    invariant.check,
                    seconds(invariant.larger_seconds),
                    seconds(invariant.smaller_seconds)
                ),
            );
        }
    }
    let mut worst_ratio: Option<f64> = None;
    let mut mounts = 0;
    let (mut stuck, mut missing, mut paths_down) = (0, 0, 0);
    for volume in &overview.volumes {
        let name = volume.short_name();
        for mount in &volume.mounts {
            let path = &mount.mountpoint;
            mounts += usize::from(mount.mounted);
            if mount.stuck {
                stuck += 1;
                let how_long = mount
                    .stuck_seconds
                    .map(|s| format!(" {}", seconds(s)))
                    .unwrap_or_default();
                push(severity.mount_stuck, format!("{path} stuck{how_long}"));
            }
            if mount.missing {
                missing += 1;
                let from = mount.expected_from.as_deref().unwrap_or("config");
                push(
                    severity.mount_missing,
                    format!("{path} not mounted (expected by {from})"),
                );
            }
            if mount.error_readonly {
                push(
                    severity.mount_error_readonly,
                    format!("{path} read-only after an error"),
                );
            }
            let mut degraded = Vec::new();
            if mount.duplicate_layers > 0 {
                degraded.push(format!("{} duplicate layers", mount.duplicate_layers));
            }
            if mount.shadowed {
                degraded.push("shadowed".to_string());
            }
            if mount.device_missing {
                degraded.push("device gone".to_string());
            }
            if mount.mountpoint_deleted {
                degraded.push("mount point deleted".to_string());
            }
            if !degraded.is_empty() {
                push(
                    severity.mount_degraded,
                    format!("{path} {}", degraded.join(", ")),
                );
            }
        }
        if let Some(region) = &volume.heartbeat {
            if let Some(ratio) = region.ratio {
                worst_ratio = Some(worst_ratio.map_or(ratio, |w: f64| w.max(ratio)));
                let level = if ratio >= config.heartbeat_ratio_critical {
                    Some(Severity::Critical)
                } else if ratio >= config.heartbeat_ratio_warning {
                    Some(Severity::Warning)
                } else {
                    None
                };
                if let Some(level) = level {
                    push(
                        level,
                        format!(
                            "heartbeat of {name} at {:.0}% of the fence timeout",
                            ratio * 100.0
                        ),
                    );
                }
            }
        }
        if let Some(storage) = &volume.storage {
            let down: Vec<String> = storage
                .disks
                .iter()
                .filter(|d| {
                    d.up == Some(false) || d.session.as_ref().is_some_and(|s| !s.logged_in())
                })
                .map(|d| match &d.session {
                    Some(s) => format!(
                        "{} ({} {})",
                        d.name,
                        s.name,
                        s.state.as_deref().unwrap_or("state unknown")
                    ),
                    None => d.name.clone(),
                })
                .collect();
            paths_down += down.len();
            let mounted = volume.mounts.iter().any(|m| m.mounted);
            if !down.is_empty() && down.len() == storage.disks.len() && mounted {
                push(
                    severity.storage_dead,
                    format!("{name} has no usable path: {}", down.join(", ")),
                );
            } else if !down.is_empty() {
                push(
                    severity.storage_path_down,
                    format!("{name} path down: {}", down.join(", ")),
                );
            }
        }
    }
    for node in &overview.nodes {
        if node.zombie {
            push(
                severity.zombie,
                format!(
                    "node {} zombie: {}",
                    node_name(node),
                    node.mismatches.join("; ")
                ),
            );
        } else if node.is_down() {
            push(
                severity.node_down,
                format!("node {} not live", node_name(node)),
            );
        }
    }
    let recent_events = recent_kernel_events(overview, config);
    if !recent_events.is_empty() {
        push(
            severity.kernel_events,
            format!(
                "{} kernel event{} in the last {} ({})",
                recent_events.len(),
                if recent_events.len() == 1 { "" } else { "s" },
                seconds(config.kernel_events_window.as_secs_f64()),
                distinct(&recent_events).join(", ")
            ),
        );
    }
    let remediation = &overview.remediation;
    let mut firing = 0;
    for rule in &remediation.rules {
        match rule.state.as_str() {
            "firing" => {
                firing += 1;
                push(
                    severity.rule_firing,
                    format!("rule {} firing on {}", rule.rule, rule.target),
                );
            }
            "gave_up" => {
                firing += 1;
                push(
                    severity.rule_gave_up,
                    format!("rule {} gave up on {}", rule.rule, rule.target),
                );
            }
            _ => {}
        }
    }
    for hold in &remediation.holds {
        let long_enough = match hold.kind {
            super::model::HoldKind::Paused => hold
                .seconds
                .is_some_and(|s| s >= config.paused_warning_after.as_secs_f64()),
            super::model::HoldKind::StormBrake => true,
            // As Ocfs2WatchdogLeaseContended: waiting a while is the
            // lease doing its job, half an hour is a stuck holder.
            super::model::HoldKind::Lease => hold.seconds.is_some_and(|s| s >= 1800.0),
        };
        if long_enough {
            let how_long = hold
                .seconds
                .map(|s| format!(" for {}", seconds(s)))
                .unwrap_or_default();
            push(
                severity.remediation_held,
                format!("remediation {}{how_long}", hold.kind.as_str()),
            );
        }
    }
    for collector in overview.collectors.iter().filter(|c| !c.ok) {
        push(
            severity.collector_failed,
            format!(
                "collector {} failed ({})",
                collector.name,
                collector.reason.as_deref().unwrap_or("no reason given")
            ),
        );
    }

    findings.sort_by_key(|f| std::cmp::Reverse(f.state.rank()));
    let state = findings
        .iter()
        .map(|f| f.state)
        .max_by_key(|s| s.rank())
        .unwrap_or(State::Ok);
    let live = overview
        .nodes
        .iter()
        .filter(|n| n.heartbeat_live == Some(true))
        .count();
    let mut perfdata = Vec::new();
    if let Some(ratio) = worst_ratio {
        perfdata.push(format!(
            "'hb_ratio'={ratio:.2};{};{};0;1",
            config.heartbeat_ratio_warning, config.heartbeat_ratio_critical
        ));
    }
    if !overview.nodes.is_empty() {
        perfdata.push(format!("'nodes_live'={live};;;0;{}", overview.nodes.len()));
    }
    perfdata.extend([
        format!("'mounts'={mounts};;;0"),
        format!("'mounts_stuck'={stuck};;0;0"),
        format!("'mounts_missing'={missing};;0;0"),
        format!("'paths_down'={paths_down};;;0"),
        format!("'kernel_events'={};;;0", recent_events.len()),
        format!("'rules_firing'={firing};;;0"),
    ]);
    Verdict {
        state,
        findings,
        perfdata,
        summary: ok_summary(overview, live, mounts),
    }
}

fn node_name(node: &NodeView) -> String {
    if node.name.is_empty() {
        node.number.to_string()
    } else {
        format!("{} ({})", node.number, node.name)
    }
}

fn recent_kernel_events<'a>(overview: &'a Overview, config: &CheckConfig) -> Vec<&'a str> {
    let since = overview.taken_at_unix - config.kernel_events_window.as_secs_f64();
    overview
        .events
        .recent
        .iter()
        .filter(|e| e.time.is_some_and(|t| t >= since))
        .filter(|e| config.kernel_events.contains(&e.event))
        .map(|e| e.event.as_str())
        .collect()
}

fn distinct<'a>(events: &[&'a str]) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::new();
    for event in events {
        if !names.contains(event) {
            names.push(event);
        }
    }
    names
}

fn ok_summary(overview: &Overview, live: usize, mounts: usize) -> String {
    let mut parts = Vec::new();
    match &overview.cluster {
        Some(cluster) if !cluster.online && !cluster.expected => parts.push(format!(
            "no cluster configured (o2cb cluster {} not enabled)",
            cluster.name
        )),
        Some(cluster) => parts.push(format!(
            "cluster {} online, {live}/{} nodes live",
            cluster.name,
            overview.nodes.len()
        )),
        None => parts.push("no o2cb cluster configured".to_string()),
    }
    parts.push(format!(
        "{mounts} volume mount{} up",
        if mounts == 1 { "" } else { "s" }
    ));
    parts.push(format!(
        "remediation {}",
        overview.remediation.mode.replace('_', "-")
    ));
    parts.join(", ")
}
