//! Asks the local daemon for its status: `GET /status` (or the cluster
//! view, `GET /status/cluster`) on its admin socket when there is one
//! (root-only, so no credentials), else on the configured
//! listen address (the unspecified address means loopback), over TLS when
//! `[web.tls]` is set, with the configured credentials. The daemon's
//! certificate is pinned to `web.tls.cert_file` (the file it serves), so a
//! self-signed certificate works and no other one is accepted. Credentials:
//! the bearer token file when configured; basic auth (whose hashes cannot
//! give a password back) from `OCFS2_WATCHDOG_BASIC_AUTH=user:password`.
//! Plain blocking I/O with deadlines: the command must never hang.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;

use super::cluster::ClusterStatus;
use super::model::Overview;
use crate::config::WebConfig;

/// The environment variable holding `user:password` for basic auth.
pub const BASIC_AUTH_ENV: &str = "OCFS2_WATCHDOG_BASIC_AUTH";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Far more than any overview; a larger answer is not the daemon's.
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// Why the daemon's status could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("web.listen_address {0:?} is not host:port")]
    Address(String),
    #[error("no daemon answers on {address}: {source}")]
    NoAnswer {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up TLS to the daemon: {0}")]
    Tls(String),
    #[error("cannot read the credentials: {0}")]
    Credentials(String),
    #[error("no daemon answers on the admin socket {path}: {source}")]
    NoSocketAnswer {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the daemon on {address} answered HTTP {status}{hint}")]
    Refused {
        address: String,
        status: u16,
        hint: &'static str,
    },
    #[error("the daemon's answer is not a status document: {0}")]
    Invalid(String),
    #[error("the daemon has not taken its first snapshot yet")]
    NotReady,
}

/// Where to ask: the listen address with an unspecified IP made loopback.
pub fn daemon_address(web: &WebConfig) -> Result<SocketAddr, DaemonError> {
    let mut address: SocketAddr = web
        .listen_address
        .parse()
        .map_err(|_| DaemonError::Address(web.listen_address.clone()))?;
    if address.ip().is_unspecified() {
        address.set_ip(match address.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(address)
}

/// The daemon's overview, from its `/status`.
pub fn fetch_overview(web: &WebConfig) -> Result<(SocketAddr, Overview), DaemonError> {
    let (address, response) = get(web, "/status")?;
    let overview = parse_response(&address.to_string(), &response)?;
    Ok((address, overview))
}

/// The daemon's cluster view, from its `/status/cluster`.
pub fn fetch_cluster(web: &WebConfig) -> Result<(SocketAddr, ClusterStatus), DaemonError> {
    let (address, response) = get(web, crate::http::CLUSTER_STATUS_PATH)?;
    let body = body_of(&address.to_string(), &response)?;
    let status = serde_json::from_str(&body)
        .map_err(|e| DaemonError::Invalid(format!("cluster view: {e}")))?;
    Ok((address, status))
}

/// One GET to the daemon; the whole raw answer.
fn get(web: &WebConfig, path: &str) -> Result<(SocketAddr, Vec<u8>), DaemonError> {
    let address = daemon_address(web)?;
    let authorization = authorization(web)?;
    let stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
        .map_err(|source| DaemonError::NoAnswer { address, source })?;
    let io = |source| DaemonError::NoAnswer { address, source };
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    // HTTP/1.0: the answer ends with the connection, never chunked.
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {address}\r\nAccept: application/json\r\n{authorization}\r\n"
    );
    let response = match &web.tls {
        None => exchange(stream, &request),
        Some(tls) => {
            let config = pinned_client_config(&tls.cert_file)?;
            let name = ServerName::IpAddress(address.ip().into());
            let connection = rustls::ClientConnection::new(config, name)
                .map_err(|e| DaemonError::Tls(e.to_string()))?;
            exchange(rustls::StreamOwned::new(connection, stream), &request)
        }
    }
    .map_err(io)?;
    Ok((address, response))
}

/// The daemon's overview, from `/status` on its admin socket.
pub fn fetch_overview_from_socket(path: &std::path::Path) -> Result<Overview, DaemonError> {
    let io = |source| DaemonError::NoSocketAnswer {
        path: path.to_path_buf(),
        source,
    };
    let stream = std::os::unix::net::UnixStream::connect(path).map_err(io)?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    let request = "GET /status HTTP/1.0\r\nHost: localhost\r\nAccept: application/json\r\n\r\n";
    let response = exchange(stream, request).map_err(io)?;
    parse_response(&format!("unix:{}", path.display()), &response)
}

fn exchange(mut stream: impl Read + Write, request: &str) -> std::io::Result<Vec<u8>> {
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    let mut response = Vec::new();
    stream.take(MAX_RESPONSE_BYTES).read_to_end(&mut response)?;
    Ok(response)
}

fn authorization(web: &WebConfig) -> Result<String, DaemonError> {
    if let Some(path) = &web.auth.bearer_token_file {
        let token = std::fs::read_to_string(path)
            .map_err(|e| DaemonError::Credentials(format!("{}: {e}", path.display())))?;
        return Ok(format!("Authorization: Bearer {}\r\n", token.trim()));
    }
    match std::env::var(BASIC_AUTH_ENV) {
        Ok(pair) if !web.auth.basic_auth_users.is_empty() => {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair.trim());
            Ok(format!("Authorization: Basic {encoded}\r\n"))
        }
        _ => Ok(String::new()),
    }
}

/// The body of a 200 answer; any other status is the daemon refusing.
fn body_of(address: &str, response: &[u8]) -> Result<String, DaemonError> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| DaemonError::Invalid("no HTTP header".into()))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| DaemonError::Invalid("no HTTP status line".into()))?;
    if status != 200 {
        let hint = match status {
            401 => " (credentials: see web.auth and OCFS2_WATCHDOG_BASIC_AUTH)",
            404 => " (a daemon without the cluster view)",
            503 => " (busy)",
            _ => "",
        };
        return Err(DaemonError::Refused {
            address: address.to_string(),
            status,
            hint,
        });
    }
    Ok(body.to_string())
}

fn parse_response(address: &str, response: &[u8]) -> Result<Overview, DaemonError> {
    let body = body_of(address, response)?;
    let document: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| DaemonError::Invalid(e.to_string()))?;
    if document["ready"] != serde_json::Value::Bool(true) {
        return Err(DaemonError::NotReady);
    }
    serde_json::from_value(document["overview"].clone())
        .map_err(|e| DaemonError::Invalid(format!("overview: {e}")))
}

fn pinned_client_config(
    cert_file: &std::path::Path,
) -> Result<Arc<rustls::ClientConfig>, DaemonError> {
    let leaf = CertificateDer::pem_file_iter(cert_file)
        .and_then(|mut certs| certs.next().transpose())
        .map_err(|e| DaemonError::Tls(format!("{}: {e}", cert_file.display())))?
        .ok_or_else(|| DaemonError::Tls(format!("{} holds no certificate", cert_file.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCertificate {
        leaf: leaf.into_owned(),
        provider: Arc::clone(&provider),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DaemonError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts exactly the daemon's own certificate (the configured file), with
/// real handshake signature checks: the CLI talks to this node's daemon, not
/// to a name a CA vouches for.
#[derive(Debug)]
struct PinnedCertificate {
    leaf: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the daemon presented a certificate other than web.tls.cert_file".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
