//! A real `/dev/kmsg` flood against the daemon binary: memory must stay flat
//! and the sampler must keep publishing snapshots. Ignored by default (it
//! writes 1 000 000 records into this machine's kernel log and lifts the
//! `/dev/kmsg` write rate limit for its duration); run as root with
//! `cargo test --release --test kernel_log_flood -- --ignored --nocapture`.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

const RECORDS: usize = 1_000_000;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Restores `/proc/sys/kernel/printk_devkmsg` when dropped.
struct DevkmsgSetting(String);

impl Drop for DevkmsgSetting {
    fn drop(&mut self) {
        // The sysctl wants the trailing newline (EINVAL without it).
        let _ = std::fs::write("/proc/sys/kernel/printk_devkmsg", format!("{}\n", self.0));
    }
}

#[test]
#[ignore = "floods the machine's kernel log; run explicitly as root"]
fn kmsg_flood_keeps_memory_flat_and_the_sampler_running() {
    let mut kmsg = match std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        Ok(file) => file,
        Err(e) => {
            support::require(false, &format!("/dev/kmsg writable ({e}): root"));
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let port = 20_000 + std::process::id() % 20_000;
    let address = format!("127.0.0.1:{port}");
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "state_dir = {:?}\n[sampler]\ninterval = \"500ms\"\n[web]\nlisten_address = {address:?}\n[kernel_log]\nprevious_boot_journal = false\n",
            dir.path().join("state")
        ),
    )
    .unwrap();
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = daemon.id();
    let scrape = || -> String {
        support::http_get(&address, "/metrics")
            .map(|(_, _, body)| body)
            .unwrap_or_default()
    };
    let started = Instant::now();
    while support::sample_value(&scrape(), "ocfs2_watchdog_kernel_log_records_total").unwrap_or(0.0)
        == 0.0
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "daemon never reported the kernel log"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let rss_before = rss_kib(pid);
    let before = scrape();

    let old = std::fs::read_to_string("/proc/sys/kernel/printk_devkmsg").unwrap_or_default();
    let _restore = DevkmsgSetting(old.trim().to_string());
    std::fs::write("/proc/sys/kernel/printk_devkmsg", "on\n")
        .expect("lifting the /dev/kmsg write rate limit");

    let writer = std::thread::spawn(move || {
        let started = Instant::now();
        for i in 0..RECORDS {
            let record = if i % 10 == 0 {
                format!("<5>flood {i}: o2net: Connected to node f{i} (num 9) at 10.0.0.9:7777\n")
            } else {
                format!("<6>flood {i}: e1000e 0000:00:19.0 eth0: NIC Link is Up 1000 Mbps Full Duplex\n")
            };
            let _ = kmsg.write_all(record.as_bytes());
        }
        started.elapsed()
    });
    let mut peak = rss_before;
    let mut snapshot_times = Vec::new();
    while !writer.is_finished() {
        peak = peak.max(rss_kib(pid));
        if let Some(t) =
            support::sample_value(&scrape(), "ocfs2_watchdog_snapshot_timestamp_seconds")
        {
            snapshot_times.push(t);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let write_time = writer.join().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    peak = peak.max(rss_kib(pid));
    let after = scrape();
    let rss_after = rss_kib(pid);
    let _ = daemon.kill();
    let _ = daemon.wait();

    let delta = |name| {
        support::sample_value(&after, name).unwrap_or(0.0)
            - support::sample_value(&before, name).unwrap_or(0.0)
    };
    let read = delta("ocfs2_watchdog_kernel_log_records_total");
    let lost = delta("ocfs2_kernel_log_records_lost_total");
    let connected = delta("ocfs2_kernel_events_total{event=\"net_connected\"}");
    snapshot_times.dedup();
    let longest_gap = snapshot_times
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(0.0, f64::max);
    eprintln!(
        "flood: {RECORDS} records written in {write_time:.2?} ({:.0}/s); daemon read {read}, lost {lost} \
         (overwritten in the ring buffer), net_connected +{connected}; VmRSS before {rss_before} KiB, \
         peak {peak} KiB, after {rss_after} KiB; {} snapshots during the flood, longest gap {longest_gap:.2} s",
        RECORDS as f64 / write_time.as_secs_f64(),
        snapshot_times.len()
    );
    assert!(
        read + lost >= RECORDS as f64 * 0.99,
        "records neither read nor counted lost"
    );
    assert!(
        peak < rss_before + 16 * 1024,
        "RSS grew by more than 16 MiB"
    );
    assert!(longest_gap < 2.0, "the sampler stalled during the flood");
}
