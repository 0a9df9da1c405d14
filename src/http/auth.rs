//! Credentials for `/metrics` and `/status`: HTTP basic auth against bcrypt
//! hashes, or a bearer token read from a file, as exporter-toolkit offers Go
//! exporters (`basic_auth_users`) and Prometheus sends (`basic_auth`,
//! `authorization.credentials_file`).
//!
//! bcrypt because the hashes then come straight from `htpasswd -B` or an
//! existing exporter-toolkit web config, and because a stolen config does not
//! give the passwords away. A bcrypt check costs tens of milliseconds of CPU,
//! so it runs on the blocking pool and a successful one is remembered (by a
//! SHA-256 of the credentials, never the password itself) so that a 15s
//! scrape does not pay it every time; an unknown user is checked against a
//! dummy hash so timing does not tell which users exist. The bearer token is
//! compared through SHA-256 digests, so the comparison time says nothing
//! about how much of it matched.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::config::WebAuthConfig;

const REALM: &str = "ocfs2-watchdog";
/// Successful basic-auth checks remembered; cleared when full.
const CACHE_LIMIT: usize = 256;

type Digest32 = [u8; 32];

/// Why the scrape credentials could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the bearer token file {path}: {source}")]
    TokenRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the bearer token file {0} is empty")]
    TokenEmpty(PathBuf),
    #[error("the bearer token file {0} holds a placeholder token shipped with ocfs2-watchdog that anyone can read; replace it: openssl rand -hex 32 > {0}")]
    TokenPlaceholder(PathBuf),
    #[error("cannot make the dummy bcrypt hash: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
}

/// The scrape credentials in force; shared by every request.
#[derive(Debug)]
pub struct ScrapeAuth {
    users: BTreeMap<String, String>,
    /// Checked for unknown users so they cost what a known one does.
    dummy_hash: String,
    token_file: Option<PathBuf>,
    token: RwLock<Option<Digest32>>,
    verified: Mutex<HashSet<Digest32>>,
    /// Paths served without credentials (exporter-toolkit's
    /// `basic_auth_excluded_paths`).
    excluded_paths: Vec<String>,
}

/// The cost of the dummy hash checked for unknown users: the highest cost
/// among the configured hashes, so an unknown user takes at least as long
/// as any known one and timing does not tell which users exist.
fn dummy_cost(users: &BTreeMap<String, String>) -> Option<u32> {
    users
        .values()
        .map(|hash| {
            hash.parse::<bcrypt::HashParts>()
                .map_or(bcrypt::DEFAULT_COST, |parts| parts.get_cost())
        })
        .max()
}

impl ScrapeAuth {
    /// None when nothing is configured: the endpoints stay open.
    pub fn from_config(config: &WebAuthConfig) -> Result<Option<Arc<Self>>, AuthError> {
        if !config.is_required() {
            return Ok(None);
        }
        let dummy_hash = match dummy_cost(&config.basic_auth_users) {
            None => String::new(),
            Some(cost) => bcrypt::hash("not a password", cost)?,
        };
        let auth = Self {
            users: config.basic_auth_users.clone(),
            dummy_hash,
            token_file: config.bearer_token_file.clone(),
            token: RwLock::new(None),
            verified: Mutex::new(HashSet::new()),
            excluded_paths: Vec::new(),
        };
        auth.reload_token()?;
        Ok(Some(Arc::new(auth)))
    }

    /// The same credentials with `paths` served without them.
    pub fn with_excluded_paths(mut self: Arc<Self>, paths: &[String]) -> Arc<Self> {
        if let Some(auth) = Arc::get_mut(&mut self) {
            auth.excluded_paths = paths.to_vec();
        }
        self
    }

    /// Reads the bearer token file again (SIGHUP). On error the token in
    /// force stays.
    pub fn reload_token(&self) -> Result<(), AuthError> {
        let Some(path) = &self.token_file else {
            return Ok(());
        };
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::TokenRead {
            path: path.clone(),
            source,
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(AuthError::TokenEmpty(path.clone()));
        }
        if crate::secret::is_placeholder(token) {
            return Err(AuthError::TokenPlaceholder(path.clone()));
        }
        *self.token.write().unwrap_or_else(|e| e.into_inner()) = Some(sha256(&[token.as_bytes()]));
        Ok(())
    }

    fn bearer_matches(&self, presented: &str) -> bool {
        let expected = *self.token.read().unwrap_or_else(|e| e.into_inner());
        expected.is_some_and(|expected| expected == sha256(&[presented.trim().as_bytes()]))
    }

    /// The bcrypt check, run on the blocking pool by the caller.
    fn basic_matches(&self, user: &str, password: &str) -> bool {
        let hash = self.users.get(user);
        let key = sha256(&[
            user.as_bytes(),
            b"\0",
            password.as_bytes(),
            b"\0",
            hash.map_or(&b""[..], |h| h.as_bytes()),
        ]);
        if hash.is_some() && self.cache().contains(&key) {
            return true;
        }
        let checked = bcrypt::verify(password, hash.unwrap_or(&self.dummy_hash)).unwrap_or(false);
        let ok = hash.is_some() && checked;
        if ok {
            let mut cache = self.cache();
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key);
        }
        ok
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashSet<Digest32>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn challenge(&self) -> Response {
        let mut response = (StatusCode::UNAUTHORIZED, "credentials required\n").into_response();
        let headers = response.headers_mut();
        if !self.users.is_empty() {
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ocfs2-watchdog\", charset=\"UTF-8\""),
            );
        }
        if self.token_file.is_some() {
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ocfs2-watchdog\""),
            );
        }
        response
    }
}

/// What the `Authorization` header claims to be.
#[derive(Debug, PartialEq, Eq)]
enum Credentials {
    Basic { user: String, password: String },
    Bearer(String),
}

/// Parses an `Authorization` value (RFC 7617 basic, RFC 6750 bearer).
fn parse_authorization(value: &str) -> Option<Credentials> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        Some(Credentials::Basic {
            user: user.to_string(),
            password: password.to_string(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Some(Credentials::Bearer(rest.to_string()))
    } else {
        None
    }
}

/// Middleware: pass the request on only with valid credentials.
pub async fn require(
    State(auth): State<Arc<ScrapeAuth>>,
    request: Request,
    next: Next,
) -> Response {
    if auth
        .excluded_paths
        .iter()
        .any(|p| p == request.uri().path())
    {
        return next.run(request).await;
    }
    let credentials = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_authorization);
    let ok = match credentials {
        Some(Credentials::Bearer(token)) => auth.bearer_matches(&token),
        Some(Credentials::Basic { user, password }) if !auth.users.is_empty() => {
            let auth = Arc::clone(&auth);
            tokio::task::spawn_blocking(move || auth.basic_matches(&user, &password))
                .await
                .unwrap_or(false)
        }
        _ => false,
    };
    if ok {
        next.run(request).await
    } else {
        tracing::debug!(realm = REALM, path = %request.uri().path(), "Refused a request without valid credentials.");
        auth.challenge()
    }
}

fn sha256(parts: &[&[u8]]) -> Digest32 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_authorization_headers() {
        // "prometheus:s3cr:et" — a password may contain ':'.
        assert_eq!(
            parse_authorization("Basic cHJvbWV0aGV1czpzM2NyOmV0"),
            Some(Credentials::Basic {
                user: "prometheus".into(),
                password: "s3cr:et".into()
            })
        );
        assert_eq!(
            parse_authorization("bearer  abc.def "),
            Some(Credentials::Bearer("abc.def".into()))
        );
        for garbage in [
            "",
            "Basic",
            "Basic !!!notbase64",
            "Basic bm9jb2xvbg==", // "nocolon"
            "Bearer ",
            "Digest username=x",
        ] {
            assert_eq!(parse_authorization(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn the_dummy_hash_costs_what_the_users_hashes_cost() {
        let users = |hashes: &[&str]| -> BTreeMap<String, String> {
            hashes
                .iter()
                .enumerate()
                .map(|(i, h)| (format!("u{i}"), h.to_string()))
                .collect()
        };
        let cost4 = bcrypt::hash("a", 4).unwrap();
        let cost5 = bcrypt::hash("b", 5).unwrap();
        assert_eq!(dummy_cost(&users(&[])), None);
        assert_eq!(dummy_cost(&users(&[&cost4])), Some(4));
        assert_eq!(dummy_cost(&users(&[&cost4, &cost5])), Some(5));
        let config = WebAuthConfig {
            basic_auth_users: users(&[&cost4]),
            bearer_token_file: None,
        };
        let auth = ScrapeAuth::from_config(&config).unwrap().unwrap();
        let parts: bcrypt::HashParts = auth.dummy_hash.parse().unwrap();
        assert_eq!(parts.get_cost(), 4, "not bcrypt's default 12");
    }

    #[test]
    fn checks_basic_and_bearer_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "tok-1\n").unwrap();
        let mut users = BTreeMap::new();
        users.insert("prometheus".to_string(), bcrypt::hash("pw", 4).unwrap());
        let config = WebAuthConfig {
            basic_auth_users: users,
            bearer_token_file: Some(token.clone()),
        };
        let auth = ScrapeAuth::from_config(&config).unwrap().unwrap();
        assert!(auth.basic_matches("prometheus", "pw"));
        assert!(auth.basic_matches("prometheus", "pw"), "cached");
        assert!(!auth.basic_matches("prometheus", "PW"));
        assert!(!auth.basic_matches("nobody", "pw"));
        assert!(auth.bearer_matches("tok-1"));
        assert!(!auth.bearer_matches("tok-2"));
        // Rotation on SIGHUP; a broken file keeps the token in force.
        std::fs::write(&token, "tok-2").unwrap();
        auth.reload_token().unwrap();
        assert!(auth.bearer_matches("tok-2") && !auth.bearer_matches("tok-1"));
        std::fs::write(&token, "  \n").unwrap();
        assert!(matches!(auth.reload_token(), Err(AuthError::TokenEmpty(_))));
        assert!(auth.bearer_matches("tok-2"));
        assert!(ScrapeAuth::from_config(&WebAuthConfig::default())
            .unwrap()
            .is_none());
    }
}
