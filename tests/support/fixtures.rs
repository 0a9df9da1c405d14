//! The fixture scenarios under tests/fixtures/ and what the binary's `--once`
//! prints for each: the one path the golden files and the key-value tables
//! are both checked through, so neither can drift from what an operator sees.

use std::path::{Path, PathBuf};
use std::process::Command;

use ocfs2_watchdog::config::{Config, KernelLogConfig, StateDir};

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Every scenario directory (one with a `rootfs/`), sorted by name.
pub fn scenarios() -> Vec<PathBuf> {
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("tests/fixtures")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("rootfs").is_dir())
        .collect();
    scenarios.sort();
    assert!(!scenarios.is_empty(), "no fixture scenarios found");
    scenarios
}

pub fn name_of(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

/// `ocfs2-watchdog --once --path.rootfs <scenario>/rootfs --config <...>`.
///
/// The config is the scenario's `config.toml` (or the defaults) with two
/// changes a fixture needs, written out as an effective config file: the
/// kernel log is off unless the scenario names a log file (a fixture never
/// follows this machine's /dev/kmsg), and the state directory is a scratch
/// one (no pause file, nothing of this machine's).
pub fn once(dir: &Path) -> String {
    let config_path = dir.join("config.toml");
    let mut config = if config_path.exists() {
        Config::load(&config_path).expect("fixture config must be valid")
    } else {
        Config::default()
    };
    if config.kernel_log.source == KernelLogConfig::default().source {
        config.kernel_log.enabled = false;
    }
    let scratch = tempfile::tempdir().expect("scratch directory");
    config.state_dir = StateDir(scratch.path().join("state"));
    let effective = scratch.path().join("config.toml");
    std::fs::write(&effective, config.to_toml()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .arg("--once")
        .arg("--config")
        .arg(&effective)
        .arg("--path.rootfs")
        .arg(dir.join("rootfs"))
        .args(["--log.level", "error"])
        .output()
        .expect("running ocfs2-watchdog --once");
    assert!(
        output.status.success(),
        "--once failed on {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("--once prints UTF-8")
}
