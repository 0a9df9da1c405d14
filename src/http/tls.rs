//! HTTPS with rustls (ring provider: no C toolchain beyond `cc`, no cmake).
//!
//! Every connection is accepted with the configuration in force, rebuilt when
//! the certificate, key or client CA file changes (or on SIGHUP), so a
//! rotation reaches new connections without closing the listener or any
//! open connection. Client certificates (mutual TLS) are checked as
//! exporter-toolkit's `client_auth_type` says, see `client_auth`. A pair that fails to load or does not match is
//! logged and the pair in force stays: a botched renewal never takes the
//! endpoint down. Handshakes run in each connection's own task with a
//! deadline (`crate::http::serve`), so a client that stalls one blocks
//! nobody and holds one connection slot until the deadline.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::client_auth;
use crate::config::web_file::TlsServerConfig;
use crate::config::WebTlsConfig;

/// Why a certificate/key pair could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificates from {path}: {source}")]
    Cert {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{0} holds no certificate")]
    NoCert(PathBuf),
    #[error("cannot read a private key from {path}: {source}")]
    Key {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("unusable key pair ({cert} / {key}): {source}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error(transparent)]
    Settings(#[from] client_auth::SettingsError),
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// What a loaded configuration was built from, to notice a changed file.
type Stamp = Vec<Option<(SystemTime, u64, u64)>>;

struct Loaded {
    stamp: Stamp,
    config: Arc<rustls::ServerConfig>,
}

/// The TLS configuration in force, rebuilt when one of its files changes
/// (checked at every connection, as exporter-toolkit re-reads its config at
/// every request) or on SIGHUP.
pub struct CertStore {
    settings: TlsServerConfig,
    current: RwLock<Loaded>,
    /// The stamp of the last failed rebuild, so a bad file is reported once
    /// and not re-read at every connection.
    failed: Mutex<Option<Stamp>>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// The TOML `[web.tls]`: a certificate pair and nothing else.
    pub fn load(files: &WebTlsConfig) -> Result<Arc<Self>, TlsError> {
        Self::load_settings(&TlsServerConfig::from_pair(
            &files.cert_file,
            &files.key_file,
        ))
    }

    /// Loads everything once; an error here stops the daemon at start.
    pub fn load_settings(settings: &TlsServerConfig) -> Result<Arc<Self>, TlsError> {
        let stamp = stamp(settings);
        let config = build(settings)?;
        Ok(Arc::new(Self {
            settings: settings.clone(),
            current: RwLock::new(Loaded { stamp, config }),
            failed: Mutex::new(None),
        }))
    }

    /// Reads every file again; on error the configuration in force stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamp = stamp(&self.settings);
        let config = build(&self.settings)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Loaded { stamp, config };
        Ok(())
    }

    /// The configuration to accept the next connection with: rebuilt first
    /// when a file changed since it was loaded. A file that fails to load is
    /// logged once and the configuration in force is kept.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let now = stamp(&self.settings);
        {
            let loaded = self.current.read().unwrap_or_else(|e| e.into_inner());
            let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
            if loaded.stamp == now || failed.as_ref() == Some(&now) {
                return Arc::clone(&loaded.config);
            }
        }
        match self.reload() {
            Ok(()) => tracing::info!("Reloaded the TLS configuration: a file changed."),
            Err(error) => {
                tracing::error!(error = %error, "Cannot reload the changed TLS files; keeping the ones in force.");
                *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
            }
        }
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .config,
        )
    }
}

/// Modification time, size and inode of every file the settings name
/// (following symlinks, so a Kubernetes secret's `..data` swap counts).
fn stamp(settings: &TlsServerConfig) -> Stamp {
    settings
        .files()
        .map(|path| {
            std::fs::metadata(path).ok().map(|meta| {
                use std::os::unix::fs::MetadataExt;
                (
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                    meta.ino(),
                )
            })
        })
        .collect()
}

fn build(settings: &TlsServerConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certified = load_pair(settings)?;
    client_auth::server_config(settings, certified)
}

fn load_pair(settings: &TlsServerConfig) -> Result<Arc<CertifiedKey>, TlsError> {
    let (cert, key) = (&settings.cert_file, &settings.key_file);
    let chain = match &settings.cert {
        Some(pem) => CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>(),
        None => CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>()),
    }
    .map_err(|source| TlsError::Cert {
        path: cert.to_path_buf(),
        source,
    })?;
    if chain.is_empty() {
        return Err(TlsError::NoCert(cert.to_path_buf()));
    }
    let private = match &settings.key {
        Some(pem) => PrivateKeyDer::from_pem_slice(pem.as_bytes()),
        None => PrivateKeyDer::from_pem_file(key),
    }
    .map_err(|source| TlsError::Key {
        path: key.to_path_buf(),
        source,
    })?;
    let pair_error = |source| TlsError::Pair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    };
    let signing = rustls::crypto::ring::sign::any_supported_type(&private).map_err(pair_error)?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        // Unknown: the key type cannot tell; the handshake will.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(error) => return Err(pair_error(error)),
    }
    Ok(Arc::new(certified))
}
