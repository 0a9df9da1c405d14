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
