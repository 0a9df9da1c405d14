//! `--check-config` as an operator meets it: errors name their key and say
//! what a valid value looks like, the admin token must exist, the sampler
//! interval must fit systemd's watchdog, limits on outside values are in
//! range, and every rule's effective settings are printed.

use std::process::{Command, Output};

fn check(config: &str, env: &[(&str, &str)]) -> (Output, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"));
    command.arg("--config").arg(&path).arg("--check-config");
    command.env_remove("WATCHDOG_USEC");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

#[test]
fn file_errors_name_their_key_and_show_an_example() {
    let (output, _, stderr) = check("[sampler]\ninterval = \"often\"\n", &[]);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`sampler.interval`"), "{stderr}");
    assert!(stderr.contains("e.g. \"2s\""), "{stderr}");
}

#[test]
fn limits_on_outside_values_are_checked() {
    for (text, key) in [
        (
            "[cluster]\nmax_maintenance = \"400days\"\n",
            "`cluster.max_maintenance`",
        ),
        (
            "[cluster]\nmax_maintenance = \"0s\"\n",
            "`cluster.max_maintenance`",
        ),
        (
            "[cluster]\nmax_clock_skew = \"2days\"\n",
            "`cluster.max_clock_skew`",
        ),
        (
            "[remediation]\nstartup_grace = \"500000000y\"\n",
            "`remediation.startup_grace`",
        ),
        (
            "[remediation]\nengine_stall_intervals = 1\n",
            "`remediation.engine_stall_intervals`",
        ),
    ] {
        let (output, _, stderr) = check(text, &[]);
        assert_eq!(output.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(key), "{text}: {stderr}");
    }
    let (output, stdout, stderr) = check("", &[]);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("max_maintenance = \"3days\""), "{stdout}");
    assert!(stdout.contains("max_clock_skew = \"5m\""), "{stdout}");
}

#[test]
fn an_unknown_rule_lists_the_rules() {
    let (output, _, stderr) = check("[remediation.rules.o2cb_dwon]\nenabled = false\n", &[]);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for rule in ocfs2_watchdog::rules::RULES {
        assert!(
            stderr.contains(rule.name()),
            "{} missing: {stderr}",
            rule.name()
        );
    }
}

#[test]
fn a_missing_admin_token_file_is_exit_2_naming_the_key() {
    let (output, _, stderr) = check(
        "[web]\nadmin_token_file = \"/nonexistent/admin-token\"\n",
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("web.admin_token_file"), "{stderr}");
    assert!(stderr.contains("openssl rand -hex 32"), "{stderr}");
}

#[test]
fn an_interval_past_watchdog_sec_is_an_error_only_under_systemd() {
    let config = "[sampler]\ninterval = \"40s\"\ncollector_timeout = \"10s\"\n";
    let (output, _, stderr) = check(config, &[("WATCHDOG_USEC", "30000000")]);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("WatchdogSec 30s"), "{stderr}");
    let (output, _, stderr) = check(config, &[]);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("WatchdogSec"),
        "{stderr}"
    );
}

#[test]
fn the_printed_configuration_shows_every_rule() {
    let (output, stdout, stderr) = check("[remediation.rules.o2cb_down]\nmax_attempts = 9\n", &[]);
    assert!(output.status.success(), "{stderr}");
    for rule in ocfs2_watchdog::rules::RULES {
        assert!(
            stdout.contains(&format!("# [remediation.rules.{}]", rule.name())),
            "{stdout}"
        );
    }
    let o2cb = stdout
        .split("# [remediation.rules.o2cb_down]")
        .nth(1)
        .unwrap();
    let o2cb = o2cb.split("# [").next().unwrap();
    assert!(o2cb.contains("# max_attempts = 9"), "{o2cb}");
    // What it prints loads back as the same configuration.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("printed.toml");
    std::fs::write(&path, &stdout).unwrap();
    ocfs2_watchdog::config::Config::load(&path).unwrap();
}
