//! `promtool check metrics` (Debian package `prometheus`) on every golden
//! file, so the exposition stays valid and lint-clean.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn promtool_accepts_every_golden_file() {
    if !support::require(
        support::have_command("promtool"),
        "promtool (apt-get install prometheus)",
    ) {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "prom") {
            continue;
        }
        let text = std::fs::read(&path).unwrap();
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&text).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}: {}{}",
            path.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        checked += 1;
    }
    assert!(checked > 0, "no golden files checked");
}
