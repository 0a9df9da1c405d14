//! HTTP hardening against real servers on loopback: TLS verified with a CA
//! made in the test, the certificate reloaded on SIGHUP by the real binary,
//! credentials on `/metrics` and `/status` (401 + WWW-Authenticate), probes
//! left open, the body limit (413) and the concurrent scrape limit (503).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use ocfs2_watchdog::config::{WebConfig, WebTlsConfig};
use ocfs2_watchdog::http::{limit_concurrency, router_with, AppState, Security};
use ocfs2_watchdog::sampler::Health;
use ocfs2_watchdog::snapshot::Snapshot;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// A test CA and a way to issue `localhost` leaves from it.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// Writes a fresh leaf pair to `dir`; returns its DER.
    fn issue(&self, dir: &Path) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        cert.der().clone()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// GET over TLS trusting only `ca`: (status, head, served leaf).
async fn https_get(
    address: &str,
    ca: &CertificateDer<'static>,
    path: &str,
) -> std::io::Result<(u16, String, CertificateDer<'static>)> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(std::io::Error::other)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let mut tls = connector.connect(name, tcp).await?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    // A peer closing without close_notify is fine once the body is in.
    let _ = tls.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).to_string();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, response, leaf))
}

/// A raw HTTP/1.1 exchange on loopback: (status, full response).
fn raw(address: &str, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

fn get_with(address: &str, path: &str, authorization: Option<&str>) -> (u16, String) {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    raw(
        address,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
    )
}

/// An in-process server with `security`, snapshot 1 already published.
fn serve(rt: &tokio::runtime::Runtime, security: Security) -> String {
    let (publish, snapshots) = watch::channel(Arc::new(Snapshot::empty()));
    let mut first = Snapshot::empty();
    first.sequence = 1;
    publish.send_replace(Arc::new(first));
    let state = AppState {
        snapshots,
        health: Arc::new(Health::default()),
        interval: Duration::from_secs(2),
        started: Instant::now(),
        check: Default::default(),
    };
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let app = router_with(state, &security, axum::Router::new());
    rt.spawn(async move {
        let _publish = publish;
        security.serve(listener, app, std::future::pending()).await
    });
    address
}

#[test]
fn tls_is_served_with_the_configured_certificate_and_verified_by_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let leaf = ca.issue(dir.path());
    let web = WebConfig {
        tls: Some(WebTlsConfig {
            cert_file: dir.path().join("cert.pem"),
            key_file: dir.path().join("key.pem"),
        }),
        ..WebConfig::default()
    };
    let rt = runtime();
    let address = serve(&rt, Security::from_config(&web).unwrap());
    let (status, response, served) = rt
        .block_on(https_get(&address, &ca.der(), "/metrics"))
        .unwrap();
    assert_eq!(status, 200, "{response}");
    assert_eq!(served, leaf);
    assert!(response.contains("ocfs2_watchdog"), "{response}");
    // A client trusting another CA refuses the handshake.
    let other = TestCa::new();
    assert!(rt
        .block_on(https_get(&address, &other.der(), "/metrics"))
        .is_err());
    // Plain HTTP on the TLS port gets no HTTP answer.
    assert_eq!(get_with(&address, "/metrics", None).0, 0);
}

#[test]
fn mismatched_or_missing_certificate_files_are_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    ca.issue(dir.path());
    let cert = std::fs::read(dir.path().join("cert.pem")).unwrap();
    ca.issue(dir.path());
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    let tls = |cert: PathBuf| WebConfig {
        tls: Some(WebTlsConfig {
            cert_file: cert,
            key_file: dir.path().join("key.pem"),
        }),
        ..WebConfig::default()
    };
    let err = Security::from_config(&tls(dir.path().join("cert.pem"))).unwrap_err();
    assert!(err.to_string().contains("unusable key pair"), "{err}");
    let err = Security::from_config(&tls(dir.path().join("absent.pem"))).unwrap_err();
    assert!(err.to_string().contains("absent.pem"), "{err}");
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hangup(daemon: &Daemon) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.0.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_the_old_one_when_the_new_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let first = ca.issue(dir.path());
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[kernel_log]\nenabled = false\n[web.tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n",
    )
    .unwrap();
    let address = format!("127.0.0.1:{}", support::free_port());
    let daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .arg("--config")
            .arg(&config)
            .args(["--web.listen-address", &address, "--log.level", "warn"])
            .arg("--path.rootfs")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mounts-healthy/rootfs"))
            .spawn()
            .unwrap(),
    );
    let rt = runtime();
    let fetch = || rt.block_on(https_get(&address, &ca.der(), "/readyz"));
    let started = Instant::now();
    while fetch().is_err() && started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fetch().unwrap().2, first);

    let second = ca.issue(dir.path());
    hangup(&daemon);
    let started = Instant::now();
    while fetch().ok().map(|r| r.2) != Some(second.clone())
        && started.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        fetch().unwrap().2,
        second,
        "SIGHUP did not load the new pair"
    );

    // A botched renewal: the key no longer matches. The pair in force stays.
    std::fs::write(
        dir.path().join("key.pem"),
        KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    hangup(&daemon);
    std::thread::sleep(Duration::from_millis(500));
    let (status, _, served) = fetch().unwrap();
    assert_eq!((status, served), (200, second));
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[test]
fn scrapes_need_credentials_and_probes_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "scrape-token\n").unwrap();
    let mut web = WebConfig::default();
    web.auth
        .basic_auth_users
        .insert("prometheus".into(), bcrypt::hash("s3cret", 4).unwrap());
    web.auth.bearer_token_file = Some(token);
    let rt = runtime();
    let address = serve(&rt, Security::from_config(&web).unwrap());

    for path in ["/metrics", "/status"] {
        for authorization in [
            None,
            Some(basic("prometheus", "wrong")),
            Some(basic("nobody", "s3cret")),
            Some("Bearer wrong-token".to_string()),
            Some("Digest username=prometheus".to_string()),
        ] {
            let (status, response) = get_with(&address, path, authorization.as_deref());
            assert_eq!(status, 401, "{path} {authorization:?}: {response}");
            let lower = response.to_ascii_lowercase();
            assert!(
                lower.contains("www-authenticate: basic realm=\"ocfs2-watchdog\"")
                    && lower.contains("www-authenticate: bearer realm=\"ocfs2-watchdog\""),
                "{response}"
            );
        }
        let (status, _) = get_with(&address, path, Some(&basic("prometheus", "s3cret")));
        assert_eq!(status, 200, "{path} basic");
        let (status, _) = get_with(&address, path, Some("Bearer scrape-token"));
        assert_eq!(status, 200, "{path} bearer");
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(get_with(&address, path, None).0, 200, "{path}");
    }
}

#[test]
fn oversized_bodies_are_refused_with_413() {
    let mut web = WebConfig::default();
    web.limits.max_request_body_bytes = 1024;
    let rt = runtime();
    let address = serve(&rt, Security::from_config(&web).unwrap());
    let body = "x".repeat(4096);
    let (status, response) = raw(
        &address,
        &format!(
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(status, 413, "{response}");
}

#[test]
fn concurrent_scrapes_past_the_limit_get_503_and_probes_still_answer() {
    let rt = runtime();
    let slow = limit_concurrency(
        axum::Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(600)).await;
                "done"
            }),
        ),
        2,
    )
    .route("/open", get(|| async { "open" }));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap().to_string();
    rt.spawn(async move { axum::serve(listener, slow).await });
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let address = address.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50 * i));
                get_with(&address, "/slow", None).0
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(get_with(&address, "/open", None).0, 200);
    let mut statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, vec![200, 200, 503, 503]);
}

#[test]
fn the_router_applies_the_scrape_limit_to_metrics() {
    // The limit is wired into router_with: a limit of 1 still serves
    // sequential scrapes (permits are given back).
    let mut web = WebConfig::default();
    web.limits.max_concurrent_scrapes = 1;
    let rt = runtime();
    let address = serve(&rt, Security::from_config(&web).unwrap());
    for _ in 0..3 {
        assert_eq!(get_with(&address, "/metrics", None).0, 200);
    }
}
