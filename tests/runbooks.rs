//! The runbooks cannot drift from the rules: the "what the watchdog will do"
//! paragraph of every alert a rule acts on is generated from that rule's row
//! in docs/rules.md (`UPDATE_RUNBOOKS=1 cargo test --test runbooks` rewrites
//! them), the defaults stated in docs/rules.md are the rule definitions'
//! (`Rule::defaults`), and every runbook whose fix is done by hand starts by
//! checking `ocfs2_watchdog_enforcing` and pausing remediation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ocfs2_watchdog::rules::RULES;

/// Alerts a remediation rule acts on (or decides about), and that rule.
const ALERT_RULES: &[(&str, &str)] = &[
    ("Ocfs2MountStacked", "duplicate_mount_layers"),
    ("Ocfs2MountShadowed", "shadowed_mount"),
    ("Ocfs2MountMissing", "missing_mount"),
    ("Ocfs2O2cbOffline", "o2cb_down"),
    ("Ocfs2IscsiSessionDown", "iscsi_session_failed"),
];

/// Runbooks with nothing to do by hand on the cluster, or where pausing is
/// itself the problem or impossible.
const NOT_MANUAL: &[&str] = &[
    // Maintenance already holds every node: the fix is to end or extend it.
    "Ocfs2MaintenanceLong",
    "Ocfs2WatchdogDown",
    "Ocfs2WatchdogAbsent",
    "Ocfs2RemediationPausedTooLong",
    "Ocfs2RemediationDryRunWhileFiring",
    "Ocfs2RemediationStormBrake",
    "Ocfs2RemediationBudgetExhausted",
];

const BEGIN: &str =
    "<!-- generated from docs/rules.md by tests/runbooks.rs (UPDATE_RUNBOOKS=1 rewrites it) -->";
const END: &str = "<!-- end of generated -->";
const PAUSE_FIRST: &str =
    "**Before you work:** [check enforcing, pause](#before-working-by-hand); resume when done.";

fn path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

struct Row {
    condition: String,
    action: String,
    defaults: String,
}

fn rules_table() -> Vec<(String, Row)> {
    let text = std::fs::read_to_string(path("docs/rules.md")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 4, "{line}");
            (
                cells[0].trim_matches('`').to_string(),
                Row {
                    condition: cells[1].to_string(),
                    action: cells[2].to_string(),
                    defaults: cells[3].to_string(),
                },
            )
        })
        .collect()
}

fn duration(text: &str) -> Duration {
    humantime::parse_duration(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn rules_md_defaults_are_the_rule_definitions() {
    let table = rules_table();
    for rule in RULES {
        let (_, row) = table
            .iter()
            .find(|(name, _)| name == rule.name())
            .unwrap_or_else(|| panic!("{} has no row in docs/rules.md", rule.name()));
        let defaults = rule.defaults();
        for item in row.defaults.split(", ").map(|i| i.trim_matches('*')) {
            let (key, value) = item.split_once(' ').unwrap_or((item, ""));
            match key {
                "enabled" => assert!(defaults.enabled && !defaults.alert_only, "{}", rule.name()),
                "disabled" => assert!(!defaults.enabled, "{}", rule.name()),
                "alert_only" => assert!(defaults.alert_only, "{}", rule.name()),
                "for" => assert_eq!(defaults.r#for, duration(value), "{}", rule.name()),
                "cooldown" => assert_eq!(defaults.cooldown, duration(value), "{}", rule.name()),
                "backoff" => {
                    let (start, max) = value.split_once('→').unwrap_or((value, value));
                    assert_eq!(defaults.backoff, duration(start), "{}", rule.name());
                    if value.contains('→') {
                        assert_eq!(defaults.backoff_max, duration(max), "{}", rule.name());
                    }
                }
                count if count.parse::<u32>().is_ok() => {
                    assert!(value.starts_with("attempt"), "{item}");
                    assert_eq!(
                        defaults.max_attempts,
                        count.parse::<u32>().unwrap(),
                        "{}",
                        rule.name()
                    );
                }
                other => panic!(
                    "{}: unknown default {other:?} in docs/rules.md",
                    rule.name()
                ),
            }
        }
    }
}

fn generated(rule: &str, row: &Row) -> String {
    format!(
        "{BEGIN}\n**Watchdog** (rule `{rule}`, [docs/rules.md](rules.md); only when remediation is enforcing, \
         and never when the rule is alert only; defaults: {defaults}). **Acts when:** {condition}. \
         **Does:** {action}.\n{END}",
        defaults = row.defaults,
        condition = row.condition,
        action = row.action,
    )
}

/// The runbook sections as (alert, text) in file order.
fn sections(text: &str) -> Vec<(String, String)> {
    text.split("\n## ")
        .skip(1)
        .map(|s| {
            let (title, body) = s.split_once('\n').unwrap_or((s, ""));
            (title.trim().to_string(), body.to_string())
        })
        .collect()
}

#[test]
fn remediation_runbooks_say_what_the_rule_does() {
    let runbooks_path = path("docs/runbooks.md");
    let mut text = std::fs::read_to_string(&runbooks_path).unwrap();
    let table = rules_table();
    let update = std::env::var_os("UPDATE_RUNBOOKS").is_some();
    for (alert, rule) in ALERT_RULES {
        let (_, row) = table.iter().find(|(name, _)| name == rule).unwrap();
        let want = generated(rule, row);
        let heading = format!("\n## {alert}\n");
        let at = text
            .find(&heading)
            .unwrap_or_else(|| panic!("no runbook {alert}"));
        let section_end = text[at + heading.len()..]
            .find("\n## ")
            .map_or(text.len(), |i| at + heading.len() + i);
        let section = &text[at..section_end];
        let found = section.find(BEGIN).and_then(|b| {
            section[b..]
                .find(END)
                .map(|e| (at + b, at + b + e + END.len()))
        });
        match found {
            Some((b, e)) if text[b..e] == want => {}
            Some((b, e)) if update => text.replace_range(b..e, &want),
            _ if update => panic!("{alert}: no generated block to rewrite; add {BEGIN} ... {END}"),
            _ => panic!(
                "{alert}: its Watchdog paragraph is not the one generated from docs/rules.md; \
                 run UPDATE_RUNBOOKS=1 cargo test --test runbooks"
            ),
        }
    }
    if update {
        std::fs::write(&runbooks_path, text).unwrap();
    }
}

#[test]
fn manual_runbooks_pause_first() {
    let text = std::fs::read_to_string(path("docs/runbooks.md")).unwrap();
    assert!(
        text.contains("\n## Before working by hand\n"),
        "the shared pause-first section"
    );
    let before = text.split("\n## Before working by hand\n").nth(1).unwrap();
    for needle in [
        "ocfs2_watchdog_enforcing",
        "/pause",
        "/resume",
        "admin_token_file",
    ] {
        assert!(
            before.split("\n## ").next().unwrap().contains(needle),
            "{needle}"
        );
    }
    for (alert, body) in sections(&text) {
        if !alert.starts_with("Ocfs2") || NOT_MANUAL.contains(&alert.as_str()) {
            continue;
        }
        let human = body
            .split("**Human.**")
            .nth(1)
            .unwrap_or_else(|| panic!("{alert} has no Human paragraph"));
        assert!(
            human.trim_start().starts_with(PAUSE_FIRST),
            "{alert}: the Human paragraph must start with {PAUSE_FIRST:?}"
        );
    }
}
