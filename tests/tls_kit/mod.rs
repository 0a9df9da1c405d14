//! Shared by the HTTP security tests (tests/web_security.rs,
//! tests/web_config_file.rs): a CA made in the test that issues server and
//! client leaves, a rustls client that can present a client certificate, a
//! raw HTTP/1.1 client and an in-process server.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ocfs2_watchdog::http::{router_with, AppState, Security};
use ocfs2_watchdog::sampler::Health;
use ocfs2_watchdog::snapshot::Snapshot;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::support;

/// A test CA and a way to issue leaves from it.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A client certificate and its key, to present in a handshake.
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pem: String,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes a fresh `localhost` leaf pair to `dir` (cert.pem, key.pem);
    /// returns its DER.
    pub fn issue(&self, dir: &Path) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        cert.der().clone()
    }

    /// A client leaf with `sans` as DNS names (an IP when one parses).
    pub fn client(&self, sans: &[&str]) -> ClientIdentity {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans
            .iter()
            .map(|san| match san.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*san).try_into().unwrap()),
            })
            .collect();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ClientIdentity {
            chain: vec![cert.der().clone()],
            key_pem: key.serialize_pem(),
        }
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// GET over TLS trusting only `ca`: (status, response, served leaf).
pub async fn https_get(
    address: &str,
    ca: &CertificateDer<'static>,
    path: &str,
) -> std::io::Result<(u16, String, CertificateDer<'static>)> {
    https_get_as(address, ca, path, None, "").await
}

/// As `https_get`, presenting `identity` when given and sending `headers`.
pub async fn https_get_as(
    address: &str,
    ca: &CertificateDer<'static>,
    path: &str,
    identity: Option<&ClientIdentity>,
    headers: &str,
) -> std::io::Result<(u16, String, CertificateDer<'static>)> {
    https_request(address, ca, "GET", path, identity, headers).await
}

/// One `method` request over TLS trusting only `ca`, presenting `identity`
/// when given and sending `headers` (each ending in CRLF).
pub async fn https_request(
    address: &str,
    ca: &CertificateDer<'static>,
    method: &str,
    path: &str,
    identity: Option<&ClientIdentity>,
    headers: &str,
) -> std::io::Result<(u16, String, CertificateDer<'static>)> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(std::io::Error::other)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
                .map_err(std::io::Error::other)?;
            builder
                .with_client_auth_cert(identity.chain.clone(), key)
                .map_err(std::io::Error::other)?
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let mut tls = connector.connect(name, tcp).await?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    // With TLS 1.3 a refused client certificate shows up as an alert on
    // the first read, not in the handshake.
    let read = tls.read_to_end(&mut response).await;
    if response.is_empty() {
        read?;
    }
    let response = String::from_utf8_lossy(&response).to_string();
    Ok((support::status_code(&response), response, leaf))
}

/// A raw HTTP/1.1 exchange on loopback: (status, full response, lossy).
pub fn raw(address: &str, request: &str) -> (u16, String) {
    let (status, bytes) = raw_bytes(address, request);
    (status, String::from_utf8_lossy(&bytes).to_string())
}

pub fn raw_bytes(address: &str, request: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    (
        support::status_code(&String::from_utf8_lossy(&response)),
        response,
    )
}

pub fn get_with(address: &str, path: &str, authorization: Option<&str>) -> (u16, String) {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    raw(
        address,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
    )
}

/// An in-process server with `security`, snapshot 1 already published.
pub fn serve(rt: &tokio::runtime::Runtime, security: Security) -> String {
    serve_snapshot(rt, security, Snapshot::empty())
}

pub fn serve_snapshot(
    rt: &tokio::runtime::Runtime,
    security: Security,
    mut first: Snapshot,
) -> String {
    let (publish, snapshots) = watch::channel(Arc::new(Snapshot::empty()));
    first.sequence = first.sequence.max(1);
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
