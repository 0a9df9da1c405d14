//! `--check-config` as an operator meets it: errors name their key and say
//! what a valid value looks like, the admin token must exist and follow the
//! token rules, a telemetry path may not take a served route, the sampler
//! interval must fit systemd's watchdog, and every rule's effective settings
//! are printed, a state directory others may write is refused, and limits
//! on outside values are in range.

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
fn a_node_name_that_cannot_be_a_cluster_conf_name_is_refused() {
    let (output, _, stderr) = check("[cluster]\nnode_name = \"n1\\nn2\"\n", &[]);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cluster.node_name"), "{stderr}");
    assert!(stderr.contains("cluster.conf"), "{stderr}");
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

/// `--check-config` with an admin token file holding `token` with `mode`.
fn check_token(token: &str, mode: u32) -> (Option<i32>, String) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    let (output, _, stderr) = check(
        &format!("[web]\nadmin_token_file = \"{}\"\n", file.display()),
        &[],
    );
    (output.status.code(), stderr)
}

#[test]
fn admin_tokens_that_break_the_rules_are_refused_with_the_fix() {
    let good = "0123456789abcdef0123456789abcdef";
    assert_eq!(check_token(good, 0o600).0, Some(0));
    for (token, mode, fix) in [
        (good, 0o644, "chmod 600"),
        (good, 0o640, "chmod 600"),
        ("0123456789abcdef", 0o600, "openssl rand -hex 32"),
        // What the shipped DaemonSet's Secret holds until it is replaced.
        ("CHANGE-ME-admin-token", 0o400, "placeholder"),
    ] {
        let (code, stderr) = check_token(token, mode);
        assert_eq!(code, Some(2), "{token:?} {mode:o}: {stderr}");
        assert!(stderr.contains("web.admin_token_file"), "{stderr}");
        assert!(stderr.contains(fix), "{token:?} {mode:o}: {stderr}");
    }
}

#[test]
fn a_telemetry_path_on_a_served_route_is_a_configuration_error() {
    for path in [
        "/healthz",
        "/status",
        "/status/cluster",
        "/",
        "/pause",
        "/maintenance/on",
    ] {
        let (output, _, stderr) = check(&format!("[web]\ntelemetry_path = {path:?}\n"), &[]);
        assert_eq!(output.status.code(), Some(2), "{path}: {stderr}");
        assert!(stderr.contains("web.telemetry_path"), "{stderr}");
        // The flag is checked as the file is.
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .args(["--check-config", "--web.telemetry-path", path])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{path}: {output:?}");
    }
}

#[test]
fn a_network_admin_listener_needs_tls() {
    let (output, _, stderr) = check("[web]\nadmin_listen = \"0.0.0.0:9785\"\n", &[]);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("TLS"), "{stderr}");
    // An exporter-toolkit web config file without tls_server_config.
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "").unwrap();
    let (output, _, stderr) = check(
        &format!(
            "[web]\nadmin_listen = \"0.0.0.0:9785\"\nconfig_file = \"{}\"\n",
            web.display()
        ),
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tls_server_config"), "{stderr}");
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

#[test]
fn a_state_dir_others_may_write_is_refused_naming_the_fix() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let config = format!("state_dir = {:?}\n", state.display().to_string());
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (output, _, stderr) = check(&config, &[]);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("chmod 0700 {}", state.display())),
        "{stderr}"
    );
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (output, _, stderr) = check(&config, &[]);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    // A missing one is fine: the daemon creates it 0700.
    let missing = format!(
        "state_dir = {:?}\n",
        dir.path().join("new").display().to_string()
    );
    let (output, _, stderr) = check(&missing, &[]);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        !dir.path().join("new").exists(),
        "--check-config creates nothing"
    );
}

#[test]
fn the_daemon_refuses_to_start_on_a_state_dir_others_may_write() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = dir.path().join("config.toml");
    let config = format!(
        "state_dir = {:?}\n[web]\nlisten_address = \"127.0.0.1:0\"\n[kernel_log]\nenabled = false\n",
        state.display().to_string()
    );
    std::fs::write(&path, config).unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .arg("--config")
        .arg(&path)
        .env_remove("WATCHDOG_USEC")
        .env_remove("NOTIFY_SOCKET")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It stops before its first snapshot; a daemon that started anyway is
    // killed after a generous margin and fails the test.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = daemon.kill();
            let _ = daemon.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut daemon.stderr.take().unwrap(), &mut stderr).unwrap();
    let status = status.unwrap_or_else(|| panic!("the daemon started: {stderr}"));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("chmod 0700"), "{stderr}");
    // Nothing was written into it.
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);
}
