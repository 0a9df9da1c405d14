//! The real daemon binary with remediation: token-protected pause/resume,
//! and a SIGKILL in the middle of a 4096-layer unstack.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ocfs2_watchdog::actions::audit::AuditRecord;
use ocfs2_watchdog::collector::mounts::mountinfo::parse_mountinfo;
use ocfs2_watchdog::collector::mounts::stack::TableIndex;
use support::{bind, enter_private_namespace, free_port, http_get, mount_tmpfs};

fn write_config(dir: &Path, token: Option<&str>) -> std::path::PathBuf {
    let token_line = match token {
        Some(token) => {
            let file = dir.join("token");
            std::fs::write(&file, format!("{token}\n")).unwrap();
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
[remediation.rules.duplicate_mount_layers]
for = "500ms"
"#,
        state = dir.join("state").display()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn start(config: &Path, address: &str) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .args(["--config", config.to_str().unwrap(), "--enforce"])
        .args(["--web.listen-address", address])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !http_get(address, "/readyz").is_ok_and(|r| r.0 == 200) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "daemon not ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
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
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut daemon = start(&write_config(dir.path(), Some("s3cret")), &address);
    assert_eq!(post(&address, "/pause", None), 401);
    assert_eq!(post(&address, "/pause", Some("wrong")), 401);
    assert_eq!(post(&address, "/resume", None), 401);
    assert_eq!(post(&address, "/pause", Some("s3cret")), 200);
    assert!(dir.path().join("state/pause").exists());
    support::wait_for("paused metric", Duration::from_secs(10), || {
        metric_line(&address, "ocfs2_watchdog_paused 1")
    });
    assert!(metric_line(&address, "ocfs2_watchdog_enforcing 1"));
    let (_, _, status) = http_get(&address, "/status").unwrap();
    assert!(status.contains("\"remediation\""), "{status}");
    assert_eq!(post(&address, "/resume", Some("s3cret")), 200);
    assert!(!dir.path().join("state/pause").exists());
    support::wait_for("resumed metric", Duration::from_secs(10), || {
        metric_line(&address, "ocfs2_watchdog_paused 0")
    });
    let _ = daemon.kill();
    let _ = daemon.wait();

    // No token configured: state-changing endpoints are closed.
    let other = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut daemon = start(&write_config(other.path(), None), &address);
    assert_eq!(post(&address, "/pause", Some("anything")), 403);
    assert_eq!(post(&address, "/resume", None), 403);
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
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    mount_tmpfs(&volume);
    for _ in 1..4096 {
        bind(&volume, &volume);
    }
    let config = write_config(dir.path(), None);
    let audit = dir.path().join("state/audit.jsonl");
    let address = format!("127.0.0.1:{}", free_port());
    let mut daemon = start(&config, &address);
    // Kill as soon as the action has started (its `before` line is on disk).
    support::wait_for("the unstack to start", Duration::from_secs(20), || {
        std::fs::read_to_string(&audit).is_ok_and(|t| t.contains("\"started\""))
    });
    // And the first layers are gone: it is in the middle of the job.
    support::wait_for("the first pops", Duration::from_secs(20), || {
        layers(&volume) < 4096
    });
    daemon.kill().unwrap(); // SIGKILL
    daemon.wait().unwrap();
    let left = layers(&volume);
    println!("layers left after SIGKILL: {left}");
    assert!(left >= 1, "never the last layer");

    let address = format!("127.0.0.1:{}", free_port());
    let mut daemon = start(&config, &address);
    support::wait_for("exactly one layer", Duration::from_secs(20), || {
        layers(&volume) == 1
    });
    // Give the engine a tick to see the result, then stop.
    std::thread::sleep(Duration::from_millis(700));
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(layers(&volume), 1);
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(text.ends_with('\n'), "no torn last line");
    let records: Vec<AuditRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .collect();
    assert!(records.iter().filter(|r| r.outcome == "started").count() >= 1);
    assert!(records.iter().any(|r| r.outcome == "success"));
}
