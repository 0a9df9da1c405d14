//! The second half of the status document (`render.rs` has the first): one
//! row per mount point with its storage path underneath, recent kernel
//! events, remediation and the collectors.

use super::model::*;
use super::render::{bytes, make_cell as cell, make_row, seconds, time, Block, Row, Section, Tone};
use super::thresholds::CheckConfig;

pub fn mount_row(volume: &VolumeView, mount: &MountView, thresholds: &CheckConfig) -> Row {
    let name = match (volume.label.is_empty(), volume.uuid.is_empty()) {
        (false, _) => volume.label.clone(),
        (true, false) => volume.uuid.clone(),
        (true, true) => mount
            .expected_source
            .clone()
            .unwrap_or_else(|| "-".to_string()),
    };
    let mut tags = Vec::new();
    let mut states = Vec::new();
    if mount.stuck {
        tags.push("stuck");
        let how_long = mount.stuck_seconds.map(seconds).unwrap_or_default();
        states.push(cell(
            format!("STUCK {how_long}").trim_end().to_string(),
            Tone::Bad,
        ));
    }
    if mount.missing {
        tags.push("missing");
        let from = mount.expected_from.as_deref().unwrap_or("config");
        states.push(cell(format!("MISSING (expected by {from})"), Tone::Bad));
    }
    if mount.error_readonly {
        tags.push("readonly");
        states.push(cell("READ-ONLY after error", Tone::Bad));
    } else if mount.readonly {
        states.push(cell("read-only", Tone::Plain));
    }
    if mount.device_missing {
        tags.push("degraded");
        states.push(cell("device gone", Tone::Warn));
    }
    if mount.mountpoint_deleted {
        tags.push("degraded");
        states.push(cell("mount point deleted", Tone::Warn));
    }
    if mount.shadowed {
        tags.push("degraded");
        states.push(cell("shadowed", Tone::Warn));
    }
    if mount.unstable_device_name {
        states.push(cell("unstable device name", Tone::Warn));
    }
    if states.is_empty() {
        if !mount.mounted {
            states.push(cell("not mounted", Tone::Muted));
        } else if mount.reachable {
            states.push(cell("mounted", Tone::Good));
        } else {
            let why = mount.probe_error.as_deref().unwrap_or("not reachable");
            states.push(cell(format!("mounted, {why}"), Tone::Warn));
        }
    }
    let state_tone = states.iter().map(|c| c.tone).max().unwrap_or(Tone::Plain);
    let state_text: Vec<&str> = states.iter().map(|c| c.text.as_str()).collect();
    let layers = if mount.duplicate_layers > 0 {
        tags.push("degraded");
        cell(
            format!("{} ({} duplicate)", mount.layers, mount.duplicate_layers),
            Tone::Warn,
        )
    } else {
        cell(mount.layers.to_string(), Tone::Plain)
    };
    let space = match (mount.size_bytes, mount.avail_bytes) {
        (Some(size), Some(avail)) => cell(
            format!("{} free of {}", bytes(avail), bytes(size)),
            Tone::Plain,
        ),
        _ => cell("?", Tone::Muted),
    };
    let heartbeat = match &volume.heartbeat {
        Some(region) => match region.ratio {
            Some(ratio) => cell(
                format!(
                    "{:.0}% (max {:.0}%)",
                    ratio * 100.0,
                    region.ratio_max.unwrap_or(ratio) * 100.0
                ),
                if ratio >= thresholds.heartbeat_ratio_critical {
                    Tone::Bad
                } else if ratio >= thresholds.heartbeat_ratio_warning {
                    Tone::Warn
                } else {
                    Tone::Good
                },
            ),
            None => cell(format!("{} ms", region.elapsed_ms), Tone::Plain),
        },
        None => cell("-", Tone::Muted),
    };
    let mut row = make_row(vec![
        cell(&mount.mountpoint, Tone::Plain),
        cell(name, Tone::Plain),
        cell(state_text.join(", "), state_tone),
        layers,
        space,
        heartbeat,
    ]);
    tags.dedup();
    row.tags = tags;
    let mut details = Vec::new();
    let options = mount.options.as_deref().unwrap_or("?");
    if !volume.uuid.is_empty() {
        let device = volume.device.as_deref().unwrap_or("?");
        details.push(cell(
            format!("UUID {} on {device} ({options})", volume.uuid),
            Tone::Muted,
        ));
    } else if let (true, Some(device)) = (mount.mounted, &volume.device) {
        details.push(cell(
            format!("on {device} ({options}), no UUID known"),
            Tone::Muted,
        ));
    } else if let Some(source) = &mount.expected_source {
        details.push(cell(format!("expected from {source}"), Tone::Muted));
    }
    if let Some(region) = &volume.heartbeat {
        let live: Vec<String> = region.live.iter().map(u8::to_string).collect();
        details.push(cell(
            format!("heartbeat region live nodes: {}", live.join(" ")),
            Tone::Muted,
        ));
    }
    if let Some(storage) = &volume.storage {
        details.extend(storage_lines(storage));
    }
    row.details = details;
    row
}

fn storage_lines(storage: &StorageView) -> Vec<super::render::Cell> {
    let mut lines = Vec::new();
    let stall = storage
        .stall_seconds
        .map(|s| format!(", I/O may hang up to {}", seconds(s)))
        .unwrap_or_default();
    lines.push(cell(
        format!(
            "storage: {}{stall}",
            if storage.top.is_empty() {
                "?"
            } else {
                &storage.top
            }
        ),
        Tone::Muted,
    ));
    for map in &storage.maps {
        let queueing = if map.queueing == Some(true) {
            ", QUEUEING I/O"
        } else {
            ""
        };
        let tone = if map.paths_up == 0 {
            Tone::Bad
        } else if map.paths_up < map.paths_total {
            Tone::Warn
        } else {
            Tone::Good
        };
        lines.push(cell(
            format!(
                "  multipath {} ({}) {}/{} paths up{queueing}, wwid {}",
                map.name, map.dm, map.paths_up, map.paths_total, map.wwid
            ),
            tone,
        ));
    }
    for disk in &storage.disks {
        let state = disk.state.as_deref().unwrap_or("?");
        let mut text = format!("  path {} {state}", disk.name);
        let mut tone = match disk.up {
            Some(true) => Tone::Good,
            Some(false) => Tone::Bad,
            None => Tone::Muted,
        };
        if let Some(session) = &disk.session {
            let session_state = session.state.as_deref().unwrap_or("?");
            text.push_str(&format!(
                " via {} {session_state} {} {}",
                session.name, session.target, session.portal
            ));
            if let Some(connection) = &session.connection_state {
                text.push_str(&format!(" (connection {connection})"));
            }
            if let Some(tmo) = session.recovery_tmo_seconds {
                text.push_str(&format!(", recovery_tmo {}", seconds(tmo)));
            }
            if !session.logged_in() {
                tone = Tone::Bad;
            }
        }
        lines.push(cell(text.trim_end().to_string(), tone));
    }
    lines
}

pub fn events_section(overview: &Overview) -> Section {
    let events = &overview.events;
    let mut blocks = Vec::new();
    if events.fence_previous_boot == Some(true) {
        blocks.push(Block::Lines(vec![cell(
            "the previous boot ended in a self-fence",
            Tone::Bad,
        )]));
    }
    if events.recent.is_empty() {
        let text = if events.followed {
            "no OCFS2, o2cb or iSCSI kernel events"
        } else {
            "kernel log not followed"
        };
        blocks.push(Block::Lines(vec![cell(text, Tone::Muted)]));
    } else {
        let rows = events
            .recent
            .iter()
            .map(|event| {
                let tone = match event.event.as_str() {
                    "fence"
                    | "dlm_node_evicted"
                    | "fs_error"
                    | "fs_readonly"
                    | "hb_io_error"
                    | "iscsi_recovery_timeout" => Tone::Bad,
                    "net_connected" => Tone::Good,
                    _ => Tone::Warn,
                };
                let mut row = make_row(vec![
                    cell(
                        event.time.map(time).unwrap_or_else(|| "?".into()),
                        Tone::Plain,
                    ),
                    cell(&event.event, tone),
                    cell(&event.message, Tone::Plain),
                ]);
                row.tone = tone;
                row
            })
            .collect();
        blocks.push(Block::Table {
            headers: vec!["time (UTC)", "event", "message"],
            rows,
        });
    }
    Section {
        id: "events",
        title: "Recent kernel events".into(),
        blocks,
    }
}

pub fn remediation_section(overview: &Overview) -> Section {
    let remediation = &overview.remediation;
    let mode = if remediation.mode == "enforce" {
        cell("enforce", Tone::Plain)
    } else {
        cell("dry-run (decides, never acts)", Tone::Plain)
    };
    let mut pairs = vec![("mode", mode)];
    if remediation.engine_running {
        if let (Some(left), Some(budget)) =
            (remediation.budget_remaining, remediation.budget_per_hour)
        {
            let tone = if left == 0 { Tone::Warn } else { Tone::Plain };
            pairs.push((
                "budget",
                cell(format!("{left} of {budget} actions left this hour"), tone),
            ));
        }
        for hold in &remediation.holds {
            let how_long = hold
                .seconds
                .map(|s| format!(" for {}", seconds(s)))
                .unwrap_or_default();
            pairs.push((
                "held",
                cell(
                    format!("{}{how_long}: {}", hold.kind.as_str(), hold.detail),
                    Tone::Warn,
                ),
            ));
        }
        if remediation.audit_write_errors > 0 {
            pairs.push((
                "audit",
                cell(
                    format!("{} write errors", remediation.audit_write_errors),
                    Tone::Bad,
                ),
            ));
        }
    } else {
        pairs.push((
            "engine",
            cell(
                "no report (no daemon, or before its first tick)",
                Tone::Muted,
            ),
        ));
    }
    let mut blocks = vec![Block::Pairs(pairs)];
    if remediation.engine_running && remediation.rules.is_empty() {
        blocks.push(Block::Lines(vec![cell(
            "no rule pending or firing",
            Tone::Muted,
        )]));
    }
    if !remediation.rules.is_empty() {
        let rows = remediation
            .rules
            .iter()
            .map(|rule| {
                let tone = match rule.state.as_str() {
                    "gave_up" => Tone::Bad,
                    "firing" => Tone::Warn,
                    _ => Tone::Plain,
                };
                let action = match (&rule.action, rule.alert_only) {
                    (_, true) => "alert only".to_string(),
                    (Some(action), false) => action.clone(),
                    (None, false) => "-".to_string(),
                };
                let mut row = make_row(vec![
                    cell(&rule.rule, Tone::Plain),
                    cell(&rule.target, Tone::Plain),
                    cell(&rule.state, tone),
                    cell(action, Tone::Plain),
                    cell(rule.attempts.to_string(), Tone::Plain),
                    cell(rule.last_outcome.as_deref().unwrap_or("-"), Tone::Plain),
                ]);
                if rule.state != "pending" {
                    row.tags.push("firing");
                }
                row.details = vec![cell(&rule.evidence, Tone::Muted)];
                row
            })
            .collect();
        blocks.push(Block::Table {
            headers: vec![
                "rule",
                "target",
                "state",
                "action",
                "attempts",
                "last outcome",
            ],
            rows,
        });
    }
    if !remediation.last_actions.is_empty() {
        let rows = remediation
            .last_actions
            .iter()
            .map(|a| {
                let tone = match a.outcome.as_str() {
                    "success" | "dry_run" => Tone::Plain,
                    "started" => Tone::Muted,
                    _ => Tone::Warn,
                };
                make_row(vec![
                    cell(a.time.replace('T', " "), Tone::Plain),
                    cell(&a.rule, Tone::Plain),
                    cell(&a.target, Tone::Plain),
                    cell(
                        if a.action.is_empty() { "-" } else { &a.action },
                        Tone::Plain,
                    ),
                    cell(&a.outcome, tone),
                ])
            })
            .collect();
        blocks.push(Block::Table {
            headers: vec!["last actions", "rule", "target", "action", "outcome"],
            rows,
        });
    }
    Section {
        id: "remediation",
        title: "Remediation".into(),
        blocks,
    }
}

pub fn collector_section(overview: &Overview) -> Section {
    let ok = overview.collectors.iter().filter(|c| c.ok).count();
    let mut lines = vec![cell(
        format!(
            "{ok} of {} collectors read their sources",
            overview.collectors.len()
        ),
        Tone::Muted,
    )];
    for collector in &overview.collectors {
        if !collector.ok {
            lines.push(cell(
                format!(
                    "{} failed: {}",
                    collector.name,
                    collector.error.as_deref().unwrap_or("no reason given")
                ),
                Tone::Warn,
            ));
        } else if collector.stale {
            lines.push(cell(
                format!("{} still running, showing its last result", collector.name),
                Tone::Warn,
            ));
        }
    }
    if overview.probes_stuck > 0 {
        lines.push(cell(
            format!(
                "{} probe thread{} blocked on hung I/O",
                overview.probes_stuck,
                if overview.probes_stuck == 1 { "" } else { "s" }
            ),
            Tone::Warn,
        ));
    }
    Section {
        id: "collectors",
        title: "Collectors".into(),
        blocks: vec![Block::Lines(lines)],
    }
}
