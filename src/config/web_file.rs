//! `--web.config.file`: exporter-toolkit's YAML web configuration, so the
//! `web-config.yml` that config management templates for every Go exporter
//! works here unchanged (https://github.com/prometheus/exporter-toolkit,
//! docs/web-configuration.md).
//!
//! Parsed with `serde_norway` (the maintained serde_yaml fork, see
//! docs/design.md) into the same shapes as exporter-toolkit's Go structs,
//! unknown keys rejected by name. `crate::http` turns it into the TLS
//! settings, the basic-auth users and the response headers in force. It
//! replaces the TOML `[web.tls]` and `[web.auth]`: setting both is an error,
//! so there is never a question of which one wins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The whole file. Every section is optional, as in exporter-toolkit.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfigFile {
    pub tls_server_config: Option<TlsServerConfig>,
    pub http_server_config: HttpServerConfig,
    /// User name to bcrypt hash.
    pub basic_auth_users: BTreeMap<String, String>,
    /// Paths served without basic auth.
    pub basic_auth_excluded_paths: Vec<String>,
    pub rate_limit: Option<RateLimit>,
}

/// A token bucket over every request: one token per `interval`, at most
/// `burst` saved up; a request without a token is answered 429.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Go duration ("100ms", "1s"); 0 turns the limiter off.
    #[serde(with = "humantime_serde")]
    pub interval: std::time::Duration,
    pub burst: u32,
}

/// Go's `tls.ClientAuthType`, by exporter-toolkit's names.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum ClientAuthType {
    #[default]
    NoClientCert,
    RequestClientCert,
    /// `RequireClientCert` is exporter-toolkit's older name for it.
    #[serde(alias = "RequireClientCert")]
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuthType {
    /// Whether the certificate a client sends is checked against the CA.
    pub fn verifies(self) -> bool {
        matches!(
            self,
            Self::VerifyClientCertIfGiven | Self::RequireAndVerifyClientCert
        )
    }
}

/// A TLS protocol version by Go's names. rustls speaks 1.2 and 1.3 only.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    #[serde(default)]
    pub cert_file: PathBuf,
    #[serde(default)]
    pub key_file: PathBuf,
    /// The certificate chain inline (PEM), in place of `cert_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// The key inline (PEM), in place of `key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The client CA inline (PEM), in place of `client_ca_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<String>,
    #[serde(default)]
    pub client_auth_type: ClientAuthType,
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// A client certificate must carry one of these as a DNS, e-mail, IP or
    /// URI subject alternative name.
    #[serde(default)]
    pub client_allowed_sans: Vec<String>,
    #[serde(default = "default_min_version")]
    pub min_version: TlsVersion,
    #[serde(default = "default_max_version")]
    pub max_version: TlsVersion,
    /// TLS 1.2 suites by their IANA names, as Go spells them; TLS 1.3
    /// suites are not configurable, as in Go.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    #[serde(default = "default_true")]
    pub prefer_server_cipher_suites: bool,
    /// Go's curve names: X25519, CurveP256, CurveP384 (CurveP521 is not
    /// offered by the ring provider and is refused).
    #[serde(default)]
    pub curve_preferences: Vec<String>,
}

impl TlsServerConfig {
    /// A certificate pair with exporter-toolkit's defaults for the rest, as
    /// the TOML `[web.tls]` gives it.
    pub fn from_pair(cert_file: &Path, key_file: &Path) -> Self {
        Self {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            cert: None,
            key: None,
            client_ca: None,
            client_auth_type: ClientAuthType::NoClientCert,
            client_ca_file: None,
            client_allowed_sans: Vec::new(),
            min_version: default_min_version(),
            max_version: default_max_version(),
            cipher_suites: Vec::new(),
            prefer_server_cipher_suites: true,
            curve_preferences: Vec::new(),
        }
    }

    /// The files read to build the TLS configuration (inline PEM aside).
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        let cert = self.cert.is_none().then_some(self.cert_file.as_path());
        let key = self.key.is_none().then_some(self.key_file.as_path());
        cert.into_iter()
            .chain(key)
            .chain(self.client_ca_file.as_deref())
    }
}

fn default_true() -> bool {
    true
}

fn default_min_version() -> TlsVersion {
    TlsVersion::TLS12
}

fn default_max_version() -> TlsVersion {
    TlsVersion::TLS13
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpServerConfig {
    /// Accepted for compatibility; the server speaks HTTP/1.1 only.
    pub http2: bool,
    /// Added to every response; only the names exporter-toolkit allows.
    pub headers: BTreeMap<String, String>,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        Self {
            http2: true,
            headers: BTreeMap::new(),
        }
    }
}

/// The response headers exporter-toolkit lets a web config set.
pub const ALLOWED_HEADERS: &[&str] = &[
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

impl WebConfigFile {
    /// Reads, parses and checks the file; relative paths in it name files
    /// next to it, as exporter-toolkit resolves them.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut file = Self::parse(&text, path)?;
        if let (Some(dir), Some(tls)) = (path.parent(), file.tls_server_config.as_mut()) {
            for file_path in [&mut tls.cert_file, &mut tls.key_file]
                .into_iter()
                .chain(tls.client_ca_file.as_mut())
            {
                if !file_path.as_os_str().is_empty() && file_path.is_relative() {
                    *file_path = dir.join(&*file_path);
                }
            }
        }
        Ok(file)
    }

    /// Parses and checks a document; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        // An empty file is a valid, empty web config, as in exporter-toolkit.
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let file: Self = serde_norway::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        file.validate()?;
        Ok(file)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        for name in self.http_server_config.headers.keys() {
            if !ALLOWED_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(name)) {
                return invalid(
                    "http_server_config.headers",
                    format!("HTTP header {name:?} can not be configured"),
                );
            }
        }
        super::web::check_bcrypt_users("basic_auth_users", &self.basic_auth_users)?;
        let Some(tls) = &self.tls_server_config else {
            return Ok(());
        };
        let given = |path: &PathBuf| !path.as_os_str().is_empty();
        for (key, file, inline) in [
            (
                "tls_server_config.cert_file",
                given(&tls.cert_file),
                tls.cert.is_some(),
            ),
            (
                "tls_server_config.key_file",
                given(&tls.key_file),
                tls.key.is_some(),
            ),
        ] {
            if file == inline {
                return invalid(
                    key,
                    "give exactly one of the file and the inline PEM".into(),
                );
            }
        }
        if tls.client_ca_file.is_some() && tls.client_ca.is_some() {
            return invalid(
                "tls_server_config.client_ca_file",
                "give either client_ca_file or client_ca, not both".into(),
            );
        }
        let has_ca = tls.client_ca_file.is_some() || tls.client_ca.is_some();
        if has_ca && tls.client_auth_type == ClientAuthType::NoClientCert {
            return invalid(
                "tls_server_config.client_ca_file",
                "client CAs have been configured without a client_auth_type".into(),
            );
        }
        if tls.client_auth_type.verifies() && !has_ca {
            return invalid(
                "tls_server_config.client_ca_file",
                format!(
                    "client_auth_type {:?} needs client_ca_file",
                    tls.client_auth_type
                ),
            );
        }
        if !tls.client_allowed_sans.is_empty()
            && !matches!(
                tls.client_auth_type,
                ClientAuthType::RequireAnyClientCert | ClientAuthType::RequireAndVerifyClientCert
            )
        {
            return invalid(
                "tls_server_config.client_allowed_sans",
                "needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert".into(),
            );
        }
        if tls.max_version < TlsVersion::TLS12 {
            return invalid(
                "tls_server_config.max_version",
                "TLS 1.0 and 1.1 are not supported; the lowest is TLS12".into(),
            );
        }
        if tls.min_version > tls.max_version {
            return invalid(
                "tls_server_config.min_version",
                "is above max_version".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "web_file_tests.rs"]
mod tests;
