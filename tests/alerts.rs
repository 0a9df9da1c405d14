//! The alerting rules, their promtool unit tests, the runbook and the
//! dashboards, checked together: `promtool check rules` / `test rules`
//! (Debian package `prometheus`), every alert well-formed, unit-tested both
//! firing and silent, documented in docs/runbooks.md, and every metric an
//! alert, recording rule or dashboard query names present in a golden
//! `/metrics` file, so a rename cannot silently break them.

#[path = "support/promql.rs"]
mod promql;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use promql::{dashboard_queries, golden_sample_names, load_rules, metric_names, repo};

/// Series Prometheus makes itself rather than scraping them.
const SYNTHETIC: &[&str] = &["up", "ALERTS", "ALERTS_FOR_STATE"];

fn promtool_available() -> bool {
    support::require(
        support::have_command("promtool"),
        "promtool (apt-get install prometheus)",
    )
}

fn run_promtool(args: &[&str]) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("running promtool");
    assert!(
        output.status.success(),
        "promtool {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn unit_test_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("alerts/tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| {
            p.strip_prefix(repo())
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    files.sort();
    files
}

#[test]
fn promtool_checks_the_rules() {
    if promtool_available() {
        run_promtool(&["check", "rules", "alerts/ocfs2.rules.yml"]);
    }
}

#[test]
fn promtool_unit_tests_pass() {
    if !promtool_available() {
        return;
    }
    let files = unit_test_files();
    assert!(!files.is_empty(), "no alerts/tests/*.yml");
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(String::as_str));
    run_promtool(&args);
}

#[test]
fn every_alert_is_well_formed() {
    let runbook = std::fs::read_to_string(repo().join("docs/runbooks.md")).unwrap();
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    let base = "https://github.com/ocfs2-watchdog/ocfs2-watchdog/blob/main/docs/runbooks.md#";
    let mut seen = BTreeSet::new();
    for rule in load_rules() {
        let Some(name) = rule.alert.as_deref() else {
            continue;
        };
        assert!(seen.insert(name.to_string()), "{name} defined twice");
        assert!(
            name.starts_with("Ocfs2")
                && name.chars().all(|c| c.is_ascii_alphanumeric())
                && name[5..].starts_with(|c: char| c.is_ascii_uppercase()),
            "{name}: alert names are CamelCase with the Ocfs2 prefix"
        );
        assert!(
            matches!(
                rule.label("severity"),
                Some("critical" | "warning" | "info")
            ),
            "{name}: severity must be critical, warning or info"
        );
        let summary = rule.annotation("summary").unwrap_or_default();
        assert!(
            summary.ends_with('.') && !summary.contains("{{"),
            "{name}: summary must be one plain sentence"
        );
        let description = rule.annotation("description").unwrap_or_default();
        assert!(
            description.contains("{{"),
            "{name}: description must be templated with labels or the value"
        );
        let anchor = name.to_lowercase();
        assert_eq!(
            rule.annotation("runbook_url"),
            Some(format!("{base}{anchor}").as_str()),
            "{name}: runbook_url"
        );
        assert!(
            anchors.contains(&anchor),
            "{name}: docs/runbooks.md has no `## {name}` section"
        );
    }
    assert!(seen.len() >= 30, "only {} alerts", seen.len());
    // Every runbook section belongs to an alert.
    let runbook_alerts: BTreeSet<String> = anchors
        .into_iter()
        .filter(|a| a.starts_with("ocfs2"))
        .collect();
    let alert_anchors: BTreeSet<String> = seen.iter().map(|a| a.to_lowercase()).collect();
    assert_eq!(runbook_alerts, alert_anchors, "runbook sections vs alerts");
}

/// Every alert has a unit test where it fires (with labels and annotations)
/// and one where it stays silent (below threshold or before `for:`).
#[test]
fn every_alert_has_firing_and_silent_unit_tests() {
    let mut firing: BTreeMap<String, usize> = BTreeMap::new();
    let mut silent: BTreeMap<String, usize> = BTreeMap::new();
    for file in unit_test_files() {
        let text = std::fs::read_to_string(repo().join(&file)).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        for test in doc["tests"].as_sequence().unwrap() {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = case["alertname"].as_str().unwrap().to_string();
                let expected = case["exp_alerts"].as_sequence().map_or(0, |a| a.len());
                if expected == 0 {
                    *silent.entry(name).or_default() += 1;
                } else {
                    for alert in case["exp_alerts"].as_sequence().unwrap() {
                        assert!(
                            alert["exp_annotations"]["description"].is_string()
                                && alert["exp_labels"]["severity"].is_string(),
                            "{file}: {name} must check labels and annotations"
                        );
                    }
                    *firing.entry(name).or_default() += 1;
                }
            }
        }
    }
    for rule in load_rules() {
        if let Some(name) = rule.alert {
            assert!(
                firing.contains_key(&name),
                "{name}: no test shows it firing"
            );
            assert!(
                silent.contains_key(&name),
                "{name}: no test shows it silent"
            );
        }
    }
}

fn known_metric(name: &str, golden: &BTreeSet<String>, recorded: &BTreeSet<String>) -> bool {
    golden.contains(name) || recorded.contains(name) || SYNTHETIC.contains(&name)
}

#[test]
fn every_metric_in_rules_and_dashboards_exists_in_a_golden_file() {
    let golden = golden_sample_names();
    let rules = load_rules();
    let recorded: BTreeSet<String> = rules.iter().filter_map(|r| r.record.clone()).collect();
    let mut unknown = Vec::new();
    for rule in &rules {
        let what = rule.alert.clone().or(rule.record.clone()).unwrap();
        for name in metric_names(&rule.expr) {
            if !known_metric(&name, &golden, &recorded) {
                unknown.push(format!("rule {what}: {name}"));
            }
        }
    }
    let queries = dashboard_queries();
    assert!(queries.len() > 20, "dashboards have too few queries");
    for (file, panel, expr) in queries {
        for name in metric_names(&expr) {
            if !known_metric(&name, &golden, &recorded) {
                unknown.push(format!("{file} panel {panel:?}: {name}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metric names in no golden file:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn metric_names_skip_functions_labels_and_keywords() {
    let names = metric_names(
        r#"max by (job, instance) (rate(a_total{x="b c"}[5m])) / on (instance) group_left () b_seconds offset 15m > 0.5 and c:rec:ratio"#,
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(names, ["a_total", "b_seconds", "c:rec:ratio"]);
}

#[test]
fn dashboards_are_importable_and_parameterised() {
    let mut uids = BTreeSet::new();
    for path in promql::dashboard_files() {
        let name = path.display().to_string();
        let dashboard = promql::load_json(&path);
        let uid = dashboard["uid"].as_str().expect("uid");
        assert!(
            uid.starts_with("ocfs2-") && uid.len() <= 40,
            "{name}: stable uid"
        );
        assert!(uids.insert(uid.to_string()), "{name}: duplicate uid");
        assert!(
            dashboard["schemaVersion"].as_u64().unwrap_or(0) >= 39,
            "{name}: schemaVersion"
        );
        let variables: BTreeMap<&str, &serde_json::Value> = dashboard["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap(), v))
            .collect();
        let datasource = variables.get("datasource").expect("datasource variable");
        assert_eq!(datasource["type"], "datasource", "{name}");
        assert_eq!(datasource["query"], "prometheus", "{name}");
        for variable in ["job", "instance", "o2cb_cluster"] {
            assert!(variables.contains_key(variable), "{name}: no ${variable}");
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("\"uid\": \"prometheus\"") && !text.contains("DS_PROMETHEUS"),
            "{name}: use the ${{datasource}} variable"
        );
    }
    assert_eq!(uids.len(), 3, "cluster overview, node detail, remediation");
    for (file, panel, expr) in dashboard_queries() {
        assert!(
            expr.contains("$job") && expr.contains("$instance") || expr.starts_with("count(ALERTS"),
            "{file} panel {panel:?}: filter by $job and $instance: {expr}"
        );
    }
}
