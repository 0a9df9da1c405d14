//! The HTTP server under abuse, against the real daemon: 2000 idle
//! connections and 50 clients dripping a request head a byte a second do
//! not keep `/metrics` from answering a normal scrape within 1 s, the
//! collectors keep succeeding and an admin `/pause` is audited; the drip
//! clients are cut off at the header-read deadline; connections past the
//! cap are closed at once and counted. In process: stalled TLS handshakes
//! block nobody, and an idle keep-alive connection is closed.

mod support;
mod tls_kit;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ocfs2_watchdog::config::{WebConfig, WebTlsConfig};
use ocfs2_watchdog::http::Security;

/// Idle connections held during the scrape.
const IDLE: usize = 2000;
/// Clients sending a request head one byte a second.
const DRIP: usize = 50;
/// What a normal scrape must take at most, measured from its connect.
const SCRAPE_LIMIT: Duration = Duration::from_secs(1);
const TOKEN: &str = "abuse-abuse-abuse-abuse-abuse-abuse";

/// Lifts this process's soft open-file limit to the hard one (the daemon,
/// its child, inherits it and raises its own the same way); skips the
/// test when even that cannot hold the connections.
fn raise_nofile(needed: u64) -> bool {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    support::require(
        hard >= needed,
        &format!("an open-file hard limit of {needed} (have {hard})"),
    )
}

struct Daemon {
    child: Child,
    address: String,
    dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Starts the daemon on port 0 with `limits` in `[web.limits]`; reads
    /// the bound port back from its log.
    fn start(limits: &str) -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("admin-token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                r#"state_dir = "{state}"
[sampler]
interval = "300ms"
[mounts]
fstypes = ["tmpfs"]
use_fstab = false
[kernel_log]
enabled = false
[web]
admin_token_file = "{token}"
[web.limits]
{limits}
"#,
                state = dir.path().join("state").display(),
                token = token.display(),
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .args(["--config", config.to_str().unwrap()])
            .args([
                "--web.listen-address",
                "127.0.0.1:0",
                "--log.format",
                "json",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Drained for the daemon's whole life, so its log never blocks it.
        let (send, addresses) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if json["fields"]["message"] == "Listening." {
                    let _ = send.send(json["fields"]["address"].as_str().unwrap().to_string());
                }
            }
        });
        let address = addresses
            .recv_timeout(Duration::from_secs(20))
            .expect("the daemon logs its bound address");
        let daemon = Self {
            child,
            address,
            dir,
        };
        support::wait_for("the daemon ready", Duration::from_secs(20), || {
            support::http_get(&daemon.address, "/readyz").is_ok_and(|r| r.0 == 200)
        });
        daemon
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("state/admin/control.sock")
    }

    fn metrics(&self) -> String {
        support::http_get(&self.address, "/metrics").unwrap().2
    }
}

/// One `/metrics` scrape as Prometheus makes it; its time from connect to
/// the last byte, and the body.
fn timed_scrape(address: &str) -> (Duration, String) {
    let started = Instant::now();
    let (status, _, body) =
        support::http_get_accepting(address, "/metrics", support::PROMETHEUS_ACCEPT)
            .unwrap_or_else(|e| panic!("scrape failed after {:?}: {e}", started.elapsed()));
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    (took, body)
}

/// The value of the first sample `name` with `labels`.
fn sample_value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    support::samples::values(body, name, labels)
        .first()
        .copied()
}

/// The collectors whose `ocfs2_watchdog_collector_success` is 1.
fn succeeding(body: &str) -> Vec<String> {
    let mut names: Vec<String> = support::samples::parse(body)
        .into_iter()
        .filter(|s| s.name == "ocfs2_watchdog_collector_success" && s.value == 1.0)
        .filter_map(|s| s.labels.get("collector").cloned())
        .collect();
    names.sort();
    names
}

/// True when the daemon closed `stream` (EOF, a reset, or an error page
/// for a head it never got whole); a live connection would block.
fn closed_by_daemon(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 256];
    let mut reader = stream;
    let closed = match reader.read(&mut buf) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

fn post_unix(socket: &Path, path: &str) -> u16 {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    support::status_code(&response)
}

#[test]
fn metrics_answer_within_a_second_under_idle_and_slow_drip_connections() {
    if !raise_nofile(IDLE as u64 + DRIP as u64 + 1024) {
        return;
    }
    let daemon = Daemon::start("header_read_timeout = \"3s\"\nidle_timeout = \"120s\"\n");
    // Collectors settled: the same ones succeed on two scrapes in a row.
    let mut before = succeeding(&daemon.metrics());
    support::wait_for("the collectors to settle", Duration::from_secs(10), || {
        std::thread::sleep(Duration::from_millis(400));
        let now = succeeding(&daemon.metrics());
        std::mem::replace(&mut before, now) == before
    });
    assert!(!before.is_empty(), "some collector succeeds on this host");

    let idle: Vec<TcpStream> = (0..IDLE)
        .map(|i| {
            TcpStream::connect(&daemon.address)
                .unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
        })
        .collect();
    // The drip: one byte of a request head per client per second, until the
    // daemon closes the connection; each client's cut-off time is reported.
    let head = b"GET /metrics HTTP/1.1\r\nHost: drip\r\nUser-Agent: slow\r\n\r\n";
    let (closed, cut_offs) = mpsc::channel();
    let drip_started = Instant::now();
    let mut drips: Vec<(TcpStream, usize)> = (0..DRIP)
        .map(|_| (TcpStream::connect(&daemon.address).unwrap(), 0))
        .collect();
    let dripper = std::thread::spawn(move || {
        while !drips.is_empty() {
            drips.retain_mut(|(stream, sent)| {
                let byte = [head[*sent % head.len()]];
                // A reset or a closed pipe: the daemon cut this one off.
                let alive = stream.write_all(&byte).is_ok() && !closed_by_daemon(stream);
                *sent += 1;
                if !alive {
                    let _ = closed.send(drip_started.elapsed());
                }
                alive
            });
            std::thread::sleep(Duration::from_secs(1));
            if drip_started.elapsed() > Duration::from_secs(30) {
                return;
            }
        }
    });

    // Every connection is held by the daemon, none refused.
    support::wait_for("the connections open", Duration::from_secs(10), || {
        let body = daemon.metrics();
        sample_value(
            &body,
            "ocfs2_watchdog_http_connections_open",
            &[("listener", "scrape")],
        )
        .is_some_and(|open| open >= (IDLE + DRIP) as f64)
    });
    // Scrapes while the drip is on (it is cut off at 3 s).
    let mut slowest = Duration::ZERO;
    let mut body = String::new();
    for _ in 0..5 {
        let (took, answer) = timed_scrape(&daemon.address);
        assert!(
            took < SCRAPE_LIMIT,
            "a scrape took {took:?} under the flood"
        );
        slowest = slowest.max(took);
        body = answer;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        sample_value(
            &body,
            "ocfs2_watchdog_http_connections_refused_total",
            &[("listener", "scrape")]
        ),
        Some(0.0)
    );
    // An admin action is audited while the flood holds.
    assert_eq!(post_unix(&daemon.socket(), "/pause"), 200);
    let audit = daemon.dir.path().join("state/audit.jsonl");
    let audited = std::fs::read_to_string(&audit).unwrap_or_default();
    assert!(
        audited.lines().any(|l| l.contains("\"paused\"")),
        "the pause is audited: {audited}"
    );

    // The drip clients are cut off at the header-read deadline (3 s),
    // whatever they send; 4 s of margin for a loaded machine.
    let cut: Vec<Duration> = (0..DRIP)
        .map(|_| {
            cut_offs
                .recv_timeout(Duration::from_secs(15))
                .expect("every drip client is cut off")
        })
        .collect();
    dripper.join().unwrap();
    let latest = cut.iter().max().unwrap();
    assert!(
        *latest >= Duration::from_secs(2) && *latest < Duration::from_secs(7),
        "cut off after {latest:?}"
    );
    // Scrapes after the drip, the idle connections still open: the
    // collectors kept succeeding and the snapshot kept moving.
    let (took, body) = timed_scrape(&daemon.address);
    assert!(took < SCRAPE_LIMIT, "{took:?}");
    slowest = slowest.max(took);
    assert_eq!(succeeding(&body), before, "no collector failed");
    let timed_out = sample_value(
        &body,
        "ocfs2_watchdog_http_connections_timed_out_total",
        &[("listener", "scrape"), ("reason", "header_read")],
    );
    assert!(timed_out >= Some(DRIP as f64), "{timed_out:?}");
    let fds = sample_value(&body, "process_open_fds", &[]).unwrap();
    let max = sample_value(&body, "process_max_fds", &[]).unwrap();
    assert!(
        fds + ocfs2_watchdog::http::fdlimit::FD_RESERVE as f64 <= max,
        "{fds} open of {max}: the reserve is free"
    );
    println!(
        "slowest scrape {slowest:?} of {SCRAPE_LIMIT:?} ({:?} margin) with {IDLE} idle and {DRIP} drip connections; drip cut off after {:?}..{latest:?}",
        SCRAPE_LIMIT.saturating_sub(slowest),
        cut.iter().min().unwrap()
    );
    drop(idle);
}

#[test]
fn connections_past_the_cap_are_closed_at_once_and_counted() {
    let daemon = Daemon::start("max_connections = 20\n");
    // The start-up polls' connections gone: only the scrape asking is open.
    support::wait_for("no other connection", Duration::from_secs(10), || {
        let body = daemon.metrics();
        sample_value(
            &body,
            "ocfs2_watchdog_http_connections_open",
            &[("listener", "scrape")],
        ) == Some(1.0)
    });
    std::thread::sleep(Duration::from_millis(100));
    // Fifty connections on a cap of twenty: thirty are closed as soon as the
    // daemon accepts them, without a byte, and twenty stay open.
    let connections: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(&daemon.address).unwrap())
        .collect();
    let started = Instant::now();
    let mut closed = 0;
    while started.elapsed() < Duration::from_secs(10) {
        closed = connections
            .iter()
            .filter(|stream| closed_by_daemon(stream))
            .count();
        if closed >= 30 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(closed, 30, "closed after {:?}", started.elapsed());
    // The twenty held ones are still served.
    std::thread::sleep(Duration::from_millis(300));
    let still_open = connections
        .iter()
        .filter(|stream| !closed_by_daemon(stream))
        .count();
    assert_eq!(still_open, 20);
    drop(connections);
    support::wait_for("the refusals counted", Duration::from_secs(10), || {
        support::http_get(&daemon.address, "/metrics").is_ok_and(|(_, _, body)| {
            sample_value(
                &body,
                "ocfs2_watchdog_http_connections_refused_total",
                &[("listener", "scrape")],
            ) == Some(30.0)
                && sample_value(
                    &body,
                    "ocfs2_watchdog_http_connections_max",
                    &[("listener", "scrape")],
                ) == Some(20.0)
        })
    });
}

#[test]
fn stalled_tls_handshakes_block_nobody_and_idle_connections_close() {
    let dir = tempfile::tempdir().unwrap();
    let ca = tls_kit::TestCa::new();
    ca.issue(dir.path());
    let mut web = WebConfig {
        tls: Some(WebTlsConfig {
            cert_file: dir.path().join("cert.pem"),
            key_file: dir.path().join("key.pem"),
        }),
        ..WebConfig::default()
    };
    web.limits.tls_handshake_timeout = Duration::from_secs(30);
    web.limits.idle_timeout = Duration::from_secs(1);
    let rt = tls_kit::runtime();
    let address = tls_kit::serve(&rt, Security::from_config(&web).unwrap());
    // Twice the 64 handshakes the server once ran at most at a time.
    let stalled: Vec<TcpStream> = (0..128)
        .map(|_| TcpStream::connect(&address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Measured from the request; 5 s of margin on a loaded machine, while
    // a blocked accept loop would wait the 30 s handshake deadline.
    let started = Instant::now();
    let (status, response, _) = rt
        .block_on(tls_kit::https_get(&address, &ca.der(), "/metrics"))
        .unwrap();
    assert_eq!(status, 200, "{response}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?} behind 128 stalled handshakes",
        started.elapsed()
    );
    drop(stalled);

    // Plain HTTP: a keep-alive connection left idle is closed at the
    // idle deadline (1 s), not held.
    let plain = WebConfig {
        limits: web.limits.clone(),
        ..WebConfig::default()
    };
    let address = tls_kit::serve(&rt, Security::from_config(&plain).unwrap());
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) => panic!("not closed: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let idle_for = started.elapsed();
    assert!(
        idle_for >= Duration::from_millis(900) && idle_for < Duration::from_secs(5),
        "closed after {idle_for:?}"
    );

    // A request head larger than the connection's buffer is refused, not
    // buffered: a thousand of them would otherwise be gigabytes.
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    // The daemon may close before reading it all: a write error is fine.
    let _ = stream.write_all(big.as_bytes());
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert_eq!(support::http_get(&address, "/healthz").unwrap().0, 200);
}
