//! The `[web]` subsections: TLS, scrape authentication and request limits,
//! modelled on exporter-toolkit's web configuration so an operator can carry
//! a Go exporter's `tls_server_config` and `basic_auth_users` over unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, WebConfig};

/// TLS for the HTTP server, as exporter-toolkit's `tls_server_config`.
/// Both files are read again on SIGHUP; a pair that fails to load keeps the
/// one being served.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebTlsConfig {
    /// PEM certificate chain, leaf first. Replace the file and send SIGHUP to
    /// rotate it without dropping the listener.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf certificate.
    pub key_file: PathBuf,
}

/// Who may read `/metrics` and `/status`. Nothing configured: anyone, as
/// node_exporter. `/healthz` and `/readyz` never ask, so kubelet and systemd
/// probes need no secret; they reveal nothing but up/down.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebAuthConfig {
    /// User name to bcrypt hash (`htpasswd -nBC 10 user`, or the
    /// `basic_auth_users` of an exporter-toolkit web config, unchanged).
    pub basic_auth_users: BTreeMap<String, String>,
    /// File holding a bearer token a scraper may send instead
    /// (`Authorization: Bearer ...`, Prometheus `authorization.credentials_file`).
    /// Read again on SIGHUP, so a token rotates without a restart.
    pub bearer_token_file: Option<PathBuf>,
}

impl WebAuthConfig {
    /// True when `/metrics` and `/status` ask for credentials.
    pub fn is_required(&self) -> bool {
        !self.basic_auth_users.is_empty() || self.bearer_token_file.is_some()
    }
}

/// Bounds on what one client can make the server do.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebLimitsConfig {
    /// Largest request body accepted (413 past it). No endpoint needs more
    /// than a small JSON document.
    pub max_request_body_bytes: usize,
    /// A request not answered within this is answered 503. Handlers never
    /// touch the host, so this only bounds a starved runtime.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// `/metrics` and `/status` requests served at once; more are answered
    /// 503 at once instead of queueing. Raise it for many Prometheus replicas.
    pub max_concurrent_scrapes: usize,
    /// Deadline for a client to finish the TLS handshake; a client that
    /// stalls it holds one connection slot until then and blocks nobody.
    #[serde(with = "humantime_serde")]
    pub tls_handshake_timeout: Duration,
    /// Once the first byte of a request arrives, its whole head (request
    /// line and headers) must within this; a client dripping it byte by
    /// byte is cut off.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    /// Longer than Prometheus' usual scrape interval, so a scraper keeps its
    /// connection between scrapes.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Connections the scrape listener keeps open at once; more are closed
    /// as soon as they are accepted. Lowered at start when the open-file
    /// limit cannot hold it and the descriptors reserved for collectors and
    /// the audit log (docs/deploy.md, "Open files").
    pub max_connections: usize,
}

impl Default for WebLimitsConfig {
    fn default() -> Self {
        Self {
            max_request_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            max_concurrent_scrapes: 8,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            max_connections: 4096,
        }
    }
}

/// Where the control endpoints are served when `[web] admin_listen` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminListen {
    /// A Unix socket, reachable only by local processes its mode allows.
    Unix(PathBuf),
    /// A loopback TCP address: reachable from this host only.
    Loopback(std::net::SocketAddr),
    /// Any other TCP address: served over TLS only (the scrape port's
    /// certificate), which `validate` requires.
    Network(std::net::SocketAddr),
}

/// The directory under `state_dir` that holds the default admin socket:
/// made by the daemon, root's alone (0700).
pub const ADMIN_SOCKET_DIR: &str = "admin";
/// The default admin socket's name in `ADMIN_SOCKET_DIR`.
pub const ADMIN_SOCKET_NAME: &str = "control.sock";

/// Why an `admin_listen` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminListenError {
    #[error("{0:?}: the socket path must be absolute")]
    RelativeSocket(String),
    #[error("{0:?} is neither unix:/path nor host:port (e.g. \"127.0.0.1:9785\")")]
    Unparsable(String),
    #[error(
        "{0:?} is not a loopback address: the control endpoints may be reachable from the network only over TLS; set [web.tls] (or tls_server_config in web.config_file), or use a loopback address or unix:/path"
    )]
    NotLoopback(String),
}

impl AdminListen {
    pub fn parse(text: &str) -> Result<Self, AdminListenError> {
        if let Some(path) = text.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(AdminListenError::RelativeSocket(text.to_string()));
            }
            return Ok(Self::Unix(path));
        }
        let address = match text.strip_prefix("localhost:") {
            Some(port) => format!("127.0.0.1:{port}"),
            None => text.to_string(),
        };
        let address: std::net::SocketAddr = address
            .parse()
            .map_err(|_| AdminListenError::Unparsable(text.to_string()))?;
        if !address.ip().is_loopback() {
            return Ok(Self::Network(address));
        }
        Ok(Self::Loopback(address))
    }
}

impl super::Config {
    /// The Unix socket the control routes are served on: `admin_listen`'s
    /// when it names one, else, with an admin token configured,
    /// `<state_dir>/admin/control.sock`. Under `state_dir` and not in /run:
    /// the state directory is root's and exists wherever the daemon runs,
    /// including a container with a read-only root filesystem, and a
    /// scratch state directory gives every test its own socket.
    pub fn admin_socket(&self) -> Option<PathBuf> {
        match self.web.admin_listen() {
            Some(AdminListen::Unix(path)) => Some(path),
            _ if self.web.admin_token_file.is_some() => Some(
                self.state_dir
                    .0
                    .join(ADMIN_SOCKET_DIR)
                    .join(ADMIN_SOCKET_NAME),
            ),
            _ => None,
        }
    }
}

impl WebConfig {
    /// The control listener, when one is configured and valid.
    pub fn admin_listen(&self) -> Option<AdminListen> {
        self.admin_listen
            .as_deref()
            .and_then(|text| AdminListen::parse(text).ok())
    }

    /// The TCP control listener (`admin_listen` = host:port), if any.
    pub fn admin_tcp(&self) -> Option<AdminListen> {
        self.admin_listen()
            .filter(|listen| !matches!(listen, AdminListen::Unix(_)))
    }

    /// Relative secret and certificate paths name files next to the config.
    pub(super) fn resolve_paths(&mut self, dir: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        };
        if let Some(tls) = &mut self.tls {
            resolve(&mut tls.cert_file);
            resolve(&mut tls.key_file);
        }
        if let Some(token) = &mut self.auth.bearer_token_file {
            resolve(token);
        }
        if let Some(file) = &mut self.config_file {
            resolve(file);
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if let Some(text) = &self.admin_listen {
            match AdminListen::parse(text) {
                Err(reason) => return invalid("web.admin_listen", reason.to_string()),
                // The web config file's TLS is checked when it is read.
                Ok(AdminListen::Network(_)) if self.tls.is_none() && self.config_file.is_none() => {
                    return invalid(
                        "web.admin_listen",
                        AdminListenError::NotLoopback(text.clone()).to_string(),
                    )
                }
                Ok(_) => {}
            }
        }
        let limits = &self.limits;
        if limits.max_concurrent_scrapes == 0 {
            return invalid(
                "web.limits.max_concurrent_scrapes",
                "must be at least 1".into(),
            );
        }
        if limits.max_connections < limits.max_concurrent_scrapes {
            return invalid(
                "web.limits.max_connections",
                "must be at least web.limits.max_concurrent_scrapes".into(),
            );
        }
        if [
            limits.request_timeout,
            limits.tls_handshake_timeout,
            limits.header_read_timeout,
            limits.idle_timeout,
        ]
        .iter()
        .any(Duration::is_zero)
        {
            return invalid("web.limits", "timeouts must be greater than 0".into());
        }
        check_bcrypt_users("web.auth.basic_auth_users", &self.auth.basic_auth_users)?;
        if self.config_file.is_some() && (self.tls.is_some() || self.auth.is_required()) {
            return invalid(
                "web.config_file",
                "set either the exporter-toolkit web config file or [web.tls]/[web.auth], not both"
                    .into(),
            );
        }
        check_telemetry_path(&self.telemetry_path)
    }
}

/// Routes the telemetry path may not take over: the scrape port's own, the
/// control routes (served on the admin listener, but a scrape path that
/// looks like one would confuse whoever reads the logs) and the peer
/// protocol's. axum panics on a route registered twice.
pub const RESERVED_PATHS: &[&str] = &[
    "/",
    "/healthz",
    "/readyz",
    "/status",
    "/status/cluster",
    "/pause",
    "/resume",
    "/reset",
    "/maintenance",
    "/maintenance/on",
    "/maintenance/off",
];

/// A path axum can route to and that no other route has: starts with `/`,
/// no wildcard or capture segment (`{`, `}`, `*`), no `//`, no query,
/// printable ASCII.
fn check_telemetry_path(path: &str) -> Result<(), ConfigError> {
    let invalid = |reason: String| {
        Err(ConfigError::Invalid {
            key: "web.telemetry_path",
            reason,
        })
    };
    let normalized = path.trim_end_matches('/');
    if RESERVED_PATHS.contains(&path) || RESERVED_PATHS.contains(&normalized) {
        return invalid(format!(
            "{path:?} is a route the daemon serves already; reserved: {RESERVED_PATHS:?}"
        ));
    }
    let bad_char = |c: char| !c.is_ascii_graphic() || matches!(c, '{' | '}' | '*' | '?' | '#');
    if !path.starts_with('/') || path.contains("//") || path.chars().any(bad_char) {
        return invalid(format!(
            "{path:?} must start with / and hold only printable ASCII without {{, }}, *, ?, # or //"
        ));
    }
    Ok(())
}

/// bcrypt would reject a malformed hash at every request; say so at start.
pub(super) fn check_bcrypt_users(
    key: &'static str,
    users: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (user, hash) in users {
        if !(hash.starts_with("$2") && hash.len() == 60) {
            return Err(ConfigError::Invalid {
                key,
                reason: format!("the hash of {user:?} is not a bcrypt hash ($2y$...)"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn web_section_parses_and_is_checked() {
        let hash = "$2y$10$ZGZ5aGR5aGR5aGR5aGR5aOq0fTn2vIX5L0RSP2bXbbKJJj6l2QFeW";
        assert_eq!(hash.len(), 60);
        let config = parse(&format!(
            "[web.tls]\ncert_file = \"/etc/c.pem\"\nkey_file = \"/etc/k.pem\"\n\
             [web.auth]\nbasic_auth_users = {{ prometheus = \"{hash}\" }}\n\
             [web.limits]\nrequest_timeout = \"3s\"\n"
        ))
        .unwrap();
        assert_eq!(config.web.auth.basic_auth_users["prometheus"], hash);
        assert!(config.web.auth.is_required());
        assert_eq!(config.web.limits.request_timeout, Duration::from_secs(3));
        assert_eq!(parse(&config.to_toml()).unwrap(), config);
        let err = parse("[web.auth]\nbasic_auth_users = { p = \"secret\" }\n").unwrap_err();
        assert!(err.to_string().contains("not a bcrypt hash"), "{err}");
        let err = parse("[web.limits]\nmax_concurrent_scrapes = 0\n").unwrap_err();
        assert!(err.to_string().contains("max_concurrent_scrapes"), "{err}");
        let err = parse("[web.tls]\ncert_file = \"c.pem\"\n").unwrap_err();
        assert!(err.to_string().contains("key_file"), "{err}");
    }

    #[test]
    fn admin_listen_is_a_unix_socket_or_loopback() {
        assert_eq!(
            AdminListen::parse("unix:/run/x.sock"),
            Ok(AdminListen::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            AdminListen::parse("localhost:9785"),
            Ok(AdminListen::Loopback("127.0.0.1:9785".parse().unwrap()))
        );
        assert!(AdminListen::parse("[::1]:9785").is_ok());
        assert_eq!(
            AdminListen::parse("10.0.0.1:9785"),
            Ok(AdminListen::Network("10.0.0.1:9785".parse().unwrap()))
        );
        assert_eq!(
            AdminListen::parse("nowhere"),
            Err(AdminListenError::Unparsable("nowhere".into()))
        );
        let err = parse("[web]\nadmin_listen = \"0.0.0.0:9785\"\n").unwrap_err();
        assert!(err.to_string().contains("not a loopback"), "{err}");
        assert!(err.to_string().contains("[web.tls]"), "{err}");
        // Over TLS a network admin listener is allowed.
        let config = parse(
            "[web]\nadmin_listen = \"0.0.0.0:9785\"\n\
             [web.tls]\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\n",
        )
        .unwrap();
        assert!(matches!(
            config.web.admin_tcp(),
            Some(AdminListen::Network(_))
        ));
        let err = parse("[web]\nadmin_listen = \"unix:relative.sock\"\n").unwrap_err();
        assert!(err.to_string().contains("absolute"), "{err}");
    }

    #[test]
    fn the_admin_socket_defaults_under_the_state_dir_with_a_token() {
        let config = parse("state_dir = \"/s\"\n").unwrap();
        assert_eq!(config.admin_socket(), None);
        let config = parse("state_dir = \"/s\"\n[web]\nadmin_token_file = \"/t\"\n").unwrap();
        assert_eq!(
            config.admin_socket(),
            Some(PathBuf::from("/s/admin/control.sock"))
        );
        assert_eq!(config.web.admin_tcp(), None);
        let config =
            parse("[web]\nadmin_token_file = \"/t\"\nadmin_listen = \"unix:/run/a.sock\"\n")
                .unwrap();
        assert_eq!(config.admin_socket(), Some(PathBuf::from("/run/a.sock")));
    }

    #[test]
    fn a_telemetry_path_on_a_served_route_is_a_config_error() {
        for path in [
            "/",
            "/healthz",
            "/healthz/",
            "/status",
            "/pause",
            "/reset",
            "/maintenance",
            "metrics",
            "/{x}",
            "/a/*rest",
            "/a b",
            "//m",
        ] {
            let err = parse(&format!("[web]\ntelemetry_path = {path:?}\n")).unwrap_err();
            assert!(
                err.to_string().contains("web.telemetry_path"),
                "{path}: {err}"
            );
        }
        assert!(parse("[web]\ntelemetry_path = \"/probe/metrics\"\n").is_ok());
    }

    #[test]
    fn relative_web_files_are_taken_from_the_config_dir() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[web.tls]\ncert_file = \"c.pem\"\nkey_file = \"/k.pem\"\n\
             [web.auth]\nbearer_token_file = \"t\"\n",
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        let tls = config.web.tls.unwrap();
        assert_eq!(tls.cert_file, dir.path().join("c.pem"));
        assert_eq!(tls.key_file, PathBuf::from("/k.pem"));
        assert_eq!(
            config.web.auth.bearer_token_file,
            Some(dir.path().join("t"))
        );
    }
}
