//! `--web.config.file` (exporter-toolkit's YAML) against real TLS clients on
//! loopback: mutual TLS with and without a client certificate for each
//! `client_auth_type`, `client_allowed_sans`, the certificate re-read when
//! its file changes (no SIGHUP), response headers, exporter-toolkit's own
//! sample file, and the conflict with the TOML `[web.tls]`.

mod support;
mod tls_kit;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ocfs2_watchdog::config::WebConfig;
use ocfs2_watchdog::http::Security;
use tls_kit::{https_get_as, runtime, serve, ClientIdentity, TestCa};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server certificate in `dir` and a web config file with `tls_extra`
/// appended under `tls_server_config` and `rest` after it.
fn web_config(dir: &Path, ca: &TestCa, tls_extra: &str, rest: &str) -> WebConfig {
    ca.issue(dir);
    std::fs::write(dir.join("client-ca.pem"), ca.pem()).unwrap();
    let path = dir.join("web-config.yml");
    std::fs::write(
        &path,
        format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n{tls_extra}{rest}"
        ),
    )
    .unwrap();
    WebConfig {
        config_file: Some(path),
        ..WebConfig::default()
    }
}

/// Status of GET /metrics presenting `identity`; Err when the server
/// refused the handshake.
fn scrape(
    rt: &tokio::runtime::Runtime,
    address: &str,
    ca: &TestCa,
    identity: Option<&ClientIdentity>,
) -> Result<u16, std::io::Error> {
    rt.block_on(https_get_as(address, &ca.der(), "/metrics", identity, ""))
        .map(|(status, _, _)| status)
}

#[test]
fn require_and_verify_client_cert_needs_a_certificate_from_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let web = web_config(
        dir.path(),
        &ca,
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.pem\n",
        "",
    );
    let rt = runtime();
    let address = serve(&rt, Security::from_config(&web).unwrap());
    let trusted = ca.client(&["prometheus.example.org"]);
    assert_eq!(scrape(&rt, &address, &ca, Some(&trusted)).unwrap(), 200);
    assert!(
        scrape(&rt, &address, &ca, None).is_err(),
        "served a client without a certificate"
    );
    let stranger = TestCa::new().client(&["prometheus.example.org"]);
    assert!(
        scrape(&rt, &address, &ca, Some(&stranger)).is_err(),
        "served a certificate from another CA"
    );
}

#[test]
fn client_allowed_sans_refuse_other_names() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let web = web_config(
        dir.path(),
        &ca,
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.pem\n  \
         client_allowed_sans:\n    - prometheus.example.org\n    - 10.0.0.7\n",
        "",
    );
    let rt = runtime();
    let address = serve(&rt, Security::from_config(&web).unwrap());
    for sans in [
        &["prometheus.example.org"][..],
        &["x.example.org", "10.0.0.7"],
    ] {
        assert_eq!(
            scrape(&rt, &address, &ca, Some(&ca.client(sans))).unwrap(),
            200,
            "{sans:?}"
        );
    }
    assert!(scrape(
        &rt,
        &address,
        &ca,
        Some(&ca.client(&["grafana.example.org"]))
    )
    .is_err());
}

#[test]
fn verify_if_given_and_require_any_behave_as_in_go() {
    let rt = runtime();
    let ca = TestCa::new();
    let stranger = TestCa::new().client(&["x"]);
    let trusted = ca.client(&["x"]);

    let dir = tempfile::tempdir().unwrap();
    let web = web_config(
        dir.path(),
        &ca,
        "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: client-ca.pem\n",
        "",
    );
    let address = serve(&rt, Security::from_config(&web).unwrap());
    assert_eq!(scrape(&rt, &address, &ca, None).unwrap(), 200);
    assert_eq!(scrape(&rt, &address, &ca, Some(&trusted)).unwrap(), 200);
    assert!(scrape(&rt, &address, &ca, Some(&stranger)).is_err());

    let dir = tempfile::tempdir().unwrap();
    let web = web_config(
        dir.path(),
        &ca,
        "  client_auth_type: RequireAnyClientCert\n",
        "",
    );
    let address = serve(&rt, Security::from_config(&web).unwrap());
    assert!(scrape(&rt, &address, &ca, None).is_err());
    assert_eq!(scrape(&rt, &address, &ca, Some(&stranger)).unwrap(), 200);
}

#[test]
fn headers_versions_and_basic_auth_come_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = web_config(
        dir.path(),
        &ca,
        "  min_version: TLS13\n",
        &format!(
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    \
             Strict-Transport-Security: max-age=31536000\n\
             basic_auth_users:\n  prometheus: {hash}\n"
        ),
    );
    let rt = runtime();
    let address = serve(&rt, Security::from_config(&web).unwrap());
    let get = |headers: &str| {
        rt.block_on(https_get_as(&address, &ca.der(), "/metrics", None, headers))
            .unwrap()
    };
    let (status, response, _) = get("");
    assert_eq!(status, 401, "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(lower.contains("x-frame-options: deny"), "{response}");
    assert!(lower.contains("strict-transport-security: max-age=31536000"));
    use base64::Engine as _;
    let credentials = base64::engine::general_purpose::STANDARD.encode("prometheus:s3cret");
    let (status, _, _) = get(&format!("Authorization: Basic {credentials}\r\n"));
    assert_eq!(status, 200);

    // min_version TLS13: a TLS 1.2-only client is refused.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let result = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&address).await?;
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect("localhost".try_into().unwrap(), tcp)
            .await
    });
    assert!(
        result.is_err(),
        "a TLS 1.2 client got through min_version TLS13"
    );
}

#[test]
fn exporter_toolkit_sample_file_is_accepted_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    ca.issue(dir.path());
    std::fs::rename(dir.path().join("cert.pem"), dir.path().join("server.crt")).unwrap();
    std::fs::rename(dir.path().join("key.pem"), dir.path().join("server.key")).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/web-config/web-config.yml");
    std::fs::copy(&sample, dir.path().join("web-config.yml")).unwrap();
    let web = WebConfig {
        config_file: Some(dir.path().join("web-config.yml")),
        ..WebConfig::default()
    };
    let rt = runtime();
    let address = serve(&rt, Security::from_config(&web).unwrap());
    let (status, _, _) = rt
        .block_on(https_get_as(&address, &ca.der(), "/metrics", None, ""))
        .unwrap();
    assert_eq!(status, 401, "the sample's basic_auth_users are in force");
    let (status, _, _) = rt
        .block_on(https_get_as(&address, &ca.der(), "/healthz", None, ""))
        .unwrap();
    assert_eq!(status, 200);
}

fn daemon(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ocfs2-watchdog"));
    command
        .arg("--path.rootfs")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mounts-healthy/rootfs"))
        .args(["--no-collector.kernel_log"]);
    if !args.contains(&"--log.level") {
        command.args(["--log.level", "warn"]);
    }
    command.args(args);
    command
}

#[test]
fn the_certificate_is_reread_when_its_file_changes_without_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let web = web_config(dir.path(), &ca, "", "");
    let first = std::fs::read(dir.path().join("cert.pem")).unwrap();
    let config = web.config_file.unwrap();
    // Its state in the scratch dir: the default state_dir is the host's.
    let toml = dir.path().join("daemon.toml");
    std::fs::write(
        &toml,
        format!("state_dir = \"{}\"\n", dir.path().join("state").display()),
    )
    .unwrap();
    // Info, not the helper's warn: the bound address is on an info line.
    let (child, address) = support::listen::spawn_listening(
        daemon(&["--log.level", "info", "--web.config.file"])
            .arg(&config)
            .arg("--config")
            .arg(&toml),
    );
    let _daemon = Daemon(child);
    let rt = runtime();
    let leaf = || {
        rt.block_on(https_get_as(&address, &ca.der(), "/readyz", None, ""))
            .map(|(_, _, leaf)| leaf)
    };
    let started = Instant::now();
    while leaf().is_err() && started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let served = leaf().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("BEGIN CERTIFICATE"));
    let second = ca.issue(dir.path());
    assert_ne!(served, second);
    let started = Instant::now();
    while leaf().ok() != Some(second.clone()) && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        leaf().unwrap(),
        second,
        "the new certificate was not picked up"
    );
}

#[test]
fn web_config_file_and_toml_tls_together_are_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let web = web_config(dir.path(), &ca, "", "");
    let toml = dir.path().join("config.toml");
    std::fs::write(
        &toml,
        "[web.tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n",
    )
    .unwrap();
    let output = daemon(&["--check-config", "--config"])
        .arg(&toml)
        .arg("--web.config.file")
        .arg(web.config_file.unwrap())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not both"), "{stderr}");
    // A broken web config file is exit 2 as well, naming the key.
    std::fs::write(
        dir.path().join("bad.yml"),
        "tls_server_config:\n  certfile: x\n",
    )
    .unwrap();
    let output = daemon(&["--check-config", "--web.config.file"])
        .arg(dir.path().join("bad.yml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("certfile"));
}

#[test]
fn every_documented_key_builds_a_server_and_bad_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    ca.issue(dir.path());
    std::fs::rename(dir.path().join("cert.pem"), dir.path().join("server.crt")).unwrap();
    std::fs::rename(dir.path().join("key.pem"), dir.path().join("server.key")).unwrap();
    std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/web-config/full.yml");
    let text = std::fs::read_to_string(full).unwrap();
    let load = |text: &str| {
        std::fs::write(dir.path().join("web.yml"), text).unwrap();
        Security::from_config(&WebConfig {
            config_file: Some(dir.path().join("web.yml")),
            ..WebConfig::default()
        })
    };
    let security = load(&text).unwrap();
    assert!(security.tls.is_some() && security.auth.is_some() && security.rate_limit.is_some());
    assert_eq!(security.headers.len(), 5);
    for (from, to, error) in [
        (
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_RSA_WITH_AES_128_CBC_SHA",
            "TLS_RSA_WITH_AES_128_CBC_SHA",
        ),
        ("CurveP256", "CurveP521", "CurveP521"),
        (
            "client_ca_file: ca.crt",
            "client_ca_file: absent.crt",
            "absent.crt",
        ),
    ] {
        let err = load(&text.replace(from, to)).unwrap_err().to_string();
        assert!(err.contains(error), "{to}: {err}");
    }
    // Inline PEM in place of the files.
    let cert = std::fs::read_to_string(dir.path().join("server.crt")).unwrap();
    let key = std::fs::read_to_string(dir.path().join("server.key")).unwrap();
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    let inline = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}",
        indent(&cert),
        indent(&key)
    );
    let rt = runtime();
    let address = serve(&rt, load(&inline).unwrap());
    assert_eq!(scrape(&rt, &address, &ca, None).unwrap(), 200);
}
