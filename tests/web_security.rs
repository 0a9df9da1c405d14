//! HTTP hardening against real servers on loopback: TLS verified with a CA
//! made in the test, the certificate reloaded on SIGHUP by the real binary,
//! credentials on `/metrics` and `/status` (401 + WWW-Authenticate), probes
//! left open, the body limit (413) and the concurrent scrape limit (503).

mod support;
mod tls_kit;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use axum::routing::get;
use ocfs2_watchdog::config::{WebConfig, WebTlsConfig};
use ocfs2_watchdog::http::{limit_concurrency, Security};
use rcgen::KeyPair;
use tls_kit::{get_with, https_get, raw, runtime, serve, TestCa};

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
    // Its state in the scratch dir: the default state_dir is the host's.
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[kernel_log]\nenabled = false\n[web.tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let (child, address) = support::listen::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"))
            .arg("--config")
            .arg(&config)
            .arg("--path.rootfs")
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mounts-healthy/rootfs"),
            ),
    );
    let daemon = Daemon(child);
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
