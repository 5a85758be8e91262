//! TLS for the ssl:// and wss:// services: the certificate chain and key from PEM files,
//! reloadable at run time (SIGHUP, a change of the files, or the admin layer) without
//! dropping open connections.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use super::Shared;

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// ssl/wss services without both files configured.
    #[error("ssl:// and wss:// services need ssl_certfile and ssl_keyfile")]
    NotConfigured,
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// the file
        path: PathBuf,
        /// why
        source: std::io::Error,
    },
    /// The PEM has no certificate or no key.
    #[error("{path}: {what}")]
    Pem {
        /// the file
        path: PathBuf,
        /// what is missing or wrong
        what: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("certificate {cert} with key {key}: {source}")]
    Rustls {
        /// the certificate file
        cert: PathBuf,
        /// the key file
        key: PathBuf,
        /// rustls' reason
        source: rustls::Error,
    },
}

/// Modification times of the certificate and key files.
type Stamp = (SystemTime, SystemTime);

/// The current TLS configuration.
pub(crate) struct TlsState {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<rustls::ServerConfig>, Option<Stamp>)>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn mtimes(cert: &Path, key: &Path) -> Option<Stamp> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(cert)?, m(key)?))
}

/// Builds a rustls server configuration from PEM files.
pub fn load_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert.to_path_buf(),
            what: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cert.to_path_buf(),
            what: "no certificate found".into(),
        });
    }
    let private_key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| TlsError::Pem {
            path: key.to_path_buf(),
            what: format!("bad PEM: {e}"),
        })?
        .ok_or_else(|| TlsError::Pem {
            path: key.to_path_buf(),
            what: "no private key found".into(),
        })?;
    let rustls_err = |source| TlsError::Rustls {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    };
    // An explicit provider: no process-wide default needs installing.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rustls_err)?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(rustls_err)
}

impl TlsState {
    pub fn load(cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Self, TlsError> {
        let (Some(cert), Some(key)) = (cert, key) else {
            return Err(TlsError::NotConfigured);
        };
        let config = load_config(&cert, &key)?;
        let stamp = mtimes(&cert, &key);
        Ok(TlsState {
            current: RwLock::new((Arc::new(config), stamp)),
            cert,
            key,
        })
    }

    /// An acceptor with the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.current.read().0))
    }

    /// Re-reads the files; on error the previous certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load_config(&self.cert, &self.key)?;
        *self.current.write() = (Arc::new(config), mtimes(&self.cert, &self.key));
        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
        Ok(())
    }

    fn changed_on_disk(&self) -> bool {
        let now = mtimes(&self.cert, &self.key);
        now.is_some() && now != self.current.read().1
    }
}

/// Reloads on SIGHUP and when the files change, as configured.
pub(crate) async fn watch(shared: Arc<Shared>) {
    let Some(tls) = shared.tls.as_ref() else {
        return;
    };
    let interval = shared.config.tls_watch_interval;
    #[cfg(unix)]
    let mut hangup = if shared.config.reload_tls_on_sighup {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    } else {
        None
    };
    loop {
        let tick = async {
            match interval {
                Some(i) => tokio::time::sleep(i).await,
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<()>();
        let forced = tokio::select! {
            _ = tick => false,
            _ = hup => true,
        };
        if forced || tls.changed_on_disk() {
            if let Err(e) = tls.reload() {
                tracing::warn!(error = %e, "TLS reload failed; keeping the previous certificate");
            }
        }
    }
}
