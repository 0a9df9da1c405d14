//! The metric catalogue stays in step with the code, both ways: every family
//! that any golden `/metrics` file shows is listed in docs/metrics.md, and
//! every family listed there is served by some golden (or, where no fixture
//! tree can show it, by the test named in `NO_FIXTURE_CAN_SHOW`).

use std::collections::BTreeSet;
use std::path::Path;

/// Families that need the live host: a mount the probe can reach (a fixture
/// tree's mounts exist in no namespace) or dmsetup, which runs only against
/// the host root. Each names the test that shows it served.
const NO_FIXTURE_CAN_SHOW: &[(&str, &str)] = &[
    ("ocfs2_mount_size_bytes", "tests/mount_namespace.rs"),
    ("ocfs2_mount_avail_bytes", "tests/mount_namespace.rs"),
    (
        "ocfs2_multipath_map_queueing",
        "src/collector/storage/tests.rs",
    ),
    // Only while maintenance is on, which a fixture's dry-run never sets.
    ("ocfs2_watchdog_maintenance_info", "tests/maintenance.rs"),
    // Per peer: a fixture has no peer daemons to reach.
    ("ocfs2_watchdog_cluster_peer_up", "tests/cluster_peers.rs"),
    // The HTTP server's own counters: a fixture's `--once` serves nothing.
    (
        "ocfs2_watchdog_http_requests",
        "tests/exporter_conventions.rs",
    ),
    (
        "ocfs2_watchdog_http_scrapes_refused",
        "tests/exporter_conventions.rs",
    ),
    (
        "ocfs2_watchdog_http_connections_open",
        "tests/http_abuse.rs",
    ),
    ("ocfs2_watchdog_http_connections_max", "tests/http_abuse.rs"),
    (
        "ocfs2_watchdog_http_connections_refused",
        "tests/http_abuse.rs",
    ),
    (
        "ocfs2_watchdog_http_connections_timed_out",
        "tests/http_abuse.rs",
    ),
];

fn base(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn documented() -> BTreeSet<String> {
    let catalogue = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    catalogue
        .split('`')
        .filter(|word| word.starts_with("ocfs2_"))
        .map(|word| base(word.split(['{', ' ']).next().unwrap_or(word)).to_string())
        .collect()
}

fn served() -> BTreeSet<String> {
    let mut served = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("tests/golden")).unwrap() {
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
    served
}

#[test]
fn every_served_family_is_in_the_metrics_catalogue() {
    let documented = documented();
    let missing: Vec<String> = served()
        .into_iter()
        .filter(|name| !documented.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "families served but not in docs/metrics.md:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_documented_family_is_served() {
    let served = served();
    let mut missing = Vec::new();
    for name in documented() {
        if served.contains(&name) {
            continue;
        }
        match NO_FIXTURE_CAN_SHOW
            .iter()
            .find(|(family, _)| *family == name)
        {
            Some((_, test)) => {
                let text = std::fs::read_to_string(root().join(test)).unwrap();
                assert!(
                    text.contains(name.as_str()),
                    "{test} is said to show {name} but never names it"
                );
            }
            None => missing.push(name),
        }
    }
    assert!(
        missing.is_empty(),
        "families in docs/metrics.md that no golden serves (add a fixture that shows them):\n{}",
        missing.join("\n")
    );
    for (family, _) in NO_FIXTURE_CAN_SHOW {
        assert!(
            !served.contains(*family),
            "{family} is served by a golden now: drop it from NO_FIXTURE_CAN_SHOW"
        );
    }
}
