//! The real daemon binary with remediation: token-protected, audited
//! pause/resume/reset (also on a Unix socket), a SIGKILL in the middle of a
//! 4096-layer unstack (interrupted, backed off, finished), and a SIGKILL
//! that must not hand out a fresh budget or retry what was given up.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ocfs2_watchdog::actions::audit::AuditRecord;
use ocfs2_watchdog::actions::unstack::TEST_BARRIER_ENV;
use ocfs2_watchdog::collector::mounts::mountinfo::parse_mountinfo;
use ocfs2_watchdog::collector::mounts::stack::TableIndex;
use support::{bind, enter_private_namespace, http_get, mount_tmpfs};

fn write_config(dir: &Path, token: Option<&str>) -> std::path::PathBuf {
    write_config_with(dir, token, "", "")
}

/// `web` lands in `[web]`, `rest` after the remediation sections.
fn write_config_with(dir: &Path, token: Option<&str>, web: &str, rest: &str) -> std::path::PathBuf {
    let token_line = match token {
        Some(token) => {
            let file = dir.join("token");
            write_token(&file, token);
            format!("admin_token_file = \"{}\"\n", file.display())
        }
        None => String::new(),
    };
    let config = format!(
        r#"state_dir = "{state}"
[sampler]
interval = "300ms"
[mounts]
fstypes = ["tmpfs"]
use_fstab = false
[kernel_log]
enabled = false
[web]
{token_line}
{web}
[remediation]
startup_grace = "0s"
[remediation.rules.duplicate_mount_layers]
for = "500ms"
backoff = "1s"
{rest}
"#,
        state = dir.join("state").display()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Admin tokens must be 32 bytes or more in a file only root can read.
const TOKEN: &str = "s3cret-s3cret-s3cret-s3cret-s3cret";
const ROTATED: &str = "rotated-rotated-rotated-rotated-rotated";

fn write_token(file: &Path, token: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The daemon on a port from the OS, ready; with the address it bound.
fn start(config: &Path) -> (Child, String) {
    start_with_env(config, &[])
}

fn start_with_env(config: &Path, env: &[(&str, &Path)]) -> (Child, String) {
    let (child, address) = support::listen::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .args(["--config", config.to_str().unwrap(), "--enforce"])
            .envs(env.iter().copied())
            .stdout(Stdio::null()),
    );
    let started = Instant::now();
    while !http_get(&address, "/readyz").is_ok_and(|r| r.0 == 200) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "daemon not ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, address)
}

fn post(address: &str, path: &str, token: Option<&str>) -> u16 {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn metric_line(address: &str, prefix: &str) -> bool {
    http_get(address, "/metrics")
        .is_ok_and(|(_, _, body)| body.lines().any(|l| l.starts_with(prefix)))
}

#[test]
fn pause_and_resume_need_the_admin_token() {
    // An enforcing daemon on the real root: in a private mount namespace, so
    // an unstack it decides on (a host with stacked tmpfs layers) acts on
    // the namespace's copy of the mount table, never on the host's.
    if !enter_private_namespace("pause_and_resume_need_the_admin_token") {
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, address) = start(&write_config(dir.path(), Some(TOKEN)));
    // With a token and no admin_listen: a root-only socket under state_dir,
    // and nothing state-changing on the scrape port.
    let socket = dir.path().join("state/admin/control.sock");
    support::wait_for("the admin socket", Duration::from_secs(10), || {
        socket.exists()
    });
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(socket.parent().unwrap()), 0o700);
    for path in ["/pause", "/resume", "/reset?rule=x", "/maintenance/on"] {
        assert_eq!(
            post(&address, path, Some(TOKEN)),
            404,
            "{path} on the scrape port"
        );
    }
    assert_eq!(post_unix_status(&socket, "/pause", None), 401);
    assert_eq!(post_unix(&socket, "/pause", "wrong"), 401);
    assert_eq!(post_unix_status(&socket, "/resume", None), 401);
    assert_eq!(post_unix(&socket, "/pause", TOKEN), 200);
    assert!(dir.path().join("state/pause").exists());
    support::wait_for("paused metric", Duration::from_secs(10), || {
        metric_line(&address, "ocfs2_watchdog_paused 1")
    });
    assert!(metric_line(&address, "ocfs2_watchdog_enforcing 1"));
    let (_, _, status) = http_get(&address, "/status").unwrap();
    assert!(status.contains("\"remediation\""), "{status}");
    // `status` asks the admin socket first.
    let out = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .args(["--config", dir.path().join("config.toml").to_str().unwrap()])
        .args(["status", "--json"])
        .output()
        .unwrap();
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        document["source"]["address"],
        format!("unix:{}", socket.display()),
        "{document}"
    );
    assert_eq!(post_unix(&socket, "/resume", TOKEN), 200);
    assert!(!dir.path().join("state/pause").exists());
    let callers: Vec<String> = audit_records(&dir.path().join("state/audit.jsonl"))
        .into_iter()
        .filter_map(|r| r.caller)
        .collect();
    assert_eq!(callers.len(), 2, "pause and resume are audited");
    assert!(
        callers.iter().all(|c| c.starts_with("unix:pid=")),
        "{callers:?}"
    );
    let hup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(daemon.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap()
    };
    // A new admin token is read on SIGHUP; the old one stops working.
    write_token(&dir.path().join("token"), ROTATED);
    hup();
    support::wait_for("the rotated admin token", Duration::from_secs(10), || {
        post_unix(&socket, "/pause", ROTATED) == 200
    });
    assert_eq!(post_unix(&socket, "/resume", TOKEN), 401);
    assert_eq!(post_unix(&socket, "/resume", ROTATED), 200);
    support::wait_for("resumed metric", Duration::from_secs(10), || {
        metric_line(&address, "ocfs2_watchdog_paused 0")
    });
    // A reloaded token that breaks the rules is refused; the one in force
    // stays.
    write_token(&dir.path().join("token"), "short");
    hup();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(post_unix(&socket, "/pause", "short"), 401);
    assert_eq!(post_unix(&socket, "/pause", ROTATED), 200);
    assert_eq!(post_unix(&socket, "/resume", ROTATED), 200);
    let _ = daemon.kill();
    let _ = daemon.wait();

    // No token configured: no admin socket, nothing on the scrape port.
    let other = tempfile::tempdir().unwrap();
    let (mut daemon, address) = start(&write_config(other.path(), None));
    assert_eq!(post(&address, "/pause", Some("anything")), 404);
    assert_eq!(post(&address, "/resume", None), 404);
    assert!(!other.path().join("state/admin").exists());
    let _ = daemon.kill();
    let _ = daemon.wait();
}

fn layers(path: &Path) -> usize {
    let table = parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    TableIndex::new(&table.entries)
        .layers(&path.to_string_lossy())
        .len()
}

#[test]
fn a_daemon_killed_mid_unstack_finishes_after_restart() {
    if !enter_private_namespace("a_daemon_killed_mid_unstack_finishes_after_restart") {
        return;
    }
    let dir = support::ScratchDir::new();
    let volume = dir.path().join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    mount_tmpfs(&volume);
    for _ in 1..4096 {
        bind(&volume, &volume);
    }
    let config = write_config(dir.path(), None);
    let audit = dir.path().join("state/audit.jsonl");
    // The action stops after its first batch of pops until `barrier` exists.
    let barrier = dir.path().join("barrier");
    let env = [(TEST_BARRIER_ENV, barrier.as_path())];
    let (mut daemon, _) = start_with_env(&config, &env);
    support::wait_for(
        "the unstack to reach the barrier",
        Duration::from_secs(30),
        || dir.path().join("barrier.reached").exists(),
    );
    let started = audit_records(&audit);
    assert_eq!(
        started.last().map(|r| r.outcome.as_str()),
        Some("started"),
        "the action's `before` line is the last: {started:?}"
    );
    let mid = layers(&volume);
    assert!(
        1 < mid && mid < 4096,
        "the kill lands in the middle of the action: {mid} layers"
    );
    daemon.kill().unwrap(); // SIGKILL
    daemon.wait().unwrap();
    let left = layers(&volume);
    println!("layers left after SIGKILL: {left}");
    assert_eq!(left, mid, "nothing popped after the kill");
    let before_restart = audit_records(&audit).len();
    assert_eq!(
        before_restart,
        started.len(),
        "no `after` line for the killed action"
    );

    std::fs::write(&barrier, "").unwrap();
    let (mut daemon, _) = start_with_env(&config, &env);
    support::wait_for("exactly one layer", Duration::from_secs(20), || {
        layers(&volume) == 1
    });
    // Give the engine a tick to audit the result, then stop.
    support::wait_for("the retry's success line", Duration::from_secs(10), || {
        audit_records(&audit)[before_restart..]
            .iter()
            .any(|r| r.outcome == "success")
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(layers(&volume), 1);
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(text.ends_with('\n'), "no torn last line");
    let records = audit_records(&audit);
    // The killed run's `before` line is settled as interrupted, first thing
    // after the restart, and only then retried to success.
    let killed = &records[before_restart - 1];
    let interrupted = &records[before_restart];
    assert_eq!(interrupted.outcome, "interrupted", "{records:?}");
    assert_eq!(interrupted.target, killed.target);
    assert_eq!(interrupted.action, "unstack");
    let success = records[before_restart + 1..]
        .iter()
        .find(|r| r.outcome == "success")
        .expect("a success after the interrupted line");
    assert_eq!(success.target, killed.target);
}

fn stack_twice(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    mount_tmpfs(path);
    bind(path, path);
}

fn audit_records(path: &Path) -> Vec<AuditRecord> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .collect()
}

#[test]
fn a_sigkill_keeps_the_budget_and_the_give_ups() {
    if !enter_private_namespace("a_sigkill_keeps_the_budget_and_the_give_ups") {
        return;
    }
    let dir = support::ScratchDir::new();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    stack_twice(&a);
    stack_twice(&b);
    // A volume that can never be mounted: a file with no filesystem.
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let garbage = dir.path().join("garbage.img");
    std::fs::write(&garbage, vec![0u8; 1 << 20]).unwrap();
    let rest = format!(
        r#"actions_per_hour = 1
[remediation.rules.missing_mount]
for = "300ms"
backoff = "200ms"
backoff_max = "200ms"
max_attempts = 2
[[mounts.expected]]
mountpoint = "{data}"
source = "{garbage}"
fstype = "ext4"
options = "ro"
"#,
        data = data.display(),
        garbage = garbage.display()
    );
    let config = write_config_with(dir.path(), None, "", &rest);
    let audit = dir.path().join("state/audit.jsonl");
    let (mut daemon, _) = start(&config);
    let has = |rule: &str, outcome: &str| {
        audit_records(&audit)
            .iter()
            .any(|r| r.rule == rule && r.outcome == outcome)
    };
    support::wait_for(
        "the give-up and the budget",
        Duration::from_secs(20),
        || has("missing_mount", "gave_up") && has("duplicate_mount_layers", "skipped_budget"),
    );
    daemon.kill().unwrap(); // SIGKILL: no chance to save anything more
    daemon.wait().unwrap();
    let started_before = audit_records(&audit)
        .iter()
        .filter(|r| r.outcome == "started")
        .count();
    let mut left = [layers(&a), layers(&b)];
    left.sort();
    assert_eq!(left, [1, 2], "one unstacked, one held by the rule's share");

    let (mut daemon, address) = start(&config);
    support::wait_for("the give-up on /metrics", Duration::from_secs(10), || {
        metric_line(
            &address,
            "ocfs2_watchdog_remediation_gave_up{rule=\"missing_mount\"",
        )
    });
    // Many ticks (300 ms each) after the restart: nothing started again.
    std::thread::sleep(Duration::from_secs(3));
    assert!(metric_line(
        &address,
        "ocfs2_watchdog_rule_budget_remaining{rule=\"duplicate_mount_layers\"} 0"
    ));
    let _ = daemon.kill();
    let _ = daemon.wait();
    let started_after = audit_records(&audit)
        .iter()
        .filter(|r| r.outcome == "started")
        .count();
    assert_eq!(started_after, started_before, "no retry after the restart");
    let mut left = [layers(&a), layers(&b)];
    left.sort();
    assert_eq!(left, [1, 2], "no fresh budget after the restart");
}

/// POSTs over a Unix socket; the status code.
fn post_unix(socket: &Path, path: &str, token: &str) -> u16 {
    post_unix_status(socket, path, Some(token))
}

fn post_unix_status(socket: &Path, path: &str, token: Option<&str>) -> u16 {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn control_endpoints_on_a_unix_socket_are_audited_with_the_caller() {
    // An enforcing daemon on the real root: in a private mount namespace, so
    // an unstack it decides on (a host with stacked tmpfs layers) acts on
    // the namespace's copy of the mount table, never on the host's.
    if !enter_private_namespace("control_endpoints_on_a_unix_socket_are_audited_with_the_caller") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/admin.sock");
    let web = format!("admin_listen = \"unix:{}\"", socket.display());
    let config = write_config_with(dir.path(), Some(TOKEN), &web, "");
    let (mut daemon, address) = start(&config);
    support::wait_for("the admin socket", Duration::from_secs(10), || {
        socket.exists()
    });
    let mode = std::fs::metadata(&socket).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert_eq!(
        post(&address, "/pause", Some(TOKEN)),
        404,
        "not on the scrape port"
    );
    assert_eq!(post_unix(&socket, "/pause", "wrong"), 401);
    assert_eq!(post_unix(&socket, "/pause", TOKEN), 200);
    assert_eq!(
        post_unix(&socket, "/reset", TOKEN),
        400,
        "a rule is required"
    );
    assert_eq!(post_unix(&socket, "/reset?rule=nope", TOKEN), 400);
    assert_eq!(
        post_unix(&socket, "/reset?rule=missing_mount&target=/srv/a", TOKEN),
        202
    );
    assert_eq!(post_unix(&socket, "/resume", TOKEN), 200);
    let audit = dir.path().join("state/audit.jsonl");
    support::wait_for("the reset line", Duration::from_secs(10), || {
        audit_records(&audit).iter().any(|r| r.outcome == "reset")
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
    let control: Vec<(String, String)> = audit_records(&audit)
        .into_iter()
        .filter(|r| r.caller.is_some())
        .map(|r| (r.outcome.as_str().to_string(), r.caller.unwrap()))
        .collect();
    let outcomes: Vec<&str> = control.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(outcomes, ["paused", "resumed", "reset"]);
    let me = format!("uid={}", nix::unistd::getuid());
    assert!(
        control
            .iter()
            .all(|(_, caller)| caller.starts_with("unix:pid=") && caller.ends_with(&me)),
        "{control:?}"
    );
}
