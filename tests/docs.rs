//! The metric catalogue stays in step with the code: every family that any
//! golden `/metrics` file shows is listed in docs/metrics.md.

use std::collections::BTreeSet;
use std::path::Path;

fn base(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

#[test]
fn every_served_family_is_in_the_metrics_catalogue() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalogue = std::fs::read_to_string(root.join("docs/metrics.md")).unwrap();
    let documented: BTreeSet<&str> = catalogue
        .split('`')
        .filter(|word| word.starts_with("ocfs2_"))
        .map(|word| base(word.split(['{', ' ']).next().unwrap_or(word)))
        .collect();
    let mut served = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("tests/golden")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default();
                served.insert(base(name).to_string());
            }
        }
    }
    assert!(
        served.len() > 50,
        "too few families found: {}",
        served.len()
    );
    let missing: Vec<&String> = served
        .iter()
        .filter(|name| !documented.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "families served but not in docs/metrics.md:\n{}",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
