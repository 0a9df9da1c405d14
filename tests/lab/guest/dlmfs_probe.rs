//! A lab guest tool: takes a dlmfs lock the way the watchdog's lease does
//! (`open(2)` of /dlm/<domain>/<lock>) and reports what the kernel said, so
//! `scenarios_dlmfs.py` can assert o2dlm's lock semantics on the real kernel.
//! Built by the scenario with plain `rustc` (std only), run from the share.
//!
//! usage: dlmfs_probe MODE WAIT PATH HOLD RETRY [SIGNAL [LVB]]
//!   MODE   `ex` (O_RDWR|O_CREAT: an EX lock) or `pr` (O_RDONLY: a PR lock)
//!   WAIT   `try` (O_NONBLOCK: a trylock) or `block` (a queued request)
//!   HOLD   seconds to keep the lock open; negative: until killed
//!   RETRY  seconds to keep retrying a refused trylock (every 20 ms)
//!   SIGNAL a file written (elapsed ms) the moment the lock is granted, `-` none
//!   LVB    text written to the lock value block once granted (EX only)
//! Prints `ok after_ms=.. tries=.. refused=.. lvb=".." pid=..` or
//! `err errno=.. after_ms=.. tries=.. refused=..` (exit 1).

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::{Duration, Instant};

const O_NONBLOCK: i32 = 0o4000;

fn seconds(text: Option<&String>, what: &str) -> f64 {
    match text.map(|t| t.parse::<f64>()) {
        Some(Ok(value)) => value,
        _ => {
            eprintln!("dlmfs_probe: {what} must be a number of seconds");
            std::process::exit(2);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: dlmfs_probe ex|pr try|block PATH HOLD RETRY [SIGNAL [LVB]]");
        std::process::exit(2);
    }
    let (exclusive, trylock, path) = (args[1] == "ex", args[2] == "try", &args[3]);
    let hold = seconds(args.get(4), "HOLD");
    let retry = seconds(args.get(5), "RETRY");
    let signal = args.get(6).filter(|s| s.as_str() != "-");
    let lvb_text = args.get(7);
    let started = Instant::now();
    let mut tries = 0u64;
    let mut refused = 0u64;
    loop {
        tries += 1;
        let mut options = OpenOptions::new();
        if exclusive {
            options.read(true).write(true).create(true);
        } else {
            options.read(true);
        }
        if trylock {
            options.custom_flags(O_NONBLOCK);
        }
        match options.open(path) {
            Ok(mut lock) => {
                let elapsed = started.elapsed().as_millis();
                if let Some(signal) = signal {
                    let _ = std::fs::write(signal, format!("{elapsed}\n"));
                }
                let mut lvb = [0u8; 64];
                let read = lock.read(&mut lvb).unwrap_or(0);
                let text = String::from_utf8_lossy(&lvb[..read]);
                println!(
                    "ok after_ms={elapsed} tries={tries} refused={refused} lvb={:?} pid={}",
                    text.trim_end_matches('\0'),
                    std::process::id()
                );
                if let Some(value) = lvb_text {
                    // A fixed 64-byte record: a shorter write would leave the old tail.
                    let mut record = [0u8; 64];
                    let len = value.len().min(64);
                    record[..len].copy_from_slice(&value.as_bytes()[..len]);
                    if let Err(error) = lock.write_at(&record, 0) {
                        println!("lvb write failed: {error}");
                    }
                }
                let _ = std::io::stdout().flush();
                if hold < 0.0 {
                    loop {
                        std::thread::sleep(Duration::from_secs(3600));
                    }
                }
                std::thread::sleep(Duration::from_secs_f64(hold));
                return;
            }
            Err(error) => {
                let errno = error.raw_os_error().unwrap_or(0);
                if errno == 26 {
                    refused += 1;
                }
                if errno != 26 || started.elapsed().as_secs_f64() >= retry {
                    println!(
                        "err errno={errno} after_ms={} tries={tries} refused={refused} ({error})",
                        started.elapsed().as_millis()
                    );
                    std::process::exit(1);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
