//! What the alert and dashboard tests need from `alerts/ocfs2.rules.yml`,
//! `alerts/tests/*.yml` and `dashboards/*.json`: the rules, the dashboard
//! queries, and the metric names a PromQL expression refers to.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn rules_file() -> PathBuf {
    repo().join("alerts/ocfs2.rules.yml")
}

/// One alerting or recording rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub alert: Option<String>,
    pub record: Option<String>,
    pub expr: String,
    pub for_: Option<String>,
    pub labels: serde_yaml::Mapping,
    pub annotations: serde_yaml::Mapping,
}

impl Rule {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).and_then(|v| v.as_str())
    }
    pub fn annotation(&self, name: &str) -> Option<&str> {
        self.annotations.get(name).and_then(|v| v.as_str())
    }
}

pub fn load_rules() -> Vec<Rule> {
    let text = std::fs::read_to_string(rules_file()).expect("alerts/ocfs2.rules.yml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("rules file is YAML");
    let mut rules = Vec::new();
    for group in doc["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let text = |key: &str| rule.get(key).and_then(|v| v.as_str()).map(str::to_string);
            let mapping = |key: &str| {
                rule.get(key)
                    .and_then(|v| v.as_mapping())
                    .cloned()
                    .unwrap_or_default()
            };
            rules.push(Rule {
                alert: text("alert"),
                record: text("record"),
                expr: text("expr").expect("every rule has an expr"),
                for_: text("for"),
                labels: mapping("labels"),
                annotations: mapping("annotations"),
            });
        }
    }
    rules
}

/// (dashboard file, panel title, expr) for every panel target of every
/// dashboard, rows' nested panels included.
pub fn dashboard_queries() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for path in dashboard_files() {
        let dashboard = load_json(&path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let mut stack: Vec<&serde_json::Value> = dashboard["panels"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        while let Some(panel) = stack.pop() {
            if let Some(nested) = panel["panels"].as_array() {
                stack.extend(nested.iter());
            }
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    let title = panel["title"].as_str().unwrap_or("").to_string();
                    out.push((name.clone(), title, expr.to_string()));
                }
            }
        }
    }
    out
}

pub fn dashboard_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("dashboards"))
        .expect("dashboards/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

pub fn load_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replaces Grafana's variables by values Prometheus accepts, as Grafana
/// would with "All" selected.
pub fn expand_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "5m")
        .replace("$job", ".+")
        .replace("$instance", ".+")
        .replace("$o2cb_cluster", ".+")
        // No `cluster` label on a single Prometheus: All (.*) matches its absence.
        .replace("$cluster", ".*")
}

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "inf",
    "nan",
    // Aggregations may put `by (...)` before their parentheses.
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// Metric names (and recording-rule names) an expression selects: what is
/// left once strings, label matchers, ranges, label lists and function
/// names are taken out.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut cleaned = String::new();
    let mut chars = expr.chars().peekable();
    // Drop string literals, {...} matchers and [...] ranges.
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
                cleaned.push(' ');
            }
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace > 0 || depth_bracket > 0 => {}
            _ => cleaned.push(c),
        }
    }
    let tokens = tokenize(&cleaned);
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        let next = tokens.get(i + 1).map(String::as_str);
        if matches!(
            token.as_str(),
            "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
        ) && next == Some("(")
        {
            // Skip the label list.
            while i < tokens.len() && tokens[i] != ")" {
                i += 1;
            }
        } else if is_identifier(token)
            && next != Some("(")
            && !KEYWORDS.contains(&token.to_lowercase().as_str())
        {
            names.insert(token.clone());
        }
        i += 1;
    }
    names
}

fn is_identifier(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
}

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.' {
            current.push(c);
        } else {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// Sample names appearing in any golden `/metrics` file.
pub fn golden_sample_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("tests/golden")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension() != Some(std::ffi::OsStr::new("prom")) {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}
