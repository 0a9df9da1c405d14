//! The `[web]` settings in force: TLS, credentials, limits, response headers,
//! rate limit and the telemetry path, from the TOML `[web]` section or from
//! an exporter-toolkit web config file (`--web.config.file`).
//!
//! `Security::from_config` reads every file once at start (and under
//! `--check-config`), so a bad path is a configuration error before the
//! listener opens; `reload` (SIGHUP) and the TLS store's own change check
//! (see `tls.rs`) read them again later.

use std::future::Future;
use std::sync::Arc;

use axum::Router;

use super::auth::{self, ScrapeAuth};
use super::serve;
use super::telemetry::{HttpStats, RateLimiter};
use super::tls::{self, CertStore};
use crate::config::web_file::{ClientAuthType, WebConfigFile};
use crate::config::{ConfigError, WebAuthConfig, WebConfig, WebLimitsConfig};

/// Why the web configuration could not be put in force.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("web config file: {0}")]
    File(#[from] ConfigError),
    #[error("web.admin_token_file: {0}")]
    AdminToken(#[from] crate::secret::TokenError),
    #[error("web.admin_listen {0} is not a loopback address and web.config_file has no tls_server_config: the control endpoints may be reachable from the network only over TLS")]
    AdminNeedsTls(String),
}

/// The admin token must pass the token rules at start, as the scrape token
/// must be readable: a bad file would leave pause, resume and reset closed
/// (or guarded by a guessable token) with nobody noticing until the night
/// they are needed.
fn check_admin_token(path: &std::path::Path) -> Result<(), SecurityError> {
    crate::secret::load_token(path)?;
    Ok(())
}

/// Everything about serving HTTP that the configuration decides.
#[derive(Debug, Clone)]
pub struct Security {
    pub auth: Option<Arc<ScrapeAuth>>,
    pub tls: Option<Arc<CertStore>>,
    pub limits: WebLimitsConfig,
    /// `http_server_config.headers`, added to every response.
    pub headers: Vec<(String, String)>,
    pub rate_limit: Option<Arc<RateLimiter>>,
    /// Where `/metrics` is served (`--web.telemetry-path`).
    pub telemetry_path: String,
    /// Requests served and refused, for the self-metrics.
    pub stats: Arc<HttpStats>,
    /// `/` and `/status` leave out audit callers, kernel log text and iSCSI
    /// names: anyone who reaches the port may read them (`redact_details`).
    pub redact_details: bool,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            auth: None,
            tls: None,
            limits: WebLimitsConfig::default(),
            headers: Vec::new(),
            rate_limit: None,
            telemetry_path: "/metrics".to_string(),
            stats: Arc::default(),
            redact_details: false,
        }
    }
}

impl Security {
    /// Reads the token, certificate and web config files; `--check-config`
    /// runs it too.
    pub fn from_config(web: &WebConfig) -> Result<Self, SecurityError> {
        if let Some(path) = &web.admin_token_file {
            check_admin_token(path)?;
        }
        let admin_on_network = matches!(
            web.admin_tcp(),
            Some(crate::config::AdminListen::Network(_))
        );
        let mut security = Self {
            limits: web.limits.clone(),
            telemetry_path: web.telemetry_path.clone(),
            ..Self::default()
        };
        let mut client_verified = false;
        let mut pages_excluded = false;
        match &web.config_file {
            None => {
                security.tls = web.tls.as_ref().map(CertStore::load).transpose()?;
                security.auth = ScrapeAuth::from_config(&web.auth)?;
            }
            Some(path) => {
                let file = WebConfigFile::load(path)?;
                security.tls = file
                    .tls_server_config
                    .as_ref()
                    .map(CertStore::load_settings)
                    .transpose()?;
                if file.http_server_config.http2 {
                    tracing::debug!("HTTP/2 is not offered; the server speaks HTTP/1.1.");
                }
                let users = WebAuthConfig {
                    basic_auth_users: file.basic_auth_users.clone(),
                    bearer_token_file: None,
                };
                if admin_on_network && file.tls_server_config.is_none() {
                    return Err(SecurityError::AdminNeedsTls(
                        web.admin_listen.clone().unwrap_or_default(),
                    ));
                }
                security.auth = ScrapeAuth::from_config(&users)?
                    .map(|auth| auth.with_excluded_paths(&file.basic_auth_excluded_paths));
                security.headers = file.http_server_config.headers.into_iter().collect();
                security.rate_limit = file
                    .rate_limit
                    .filter(|limit| !limit.interval.is_zero())
                    .map(|limit| Arc::new(RateLimiter::new(limit.interval, limit.burst)));
                client_verified = file.tls_server_config.as_ref().is_some_and(|tls| {
                    tls.client_auth_type == ClientAuthType::RequireAndVerifyClientCert
                });
                pages_excluded = file
                    .basic_auth_excluded_paths
                    .iter()
                    .any(|path| path == "/" || path == "/status");
            }
        }
        let authenticated = client_verified || (security.auth.is_some() && !pages_excluded);
        security.redact_details = redact_details(web, authenticated);
        Ok(security)
    }

    /// SIGHUP: reads the TLS files and the bearer token again. What fails
    /// to load is logged and the previous one stays in force.
    pub fn reload(&self) {
        if let Some(store) = &self.tls {
            match store.reload() {
                Ok(()) => tracing::info!("Reloaded the TLS certificate."),
                Err(error) => {
                    tracing::error!(error = %error, "Cannot reload the TLS certificate; keeping the one in force.")
                }
            }
        }
        if let Some(auth) = &self.auth {
            if let Err(error) = auth.reload_token() {
                tracing::error!(error = %error, "Cannot reload the bearer token; keeping the one in force.");
            }
        }
    }

    /// Serves `router` on `listener`, over TLS when configured, until
    /// `shutdown` completes, with at most `limits.max_connections`
    /// connections (see `crate::http::serve`).
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let listener = match &self.tls {
            None => serve::Listener::Tcp(listener),
            Some(store) => serve::Listener::Tls(listener, Arc::clone(store)),
        };
        let gate = serve::Gate::new(self.limits.max_connections, self.stats.listener("scrape"));
        serve::serve(
            listener,
            router,
            gate,
            serve::Deadlines::from_limits(&self.limits),
            shutdown,
        )
        .await;
        Ok(())
    }
}

/// Whether `/` and `/status` leave out callers, kernel log text and iSCSI
/// names: yes on a listener others can reach that asks for no credentials,
/// unless `[web] show_sensitive_details` says to show them anyway. A listen
/// address that is not a loopback IP (or `localhost`) counts as reachable.
pub fn redact_details(web: &WebConfig, authenticated: bool) -> bool {
    !(web.show_sensitive_details || authenticated || is_loopback(&web.listen_address))
}

fn is_loopback(listen_address: &str) -> bool {
    if let Ok(address) = listen_address.parse::<std::net::SocketAddr>() {
        return address.ip().is_loopback();
    }
    listen_address
        .rsplit_once(':')
        .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_hidden_only_from_an_open_listener_others_reach() {
        let web = |listen: &str, show: bool| WebConfig {
            listen_address: listen.into(),
            show_sensitive_details: show,
            ..WebConfig::default()
        };
        for open in ["0.0.0.0:9784", "[::]:9784", "10.0.0.5:9784", "node1:9784"] {
            assert!(redact_details(&web(open, false), false), "{open}");
            assert!(!redact_details(&web(open, true), false), "{open}");
            assert!(!redact_details(&web(open, false), true), "{open}");
        }
        for local in ["127.0.0.1:9784", "[::1]:9784", "localhost:9784"] {
            assert!(!redact_details(&web(local, false), false), "{local}");
        }
    }

    #[test]
    fn the_default_listener_without_credentials_hides_details() {
        let security = Security::from_config(&WebConfig::default()).unwrap();
        assert!(security.redact_details);
        let with_users = WebConfig {
            auth: WebAuthConfig {
                basic_auth_users: [("ops".to_string(), bcrypt::hash("pw", 4).unwrap())].into(),
                bearer_token_file: None,
            },
            ..WebConfig::default()
        };
        assert!(!Security::from_config(&with_users).unwrap().redact_details);
    }
}
