//! Shared by the Alertmanager tests (tests/alertmanager.rs,
//! tests/alertmanager_inhibitions.rs): processes killed on drop, a webhook
//! receiver, the example config with short timings, the rules with short
//! `for:`, daemons on fixtures, and small HTTP helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{promql, support};

pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
pub const PROMETHEUS: &str = "/usr/bin/prometheus";
pub const DEADLINE: Duration = Duration::from_secs(90);
/// How often a wait asks Prometheus or Alertmanager again.
const POLL: Duration = Duration::from_millis(250);

pub fn example() -> PathBuf {
    promql::repo().join("alerts/alertmanager.example.yml")
}

/// A real Alertmanager with the example config (receivers -> `webhook`),
/// no gossip; returns it and its address.
pub fn start_alertmanager(dir: &Path, webhook: &str) -> (Killed, String) {
    // Another program's port, known before it starts: a unique loopback
    // address with a port from the OS (support::listen).
    let address = support::listen::loopback_address();
    let child = Command::new(ALERTMANAGER)
        .arg(format!(
            "--config.file={}",
            test_alertmanager_config(dir, webhook).display()
        ))
        .arg(format!("--storage.path={}", dir.join("am").display()))
        .arg(format!("--web.listen-address={address}"))
        .arg("--cluster.listen-address=")
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting alertmanager");
    (Killed(child), address)
}

/// Kills the process when the test ends, however it ends.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Webhook notifications received: (path, payload).
pub type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A minimal HTTP server taking Alertmanager's webhook POSTs.
pub fn webhook_receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let received: Received = Arc::default();
    let store = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(payload) = serde_json::from_slice(&body) {
                    store.lock().unwrap().push((path, payload));
                }
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (address, received)
}

/// The example with its receivers pointed at `webhook` and short timings.
pub fn test_alertmanager_config(dir: &Path, webhook: &str) -> PathBuf {
    let text = std::fs::read_to_string(example()).unwrap();
    let text = text
        .replace(
            "http://alert-gateway.example:9095",
            &format!("http://{webhook}"),
        )
        .lines()
        .map(|line| {
            let indent = &line[..line.len() - line.trim_start().len()];
            match line.trim_start().split_once(':') {
                Some(("group_wait", _)) => format!("{indent}group_wait: 2s"),
                Some(("group_interval", _)) => format!("{indent}group_interval: 1s"),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join("alertmanager.yml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The project's rules with every `for:` at 1s.
pub fn test_rules(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(promql::rules_file()).unwrap();
    let text: Vec<String> = text
        .lines()
        .map(|line| match line.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 1s", &line[..line.len() - line.trim_start().len()]),
            None => line.to_string(),
        })
        .collect();
    let path = dir.join("rules.yml");
    std::fs::write(&path, text.join("\n")).unwrap();
    path
}

pub fn start_daemon(dir: &Path, name: &str, fixture: &str) -> (Killed, String) {
    let state = dir.join(format!("{name}-state"));
    std::fs::create_dir_all(&state).unwrap();
    let fixture = promql::repo().join("tests/fixtures").join(fixture);
    let extra = std::fs::read_to_string(fixture.join("config.toml")).unwrap_or_default();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!("state_dir = {state:?}\n[sampler]\ninterval = \"1s\"\n[kernel_log]\nenabled = false\n{extra}"),
    )
    .unwrap();
    let (child, address) = support::listen::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .arg("--config")
            .arg(&config)
            .arg("--path.rootfs")
            .arg(fixture.join("rootfs"))
            .stdout(Stdio::null()),
    );
    (Killed(child), address)
}

pub fn get_json(address: &str, path: &str) -> Option<Value> {
    let (status, _, body) = support::http_get(address, path).ok()?;
    (status == 200)
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

/// Every wait of a test shares one deadline counted from `start`.
pub fn wait_for(what: &str, start: Instant, done: impl FnMut() -> bool) {
    support::wait_until(what, start, DEADLINE, POLL, done);
}

pub fn post_json(address: &str, path: &str, body: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    support::status_code(&response)
}
