//! Metrics about the daemon itself that change between snapshots and so are
//! made at scrape time: the `process_*` families every Prometheus client
//! library exports (read from `/proc/self` with the `procfs` crate) and the
//! HTTP server's own counters (requests by handler and code, scrapes refused
//! by the concurrency limit). Also the small per-request layers that feed
//! those counters, add the configured response headers and apply
//! exporter-toolkit's `rate_limit`.
//!
//! `/metrics` appends these families to the snapshot's cached rendering
//! (see `mod.rs`), so the snapshot stays rendered once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::metrics::Family;

/// Requests answered, by route and status code, scrapes refused, and the
/// connections of every listener.
#[derive(Debug, Default)]
pub struct HttpStats {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    refused: AtomicU64,
    listeners: Mutex<BTreeMap<&'static str, Arc<ListenerStats>>>,
}

/// Which connection deadline closed a connection (`crate::http::serve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    HeaderRead,
    Idle,
    TlsHandshake,
}

impl TimeoutKind {
    const ALL: [Self; 3] = [Self::HeaderRead, Self::Idle, Self::TlsHandshake];

    fn as_str(self) -> &'static str {
        match self {
            Self::HeaderRead => "header_read",
            Self::Idle => "idle",
            Self::TlsHandshake => "tls_handshake",
        }
    }
}

/// One listener's connections: open now, its cap, refused at the cap and
/// closed by a deadline.
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub open: AtomicU64,
    pub max: AtomicU64,
    pub refused: AtomicU64,
    timed_out: [AtomicU64; 3],
}

impl ListenerStats {
    pub fn timed_out(&self, kind: TimeoutKind) {
        let index = TimeoutKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        self.timed_out[index].fetch_add(1, Ordering::Relaxed);
    }
}

impl HttpStats {
    /// The counters of the listener called `name` (`scrape`, `admin`,
    /// `admin_socket`, `peer`), made on first use.
    pub fn listener(&self, name: &'static str) -> Arc<ListenerStats> {
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(listeners.entry(name).or_default())
    }

    fn connection_families(&self) -> Vec<Family> {
        let mut open = Family::gauge(
            "ocfs2_watchdog_http_connections_open",
            "Connections open on the listener.",
        );
        let mut max = Family::gauge(
            "ocfs2_watchdog_http_connections_max",
            "Connections the listener keeps open at once; more are closed at once.",
        );
        let mut refused = Family::counter(
            "ocfs2_watchdog_http_connections_refused",
            "Connections closed at once because the listener was at its cap.",
        );
        let mut timed_out = Family::counter(
            "ocfs2_watchdog_http_connections_timed_out",
            "Connections closed by a deadline: header_read, idle or tls_handshake.",
        );
        let listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        for (name, stats) in listeners.iter() {
            let label = [("listener", *name)];
            open.push(&label, stats.open.load(Ordering::Relaxed) as f64);
            max.push(&label, stats.max.load(Ordering::Relaxed) as f64);
            refused.push(&label, stats.refused.load(Ordering::Relaxed) as f64);
            for (kind, count) in TimeoutKind::ALL.iter().zip(&stats.timed_out) {
                timed_out.push(
                    &[("listener", *name), ("reason", kind.as_str())],
                    count.load(Ordering::Relaxed) as f64,
                );
            }
        }
        vec![open, max, refused, timed_out]
    }

    pub fn record(&self, handler: &str, code: u16) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry((handler.to_string(), code)).or_default() += 1;
    }

    pub fn record_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn families(&self) -> Vec<Family> {
        let mut requests = Family::counter(
            "ocfs2_watchdog_http_requests",
            "HTTP requests answered, by route and status code.",
        );
        for ((handler, code), count) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            requests.push(
                &[("handler", handler), ("code", &code.to_string())],
                *count as f64,
            );
        }
        let mut families = vec![
            requests,
            Family::counter(
                "ocfs2_watchdog_http_scrapes_refused",
                "Scrapes answered 503 at once because web.limits.max_concurrent_scrapes were in progress.",
            )
            .with(&[], self.refused.load(Ordering::Relaxed) as f64),
        ];
        families.extend(self.connection_families());
        families
    }
}

/// Counts every request by its route pattern (not the raw path, so a
/// scanner cannot grow the label set) and status code.
pub async fn count_requests(
    State(stats): State<Arc<HttpStats>>,
    request: Request,
    next: Next,
) -> Response {
    let handler = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "other".to_string());
    let response = next.run(request).await;
    stats.record(&handler, response.status().as_u16());
    response
}

/// Adds `http_server_config.headers` to every response.
pub async fn add_headers(
    State(headers): State<Arc<Vec<(HeaderName, HeaderValue)>>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    for (name, value) in headers.iter() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// exporter-toolkit's `rate_limit`: a token bucket over all requests.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    burst: f64,
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(interval: Duration, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            interval,
            burst,
            bucket: Mutex::new((burst, Instant::now())),
        }
    }

    fn take(&self) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let earned = now.duration_since(bucket.1).as_secs_f64() / self.interval.as_secs_f64();
        bucket.0 = (bucket.0 + earned).min(self.burst);
        bucket.1 = now;
        if bucket.0 >= 1.0 {
            bucket.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

pub async fn rate_limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    if limiter.take() {
        next.run(request).await
    } else {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "too many requests\n",
        )
            .into_response()
    }
}

/// The standard `process_*` families of this process. A field that cannot
/// be read is left out rather than reported as 0.
pub fn process_families() -> Vec<Family> {
    let mut families = Vec::new();
    let Ok(me) = procfs::process::Process::myself() else {
        return families;
    };
    let gauge = |name, help, value: f64| Family::gauge(name, help).with(&[], value);
    if let Ok(stat) = me.stat() {
        let ticks = procfs::ticks_per_second() as f64;
        families.push(
            Family::counter(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
            )
            .with(&[], (stat.utime + stat.stime) as f64 / ticks),
        );
        families.push(gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            stat.vsize as f64,
        ));
        families.push(gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            stat.rss.saturating_mul(procfs::page_size()) as f64,
        ));
        families.push(gauge(
            "process_threads",
            "Number of OS threads in the process.",
            stat.num_threads as f64,
        ));
        if let Ok(boot) = procfs::boot_time_secs() {
            families.push(gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                boot as f64 + stat.starttime as f64 / ticks,
            ));
        }
    }
    if let Ok(count) = me.fd_count() {
        families.push(gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            count as f64,
        ));
    }
    if let Ok(limits) = me.limits() {
        if let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit {
            families.push(gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                max as f64,
            ));
        }
    }
    families
}
