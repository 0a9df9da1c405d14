//! Builds the rustls server configuration from exporter-toolkit's
//! `tls_server_config`: protocol versions, TLS 1.2 cipher suites and curves
//! by Go's names, and client certificates (mutual TLS) as Go's
//! `tls.ClientAuthType` treats them, plus `client_allowed_sans`.
//!
//! `tls.rs` calls `server_config` whenever it (re)loads the files; nothing
//! here reads a file except the client CA.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::tls::TlsError;
use crate::config::web_file::{ClientAuthType, TlsServerConfig, TlsVersion};

/// A setting that names something this server cannot do.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cipher suite {0:?} is not offered by this server (TLS 1.2 ECDHE AEAD suites only)")]
    CipherSuite(String),
    #[error("curve {0:?} is not offered by this server (X25519, CurveP256, CurveP384)")]
    Curve(String),
    #[error("cannot read the client CA {origin}: {source}")]
    ClientCa {
        origin: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("the client CA holds no usable certificate: {0}")]
    ClientCaEmpty(String),
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The whole server configuration for one loaded key pair.
pub fn server_config(
    settings: &TlsServerConfig,
    certified: Arc<CertifiedKey>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(provider(settings)?);
    let verifier = client_verifier(settings, &provider)?;
    let mut versions = Vec::new();
    if settings.min_version <= TlsVersion::TLS12 && settings.max_version >= TlsVersion::TLS12 {
        versions.push(&rustls::version::TLS12);
    }
    if settings.max_version >= TlsVersion::TLS13 {
        versions.push(&rustls::version::TLS13);
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(Fixed(certified)));
    config.ignore_client_order = settings.prefer_server_cipher_suites;
    // The server speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The ring provider narrowed to the configured suites and curves.
fn provider(settings: &TlsServerConfig) -> Result<CryptoProvider, SettingsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if !settings.cipher_suites.is_empty() {
        let mut chosen: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|suite| suite.tls13().is_some())
            .copied()
            .collect();
        for name in &settings.cipher_suites {
            // Go's alias for the ChaCha suites omits the hash.
            let full = if name.ends_with("CHACHA20_POLY1305") {
                format!("{name}_SHA256")
            } else {
                name.clone()
            };
            let suite = provider
                .cipher_suites
                .iter()
                .find(|s| s.tls13().is_none() && format!("{:?}", s.suite()) == full)
                .ok_or_else(|| SettingsError::CipherSuite(name.clone()))?;
            chosen.push(*suite);
        }
        provider.cipher_suites = chosen;
    }
    if !settings.curve_preferences.is_empty() {
        let mut chosen = Vec::new();
        for name in &settings.curve_preferences {
            let wanted = match name.as_str() {
                "X25519" => rustls::NamedGroup::X25519,
                "CurveP256" => rustls::NamedGroup::secp256r1,
                "CurveP384" => rustls::NamedGroup::secp384r1,
                _ => return Err(SettingsError::Curve(name.clone())),
            };
            let group = provider
                .kx_groups
                .iter()
                .find(|g| g.name() == wanted)
                .ok_or_else(|| SettingsError::Curve(name.clone()))?;
            chosen.push(*group);
        }
        provider.kx_groups = chosen;
    }
    Ok(provider)
}

fn client_verifier(
    settings: &TlsServerConfig,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, SettingsError> {
    let algorithms = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ClientCertVerifier> = match settings.client_auth_type {
        ClientAuthType::NoClientCert => return Ok(WebPkiClientVerifier::no_client_auth()),
        ClientAuthType::RequestClientCert => Arc::new(AnyClientCert {
            mandatory: false,
            algorithms,
        }),
        ClientAuthType::RequireAnyClientCert => Arc::new(AnyClientCert {
            mandatory: true,
            algorithms,
        }),
        ClientAuthType::VerifyClientCertIfGiven => {
            WebPkiClientVerifier::builder_with_provider(client_roots(settings)?, provider.clone())
                .allow_unauthenticated()
                .build()?
        }
        ClientAuthType::RequireAndVerifyClientCert => {
            WebPkiClientVerifier::builder_with_provider(client_roots(settings)?, provider.clone())
                .build()?
        }
    };
    if settings.client_allowed_sans.is_empty() {
        return Ok(verifier);
    }
    Ok(Arc::new(AllowedSans {
        inner: verifier,
        allowed: settings.client_allowed_sans.clone(),
    }))
}

fn client_roots(settings: &TlsServerConfig) -> Result<Arc<rustls::RootCertStore>, SettingsError> {
    let certs: Vec<CertificateDer<'static>> = match (&settings.client_ca, &settings.client_ca_file)
    {
        (Some(pem), _) => CertificateDer::pem_slice_iter(pem.as_bytes()).collect(),
        (None, Some(path)) => CertificateDer::pem_file_iter(path).and_then(|certs| certs.collect()),
        (None, None) => Ok(Vec::new()),
    }
    .map_err(|source| SettingsError::ClientCa {
        origin: ca_origin(settings),
        source,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(SettingsError::ClientCaEmpty(ca_origin(settings)));
    }
    Ok(Arc::new(roots))
}

/// The client CA's file name, or "inline client_ca", for errors.
fn ca_origin(settings: &TlsServerConfig) -> String {
    settings
        .client_ca_file
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "inline client_ca".into())
}

/// Serves the one loaded pair.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// Go's RequestClientCert / RequireAnyClientCert: a certificate is asked
/// for (and required when `mandatory`) but not checked against any CA; the
/// handshake signature still proves the client holds its key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `client_allowed_sans`: after `inner` accepts the certificate, one of its
/// DNS, e-mail, URI or IP subject alternative names must equal an entry.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let sans = subject_alt_names(end_entity);
        if sans
            .iter()
            .any(|san| self.allowed.iter().any(|a| san.matches(a)))
        {
            Ok(verified)
        } else {
            tracing::debug!(sans = ?sans, "Refused a client certificate: no allowed SAN.");
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum San {
    Text(String),
    Ip(IpAddr),
}

impl San {
    /// Exact match, as exporter-toolkit compares; IPs by value.
    fn matches(&self, allowed: &str) -> bool {
        match self {
            Self::Text(text) => text == allowed,
            Self::Ip(ip) => allowed.parse::<IpAddr>().is_ok_and(|a| a == *ip),
        }
    }
}

fn subject_alt_names(der: &CertificateDer<'_>) -> Vec<San> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(extension)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(text) | GeneralName::RFC822Name(text) | GeneralName::URI(text) => {
                Some(San::Text(text.to_string()))
            }
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| San::Ip(IpAddr::from(b))),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| San::Ip(IpAddr::from(b))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}
