//! What Prometheus users expect of any exporter, checked against the real
//! binary on loopback: `process_*` metrics equal to what /proc says about the
//! daemon, gzip when asked, `--web.telemetry-path`, the HTTP self-metrics,
//! `ocfs2_watchdog_build_info` labels, and `--collector.*` switches removing
//! exactly their collector's families.

mod support;
mod tls_kit;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocfs2_watchdog::cli::Args;
use ocfs2_watchdog::collector::Context;
use ocfs2_watchdog::config::{collector_names, Config};
use ocfs2_watchdog::host::HostPaths;
use ocfs2_watchdog::sampler::Sampler;
use support::sample_value;
use tls_kit::{raw, raw_bytes};

/// The daemon and the scratch dir its state lives in (dropped after it).
struct Daemon(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The daemon on a fixture, ready; returns it and its address.
fn start(extra: &[&str]) -> (Daemon, String) {
    // Its state in a scratch dir: the default state_dir is the host's.
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n",
            scratch.path().join("state").display()
        ),
    )
    .unwrap();
    let (child, address) = support::listen::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .arg("--config")
            .arg(&config)
            .arg("--path.rootfs")
            .arg(fixture("mounts-healthy").join("rootfs"))
            .args(["--no-collector.kernel_log"])
            .args(extra),
    );
    let daemon = Daemon(child, scratch);
    let started = Instant::now();
    while support::http_get(&address, "/readyz").map(|r| r.0).ok() != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "daemon not ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (daemon, address)
}

fn status_field(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap();
    let number: f64 = line.split_whitespace().next().unwrap().parse().unwrap();
    if line.trim_end().ends_with("kB") {
        number * 1024.0
    } else {
        number
    }
}

#[test]
fn process_metrics_match_proc_status() {
    let (daemon, address) = start(&[]);
    let pid = daemon.0.id();
    let (_, _, body) = support::http_get(&address, "/metrics").unwrap();
    let value =
        |name: &str| sample_value(&body, name).unwrap_or_else(|| panic!("{name} missing:\n{body}"));
    let rss = value("process_resident_memory_bytes");
    let vm_rss = status_field(pid, "VmRSS");
    assert!(
        (rss - vm_rss).abs() <= vm_rss * 0.1,
        "rss {rss} vs VmRSS {vm_rss}"
    );
    assert_eq!(
        value("process_virtual_memory_bytes"),
        status_field(pid, "VmSize")
    );
    assert_eq!(value("process_threads"), status_field(pid, "Threads"));
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as f64;
    assert!((value("process_open_fds") - fds).abs() <= 2.0, "fds");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let max_fds: f64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(value("process_max_fds"), max_fds);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start_time = value("process_start_time_seconds");
    assert!(
        now - start_time >= 0.0 && now - start_time < 60.0,
        "start {start_time}"
    );
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // utime and stime (fields 14 and 15 of stat(5)), in clock ticks of 1/100 s.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let cpu = value("process_cpu_seconds_total");
    assert!(
        (cpu - ticks / 100.0).abs() <= 0.05,
        "cpu {cpu} vs {ticks} ticks"
    );
    assert!(body.contains("# TYPE process_cpu_seconds_total counter"));
}

#[test]
fn gzip_only_when_asked_and_the_telemetry_path_moves() {
    let (_daemon, address) = start(&["--web.telemetry-path", "/exporter/metrics"]);
    let (status, plain) = raw(
        &address,
        "GET /exporter/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(!plain.to_ascii_lowercase().contains("content-encoding"));
    let (status, bytes) = raw_bytes(
        &address,
        "GET /exporter/metrics HTTP/1.0\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
    );
    assert_eq!(status, 200);
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&bytes[..split]).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[split + 4..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("ocfs2_watchdog_build_info"), "{text}");
    assert_eq!(support::http_get(&address, "/metrics").unwrap().0, 404);
}

#[test]
fn http_self_metrics_count_requests_by_handler_and_code() {
    let (_daemon, address) = start(&[]);
    for _ in 0..3 {
        assert_eq!(support::http_get(&address, "/healthz").unwrap().0, 200);
    }
    assert_eq!(support::http_get(&address, "/nowhere").unwrap().0, 404);
    support::http_get(&address, "/metrics").unwrap();
    let (_, _, body) = support::http_get(&address, "/metrics").unwrap();
    let count =
        |series: &str| sample_value(&body, series).unwrap_or_else(|| panic!("{series}\n{body}"));
    assert_eq!(
        count("ocfs2_watchdog_http_requests_total{handler=\"/healthz\",code=\"200\"}"),
        3.0
    );
    assert_eq!(
        count("ocfs2_watchdog_http_requests_total{handler=\"other\",code=\"404\"}"),
        1.0
    );
    // The scrape being served is counted when it completes.
    assert_eq!(
        count("ocfs2_watchdog_http_requests_total{handler=\"/metrics\",code=\"200\"}"),
        1.0
    );
    assert_eq!(count("ocfs2_watchdog_http_scrapes_refused_total"), 0.0);
}

#[test]
fn scrapes_refused_by_the_concurrency_limit_are_counted() {
    use ocfs2_watchdog::http::telemetry::HttpStats;
    let stats = Arc::new(HttpStats::default());
    let rt = tls_kit::runtime();
    let slow = ocfs2_watchdog::http::limit_concurrency_counted(
        axum::Router::new().route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "done"
            }),
        ),
        1,
        Some(Arc::clone(&stats)),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap().to_string();
    rt.spawn(async move { axum::serve(listener, slow).await });
    let first = {
        let address = address.clone();
        std::thread::spawn(move || support::http_get(&address, "/slow").unwrap().0)
    };
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(support::http_get(&address, "/slow").unwrap().0, 503);
    assert_eq!(first.join().unwrap(), 200);
    let text = ocfs2_watchdog::metrics::encode(stats.families());
    assert!(
        text.contains("ocfs2_watchdog_http_scrapes_refused_total 1"),
        "{text}"
    );
}

#[test]
fn build_info_names_the_revision_and_compiler() {
    let output = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .arg("--once")
        .arg("--path.rootfs")
        .arg(fixture("mounts-healthy").join("rootfs"))
        .arg("--no-collector.kernel_log")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let build_info = support::samples::parse(&text)
        .into_iter()
        .find(|s| s.name == "ocfs2_watchdog_build_info")
        .unwrap();
    let label = |name: &str| build_info.labels.get(name).cloned().unwrap_or_default();
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .unwrap();
    let rustc = String::from_utf8_lossy(&rustc.stdout);
    let rustc_version = rustc.split_whitespace().nth(1).unwrap();
    assert_eq!(label("rustc_version"), rustc_version, "{build_info:?}");
    let git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    let expected = match git {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => "unknown".to_string(),
    };
    assert_eq!(label("revision"), expected, "{build_info:?}");
}

/// Family names and `collector` label values in a rendering.
fn families_and_collectors(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let families = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect();
    let collectors = text
        .lines()
        .filter_map(|l| l.split("collector=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect();
    (families, collectors)
}

fn render(config: Config, scenario: &str) -> (String, BTreeSet<String>) {
    let config = Arc::new(config);
    let paths = HostPaths::new(fixture(scenario).join("rootfs"), None, None);
    let mut sampler = Sampler::new(Arc::new(Context::new(paths, Arc::clone(&config))));
    let snapshot = sampler.tick(config.sampler.collector_timeout);
    // Each collector's own families, with samples, as rendered.
    let own: BTreeSet<String> = snapshot
        .collectors
        .values()
        .flat_map(|(_, section)| section.families.iter())
        .filter(|f| !f.samples.is_empty())
        .map(|f| f.name.to_string())
        .collect();
    (
        ocfs2_watchdog::metrics::openmetrics_to_text(snapshot.rendered()),
        own,
    )
}

#[test]
fn each_collector_switch_removes_exactly_its_families() {
    let scenario = "iscsi-degraded";
    let mut base = Config::load(&fixture(scenario).join("config.toml")).unwrap_or_default();
    base.kernel_log.source = fixture("kernel-log-pause").join("dmesg.txt");
    base.fs_state.enabled = true;
    let (full, _) = render(base.clone(), scenario);
    let (full_families, full_collectors) = families_and_collectors(&full);
    let mut with_families = 0;
    for name in collector_names() {
        // Its families: render it alone.
        let mut alone = base.clone();
        alone.collectors.disable_defaults = true;
        alone.collectors.enabled.insert(name.to_string(), true);
        let (_, its_own) = render(alone, scenario);
        let mut without = base.clone();
        without.collectors.enabled.insert(name.to_string(), false);
        without.apply_collector_switches();
        let (text, _) = render(without, scenario);
        let (families, collectors) = families_and_collectors(&text);
        let removed: BTreeSet<String> = full_families.difference(&families).cloned().collect();
        let expected: BTreeSet<String> = its_own
            .iter()
            .map(|f| {
                full_families
                    .iter()
                    .find(|n| *n == f || **n == format!("{f}_total"))
                    .cloned()
                    .unwrap_or_else(|| f.clone())
            })
            .collect();
        assert_eq!(removed, expected, "--no-collector.{name}");
        with_families += usize::from(!removed.is_empty());
        assert!(families.is_subset(&full_families));
        assert!(!collectors.contains(name), "{name} still labelled");
        let others: BTreeSet<String> = full_collectors
            .iter()
            .filter(|c| *c != name)
            .cloned()
            .collect();
        assert_eq!(collectors, others, "--no-collector.{name}");
    }
    assert!(
        with_families >= 5,
        "only {with_families} collectors had families here"
    );
}

#[test]
fn collector_flags_parse_like_node_exporter() {
    let args = Args::parse_from_args([
        "ocfs2-watchdog",
        "--collector.disable-defaults",
        "--collector.mounts",
        "--collector.dlm",
        "--no-collector.dlm",
        "--collector.fs_state",
    ]);
    let config = args.effective_config().unwrap();
    assert!(config.collectors.is_enabled("mounts"));
    assert!(!config.collectors.is_enabled("dlm"), "the later flag wins");
    assert!(!config.collectors.is_enabled("o2cb"));
    assert!(config.collectors.is_enabled("fs_state"));
    assert!(
        config.fs_state.enabled,
        "--collector.fs_state turns the read on"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
        .args(["--check-config", "--collector.nosuch"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--collector.nosuch"));
}
