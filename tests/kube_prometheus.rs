//! The kube-prometheus / Helm manifests are generated from alerts/ and
//! dashboards/ by deploy/kubernetes/generate.py: they must be in step (the
//! script's --check, and a copy with one alert changed must fail it), hold
//! exactly the rule groups and dashboards, carry the labels the Operator and
//! the Grafana sidecar select on, and pass the checks the sources pass
//! (promtool on the embedded rules, kubernetes-validate on the ConfigMap).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;
use support::{have_command, require};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg(repo().join("deploy/kubernetes/generate.py"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("python3 runs")
}

fn yaml(path: &Path) -> Value {
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn generated_manifests_are_in_step_with_alerts_and_dashboards() {
    let output = generate(&repo(), &["--check"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn check_fails_when_an_alert_changes_without_regenerating() {
    let copy = tempfile::tempdir().unwrap();
    for dir in ["alerts", "dashboards", "deploy/kubernetes"] {
        std::fs::create_dir_all(copy.path().join(dir)).unwrap();
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, copy.path().join(dir).join(path.file_name().unwrap()))
                    .unwrap();
            }
        }
    }
    assert!(generate(copy.path(), &["--check"]).status.success());
    let rules = copy.path().join("alerts/ocfs2.rules.yml");
    let text = std::fs::read_to_string(&rules).unwrap();
    std::fs::write(&rules, text.replacen("for: 2m", "for: 3m", 1)).unwrap();
    let output = generate(copy.path(), &["--check"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("prometheusrule.yaml"));
    let dashboard = copy.path().join("dashboards/ocfs2-remediation.json");
    let text = std::fs::read_to_string(&dashboard).unwrap();
    std::fs::write(&dashboard, text.replacen("Enforcing", "Enforced", 1)).unwrap();
    assert!(generate(copy.path(), &[]).status.success());
    assert!(generate(copy.path(), &["--check"]).status.success());
}

#[test]
fn prometheusrule_holds_every_rule_group() {
    let rule = yaml(&repo().join("deploy/kubernetes/prometheusrule.yaml"));
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    let mut groups = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("alerts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".rules.yml"))
        .collect();
    files.sort();
    for file in files {
        groups.extend(yaml(&file)["groups"].as_sequence().unwrap().clone());
    }
    assert_eq!(rule["spec"]["groups"].as_sequence().unwrap(), &groups);
    // The embedded rules pass promtool as the source does.
    if require(have_command("promtool"), "promtool (Debian: prometheus)") {
        let dir = tempfile::tempdir().unwrap();
        let extracted = dir.path().join("rules.yml");
        let mut doc = serde_norway::Mapping::new();
        doc.insert("groups".into(), rule["spec"]["groups"].clone());
        std::fs::write(&extracted, serde_norway::to_string(&doc).unwrap()).unwrap();
        let output = Command::new("promtool")
            .args(["check", "rules"])
            .arg(&extracted)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

#[test]
fn dashboards_configmap_is_labelled_for_the_grafana_sidecar() {
    let path = repo().join("deploy/kubernetes/grafana-dashboards.yaml");
    let map = yaml(&path);
    assert_eq!(map["kind"], "ConfigMap");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    let data = map["data"].as_mapping().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(repo().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    let keys: Vec<String> = data
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, names);
    for (name, text) in data {
        let name = name.as_str().unwrap();
        let embedded: serde_json::Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
        let source: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(repo().join("dashboards").join(name)).unwrap(),
        )
        .unwrap();
        assert_eq!(embedded, source, "{name}");
    }
    // A ConfigMap is a core kind: the schema check applies.
    if require(
        have_command("kubernetes-validate"),
        "kubernetes-validate (pip install kubernetes-validate)",
    ) {
        let output = Command::new("kubernetes-validate")
            .args(["--strict", "--quiet"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

#[test]
fn multi_cluster_output_shows_the_cluster_variable() {
    let output = generate(&repo(), &["--multi-cluster"]);
    assert!(output.status.success());
    let map: Value = serde_norway::from_slice(&output.stdout).unwrap();
    for (name, text) in map["data"].as_mapping().unwrap() {
        let dashboard: serde_json::Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
        let cluster = dashboard["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "cluster")
            .unwrap_or_else(|| panic!("{name:?}: no cluster variable"));
        assert_eq!(cluster["hide"], 0, "{name:?}");
    }
}

/// Provisioned dashboards: read-only, every panel with a unit and a
/// description, every query filtered by the `cluster` variable and keeping
/// `cluster` in its aggregations.
#[test]
fn dashboards_are_provisionable_and_multi_cluster() {
    for entry in std::fs::read_dir(repo().join("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(dashboard["editable"], false, "{name}");
        let cluster = dashboard["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "cluster")
            .unwrap_or_else(|| panic!("{name}: no cluster variable"));
        assert_eq!(cluster["hide"], 2, "{name}: hidden for single-site use");
        assert_eq!(
            cluster["allValue"], ".*",
            "{name}: All must match series without the label"
        );
        for panel in dashboard["panels"].as_array().unwrap() {
            if panel["type"] == "row" {
                continue;
            }
            let title = panel["title"].as_str().unwrap();
            assert!(
                panel["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{name}: {title}: no description"
            );
            assert!(
                panel["fieldConfig"]["defaults"]["unit"]
                    .as_str()
                    .is_some_and(|u| !u.is_empty()),
                "{name}: {title}: no unit"
            );
            for target in panel["targets"].as_array().into_iter().flatten() {
                let Some(expr) = target["expr"].as_str() else {
                    continue;
                };
                if expr.contains("job=~\"$job\"") {
                    assert!(
                        expr.contains("cluster=~\"$cluster\""),
                        "{name}: {title}: {expr}"
                    );
                }
                for (i, _) in expr.match_indices("by (") {
                    assert!(
                        expr[i..].starts_with("by (cluster"),
                        "{name}: {title}: aggregation drops cluster: {expr}"
                    );
                }
            }
        }
    }
}
