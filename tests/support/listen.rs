//! Ports from the OS: a daemon started on `127.0.0.1:0` logs the address it
//! really bound on its "Listening." line; these read it back, from the
//! child's stderr or from a log file, so no test probes for a free port
//! (a probed port can be taken by anything between the probe and the bind).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a daemon may take to bind; generous for a loaded CI machine.
pub const BIND_LIMIT: Duration = Duration::from_secs(30);

/// The bound address on a "Listening." line, in the text or JSON log format.
pub fn listening_address(line: &str) -> Option<String> {
    if !line.contains("Listening.") {
        return None;
    }
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(line) {
        return json["fields"]["address"].as_str().map(str::to_string);
    }
    let plain = strip_ansi(line);
    plain
        .split_whitespace()
        .find_map(|word| word.strip_prefix("address="))
        .map(|a| a.trim_matches('"').to_string())
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Takes `child`'s piped stderr, drains it for the child's whole life (so
/// its log never blocks it; lines are echoed to the test's stderr) and
/// returns the address it bound.
pub fn bound_address(child: &mut Child) -> String {
    let stderr = child
        .stderr
        .take()
        .expect("the daemon's stderr is piped (Stdio::piped())");
    let (send, addresses) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if let Some(address) = listening_address(&line) {
                let _ = send.send(address);
            }
        }
    });
    addresses
        .recv_timeout(BIND_LIMIT)
        .expect("the daemon logs its bound address on its \"Listening.\" line")
}

/// The address a daemon whose log goes to `log` bound.
pub fn bound_address_in_log(log: &Path) -> String {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(address) = text.lines().find_map(listening_address) {
            return address;
        }
        assert!(
            started.elapsed() < BIND_LIMIT,
            "no \"Listening.\" line in {} after {:?}: {text}",
            log.display(),
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Spawns the daemon `command` describes on `127.0.0.1:0` (the caller gives
/// no listen address) with its stderr drained here, and returns it with the
/// address it bound. Its log level must let the info "Listening." line out.
pub fn spawn_listening(command: &mut std::process::Command) -> (Child, String) {
    let mut child = command
        .args(["--web.listen-address", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting the daemon");
    let address = bound_address(&mut child);
    (child, address)
}

/// A loopback address no other test process uses: `127.A.B.C` from this
/// process's id and a counter (all of 127/8 is local on Linux).
pub fn unique_loopback_ip() -> std::net::Ipv4Addr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let pid = std::process::id();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // 127.0/16 and 127.77/16 are used by fixed addresses elsewhere.
    let a = 2 + (pid % 250) as u8;
    let a = if a == 77 { 253 } else { a };
    let b = ((pid / 250) % 256) as u8;
    let c = 1 + (n % 254) as u8;
    std::net::Ipv4Addr::new(127, a, b, c)
}

/// A port the OS gave, free on every one of `ips`, for a listener whose
/// address must be known before it starts (a peer port all nodes share, an
/// admin address the CLI reads from the config, another program's port).
/// The OS picks it on the first address and it is checked on the others;
/// it is then released, so until the listener binds, only a bind to that
/// same port on one of these addresses (or the wildcard) can take it. With
/// a `unique_loopback_ip` nothing else binds that address.
pub fn os_port_on(ips: &[std::net::IpAddr]) -> u16 {
    use std::net::{SocketAddr, TcpListener};
    let (first, rest) = ips.split_first().expect("at least one address");
    // Another address may hold the port the OS picked on the first: ask again.
    for _ in 0..20 {
        let held = TcpListener::bind(SocketAddr::new(*first, 0)).expect("a port from the OS");
        let port = held.local_addr().expect("bound address").port();
        let others: Result<Vec<_>, _> = rest
            .iter()
            .map(|ip| TcpListener::bind(SocketAddr::new(*ip, port)))
            .collect();
        if others.is_ok() {
            return port;
        }
    }
    panic!("no port the OS gives is free on all of {ips:?}");
}

/// `127.A.B.C:port`: a unique loopback address with a port from the OS.
pub fn loopback_address() -> String {
    let ip = unique_loopback_ip();
    format!("{ip}:{}", os_port_on(&[ip.into()]))
}
