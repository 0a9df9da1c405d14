//! The binary's flags: `--check-config`, `--once`, and running with no
//! configuration file at all.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

fn watchdog() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn check_config_prints_the_effective_defaults() {
    let output = watchdog().arg("--check-config").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("interval = \"2s\""), "{text}");
    assert!(text.contains("listen_address = \"0.0.0.0:9784\""), "{text}");
}

#[test]
fn check_config_names_the_bad_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    for (content, expected) in [
        (
            "[mounts]\nprobe_timeot = \"5s\"\n",
            "unknown field `probe_timeot`",
        ),
        ("[sampler]\ninterval = \"often\"\n", "interval"),
        (
            "[mounts]\nprobe_timeout = \"30s\"\n",
            "sampler.collector_timeout",
        ),
        ("not toml at all [", "config.toml"),
    ] {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, content).unwrap();
        let output = watchdog()
            .arg("--config")
            .arg(&path)
            .arg("--check-config")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{content}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(expected), "{content}: {stderr}");
    }
    let output = watchdog()
        .args(["--config", "/nonexistent.toml", "--check-config"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn once_prints_one_snapshot_of_a_fixture_root() {
    let output = watchdog()
        .arg("--once")
        .arg("--path.rootfs")
        .arg(fixture("mounts-stacked").join("rootfs"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("ocfs2_mount_stacked{mountpoint=\"/mnt/ocfs2\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE ocfs2_watchdog_probe_stuck gauge"),
        "{text}"
    );
}

#[test]
fn runs_with_the_defaults_but_its_state_and_port() {
    // The README's run command is the binary alone; here every default
    // holds but the two that would touch the host: the state directory
    // (/var/lib/ocfs2-watchdog) and the port (9784), which come from a
    // scratch directory and the OS.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("state_dir = \"{}\"\n", dir.path().join("state").display()),
    )
    .unwrap();
    let mut daemon = watchdog()
        .args(["--config", config.to_str().unwrap()])
        .args(["--web.listen-address", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let address = support::listen::bound_address(&mut daemon);
    let started = Instant::now();
    let mut ready = false;
    while started.elapsed() < Duration::from_secs(15) && !ready {
        ready = support::http_get(&address, "/readyz").is_ok_and(|r| r.0 == 200);
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = support::http_get(&address, "/metrics").map(|r| r.2);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = daemon.wait().unwrap();
    assert!(ready, "never became ready on {address}");
    assert!(status.success(), "{status:?}");
    let metrics = metrics.unwrap();
    assert!(
        metrics.contains("ocfs2_watchdog_collector_success{collector=\"mounts\"} 1"),
        "{metrics}"
    );
}

#[test]
fn global_flags_work_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[mounts]\nbogus_key = 1\n").unwrap();
    // Read (and refused for its content), not rejected as an argument.
    let output = watchdog()
        .args(["maintenance", "on", "--reason", "x", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
    assert!(stderr.contains("unknown field `bogus_key`"), "{stderr}");
    assert_eq!(output.status.code(), Some(2), "{stderr}");

    let output = watchdog()
        .args(["status", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
    assert!(
        stdout.starts_with("OCFS2 UNKNOWN - configuration error") && stdout.contains("bogus_key"),
        "{stdout}"
    );
    assert_eq!(output.status.code(), Some(3));

    // Given after the subcommand, the flags reach the snapshot helper too.
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[remediation]\nmode = \"enforce\"\n").unwrap();
    let output = watchdog()
        .args(["status", "--local", "--json", "--config"])
        .arg(&good)
        .arg("--path.rootfs")
        .arg(fixture("mounts-stacked").join("rootfs"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let document: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        document["overview"]["remediation"]["mode"], "enforce",
        "{stdout}"
    );
    let mounts = document["overview"]["volumes"].to_string();
    assert!(mounts.contains("/mnt/ocfs2"), "{stdout}");
}
