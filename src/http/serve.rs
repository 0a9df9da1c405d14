//! How every listener of the daemon (scrape port, admin socket and TCP admin
//! listener, peer port) accepts and keeps connections, so that no client can
//! hold more than a bounded share of the process.
//!
//! axum's own `serve` has no header-read or idle timeout and no connection
//! cap: a thousand idle sockets used to exhaust the descriptors the
//! collectors, the helper pipes and the audit log need. Here each listener
//! has a `Gate`: a fixed number of connection slots (sized at start by
//! `fdlimit` so that a reserve of descriptors stays free); a connection
//! accepted past it is closed at once and counted. Each connection then runs
//! in its own task with three deadlines, as Go's `http.Server`: the TLS
//! handshake (`tls_handshake_timeout`, in the connection's task, so a
//! stalled handshake holds one slot and blocks nobody), a request head that
//! has started must be complete within `header_read_timeout` (a slow-drip
//! client is cut off however steadily it sends), and a connection with no
//! request in progress and no traffic is closed after `idle_timeout`.
//! Handlers are bounded separately by the router's `request_timeout`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;

use super::admin::Caller;
use super::telemetry::{ListenerStats, TimeoutKind};
use super::tls::CertStore;
use crate::config::WebLimitsConfig;

/// How long shutdown waits for open connections to finish their request.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The read buffer of a connection, so the largest request head: hyper's
/// default (~400 KiB) times the connection cap would be gigabytes an
/// attacker could make the daemon hold; a scrape's head is under 1 KiB.
/// A larger head is answered 431.
const MAX_BUFFER_BYTES: usize = 16 * 1024;
/// Back-off after a failed accept (EMFILE and friends), instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The deadlines every connection of a listener runs under.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub header_read: Duration,
    pub idle: Duration,
    pub tls_handshake: Duration,
}

impl Deadlines {
    pub fn from_limits(limits: &WebLimitsConfig) -> Self {
        Self {
            header_read: limits.header_read_timeout,
            idle: limits.idle_timeout,
            tls_handshake: limits.tls_handshake_timeout,
        }
    }
}

/// One listener's connection budget and its counters.
#[derive(Debug, Clone)]
pub struct Gate {
    slots: Arc<Semaphore>,
    max: usize,
    stats: Arc<ListenerStats>,
}

impl Gate {
    pub fn new(max: usize, stats: Arc<ListenerStats>) -> Self {
        stats.max.store(max as u64, Ordering::Relaxed);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            stats,
        }
    }
}

/// What a listener accepts connections from.
pub enum Listener {
    Tcp(TcpListener),
    Tls(TcpListener, Arc<CertStore>),
    Unix(UnixListener),
}

/// Serves `router` on `listener` until `shutdown` completes, then lets
/// open connections finish their request (at most `DRAIN_TIMEOUT`).
pub async fn serve(
    listener: Listener,
    router: Router,
    gate: Gate,
    deadlines: Deadlines,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (closing, closed) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        let (stream, caller, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(error = %error, "Cannot accept a connection.");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&gate.slots).try_acquire_owned() else {
            // Refused early: closed before a byte is read, so the excess
            // costs a descriptor for microseconds only.
            drop(stream);
            gate.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(caller = %caller.0, "Refused a connection: the listener is at its cap.");
            continue;
        };
        let stats = Arc::clone(&gate.stats);
        let router = router.clone();
        let closed = closed.clone();
        tokio::spawn(async move {
            stats.open.fetch_add(1, Ordering::Relaxed);
            match stream {
                Stream::Plain(tcp) => {
                    connection(tcp, caller, peer, router, deadlines, &stats, closed).await;
                }
                Stream::Unix(unix) => {
                    connection(unix, caller, peer, router, deadlines, &stats, closed).await;
                }
                Stream::Tls(tcp, store) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(store.server_config());
                    match tokio::time::timeout(deadlines.tls_handshake, acceptor.accept(tcp)).await
                    {
                        Ok(Ok(tls)) => {
                            connection(tls, caller, peer, router, deadlines, &stats, closed).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(caller = %caller.0, error = %error, "TLS handshake failed.");
                        }
                        Err(_) => {
                            stats.timed_out(TimeoutKind::TlsHandshake);
                            tracing::debug!(caller = %caller.0, "TLS handshake timed out.");
                        }
                    }
                }
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    let _ = closing.send(true);
    let all = u32::try_from(gate.max).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, gate.slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::debug!("Closed the listener with connections still open.");
    }
}

enum Stream {
    Plain(tokio::net::TcpStream),
    Tls(tokio::net::TcpStream, Arc<CertStore>),
    Unix(tokio::net::UnixStream),
}

/// The accepted stream, its caller for logs and audit lines, and its
/// socket address on TCP (the peer protocol checks it against the sender's
/// cluster.conf `ip_address`).
async fn accept(listener: &Listener) -> std::io::Result<(Stream, Caller, Option<SocketAddr>)> {
    match listener {
        Listener::Tcp(tcp) => {
            let (stream, peer) = tcp.accept().await?;
            Ok((Stream::Plain(stream), Caller(peer.to_string()), Some(peer)))
        }
        Listener::Tls(tcp, store) => {
            let (stream, peer) = tcp.accept().await?;
            Ok((
                Stream::Tls(stream, Arc::clone(store)),
                Caller(peer.to_string()),
                Some(peer),
            ))
        }
        Listener::Unix(unix) => {
            let (stream, _) = unix.accept().await?;
            let caller = Caller::of_unix(&stream);
            Ok((Stream::Unix(stream), caller, None))
        }
    }
}

/// Serves HTTP/1.1 on one accepted stream under the deadlines.
async fn connection<I>(
    io: I,
    caller: Caller,
    peer: Option<SocketAddr>,
    router: Router,
    deadlines: Deadlines,
    stats: &ListenerStats,
    mut closed: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let tracked = Tracked {
        inner: io,
        activity: Arc::clone(&activity),
    };
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            use tower_service::Service as _;
            let mut router = router.clone();
            request.extensions_mut().insert(ConnectInfo(caller.clone()));
            if let Some(peer) = peer {
                request.extensions_mut().insert(ConnectInfo(peer));
            }
            let in_flight = InFlight::begin(&activity);
            async move {
                let response = router.call(request.map(axum::body::Body::new)).await;
                drop(in_flight);
                response
            }
        })
    };
    // hyper's own header timer also runs while a keep-alive connection
    // waits, so it cannot tell idle from slow; `Activity` does both.
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(MAX_BUFFER_BYTES)
        .serve_connection(TokioIo::new(tracked), service);
    let mut connection = std::pin::pin!(connection);
    let mut draining = false;
    loop {
        let (deadline, _) = activity.deadline(&deadlines);
        tokio::select! {
            _ = connection.as_mut() => return,
            () = tokio::time::sleep_until(deadline) => {
                if let Some(kind) = activity.expired(&deadlines) {
                    stats.timed_out(kind);
                    tracing::debug!(kind = ?kind, "Closed a connection past its deadline.");
                    return;
                }
            }
            () = activity.changed.notified() => {}
            changed = closed.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// What a connection is doing, for its deadlines.
struct Activity {
    state: Mutex<ActivityState>,
    /// Wakes the connection's task when a request head starts or a request
    /// ends, so it sleeps until the deadline that now applies.
    changed: Notify,
}

struct ActivityState {
    in_flight: u32,
    head_started: Option<Instant>,
    idle_since: Instant,
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                head_started: None,
                idle_since: Instant::now(),
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn on_read(&self) {
        let mut state = self.lock();
        if state.in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    fn on_write(&self) {
        let mut state = self.lock();
        if state.in_flight == 0 {
            // A response body still being written is not idleness.
            state.idle_since = Instant::now();
        }
    }

    /// When the connection's current deadline falls. While a request is in
    /// progress, the router's `request_timeout` bounds it; the task sleeps
    /// until woken by its end.
    fn deadline(&self, deadlines: &Deadlines) -> (Instant, Option<TimeoutKind>) {
        let state = self.lock();
        let far = Instant::now()
            .checked_add(Duration::from_secs(3600))
            .unwrap_or_else(Instant::now);
        if state.in_flight > 0 {
            return (far, None);
        }
        let at = |since: Instant, after: Duration| since.checked_add(after).unwrap_or(far);
        match state.head_started {
            Some(started) => (
                at(started, deadlines.header_read),
                Some(TimeoutKind::HeaderRead),
            ),
            None => (
                at(state.idle_since, deadlines.idle),
                Some(TimeoutKind::Idle),
            ),
        }
    }

    fn expired(&self, deadlines: &Deadlines) -> Option<TimeoutKind> {
        let (deadline, kind) = self.deadline(deadlines);
        kind.filter(|_| Instant::now() >= deadline)
    }
}

/// Counts a request in progress while it lives.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> Self {
        let mut state = activity.lock();
        state.in_flight = state.in_flight.saturating_add(1);
        state.head_started = None;
        drop(state);
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        state.idle_since = Instant::now();
        drop(state);
        self.0.changed.notify_one();
    }
}

/// The stream with its reads and writes reported to `Activity`.
struct Tracked<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, std::task::Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.on_write();
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
