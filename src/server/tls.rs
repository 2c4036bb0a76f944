//! The serving certificate: loading, the ephemeral development certificate, and hot reload.
//!
//! rustls asks [`ReloadingCert`] for the certificate at every handshake, so swapping the
//! value it holds makes new connections use the new certificate while established ones keep
//! theirs. The files are polled by content hash rather than watched: the kubelet updates a
//! Secret volume by swapping a `..data` symlink, which file watches on the visible names miss.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use super::metrics::Metrics;
use crate::certs::{self, ServingRequest};

/// ALPN protocols offered, most preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the certificate file has no PEM certificate: {0}")]
    NoCertificate(String),
    #[error("the key file has no PEM private key: {0}")]
    NoKey(String),
    #[error("the certificate cannot be parsed: {0}")]
    BadCertificate(String),
    #[error("the private key is unusable or does not belong to the certificate: {0}")]
    KeyMismatch(rustls::Error),
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
    #[error("making the development certificate: {0}")]
    DevCert(certs::CertError),
}

impl From<certs::CertError> for TlsError {
    fn from(e: certs::CertError) -> Self {
        TlsError::DevCert(e)
    }
}

/// A certificate chain and key ready to serve, with what is worth logging about it.
#[derive(Clone, Debug)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    /// notAfter of the leaf certificate, Unix seconds.
    pub not_after: i64,
    /// Serial number of the leaf, hex.
    pub serial: String,
    pub subject: String,
}

/// Parses a PEM certificate chain (leaf first) and its PEM private key, and checks that the
/// key belongs to the leaf.
pub fn load_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<LoadedCert, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::NoCertificate(e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate("no CERTIFICATE block".into()));
    };
    let (not_after, serial, subject) = {
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
        (
            parsed.validity().not_after.timestamp(),
            parsed.raw_serial_as_string(),
            parsed.subject().to_string(),
        )
    };
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::NoKey(e.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(TlsError::KeyMismatch)?;
    Ok(LoadedCert {
        key: Arc::new(certified),
        not_after,
        serial,
        subject,
    })
}

/// The certificate handed to every new handshake; replaceable at any time.
#[derive(Debug)]
pub struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    pub fn new(initial: Arc<CertifiedKey>) -> ReloadingCert {
        ReloadingCert {
            current: RwLock::new(initial),
        }
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn replace(&self, next: Arc<CertifiedKey>) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = next;
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// rustls server configuration: ring, TLS 1.3 and 1.2, no client certificates, ALPN h2 and
/// http/1.1, certificate from `resolver`.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A development CA and serving certificate made in memory (localhost, 127.0.0.1, ::1 and the
/// in-cluster Service names), and the CA's caBundle.
pub fn ephemeral() -> Result<(LoadedCert, String), TlsError> {
    let bundle = certs::generate(&ServingRequest::local_development())?;
    let loaded = load_pair(
        bundle.serving.cert_pem.as_bytes(),
        bundle.serving.key_pem.as_bytes(),
    )?;
    Ok((loaded, bundle.ca_bundle()))
}

/// Content of the certificate and key files.
#[derive(Clone, Debug)]
pub struct PairFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What one look at the files found.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Observation {
    Content([u8; 32]),
    Unreadable(String),
}

fn fingerprint(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((cert.len() as u64).to_be_bytes());
    h.update(cert);
    h.update(key);
    h.finalize().into()
}

async fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    tokio::fs::read(path).await.map_err(|error| TlsError::Read {
        path: path.to_path_buf(),
        error,
    })
}

impl PairFiles {
    async fn read(&self) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
        Ok((read(&self.cert).await?, read(&self.key).await?))
    }

    /// Reads and loads the pair, returning its fingerprint for [`watch`].
    pub async fn load(&self) -> Result<(LoadedCert, [u8; 32]), TlsError> {
        let (cert, key) = self.read().await?;
        Ok((load_pair(&cert, &key)?, fingerprint(&cert, &key)))
    }
}

fn log_loaded(what: &str, loaded: &LoadedCert, files: &PairFiles) {
    tracing::info!(
        cert = %files.cert.display(),
        serial = %loaded.serial,
        subject = %loaded.subject,
        not_after = loaded.not_after,
        "{what}"
    );
    if loaded.not_after < x509_parser::time::ASN1Time::now().timestamp() {
        tracing::error!(cert = %files.cert.display(), not_after = loaded.not_after, "the serving certificate has expired");
    }
}

/// Logs and records the initially loaded certificate.
pub fn initial(loaded: &LoadedCert, files: &PairFiles, metrics: &Metrics) {
    metrics.certificate_served(loaded.not_after);
    log_loaded("serving certificate loaded", loaded, files);
}

/// Polls `files` every `interval` and swaps a changed, valid pair into `target`. A pair that
/// does not load is reported once per distinct content and the served certificate is kept.
/// Runs until dropped.
pub async fn watch(
    files: PairFiles,
    interval: Duration,
    target: Arc<ReloadingCert>,
    metrics: Metrics,
    loaded_fingerprint: [u8; 32],
) {
    let mut last = Observation::Content(loaded_fingerprint);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let (cert, key) = match files.read().await {
            Ok(pair) => pair,
            Err(e) => {
                let seen = Observation::Unreadable(e.to_string());
                if seen != last {
                    tracing::error!(error = %e, "cannot read the certificate files; still serving the previous certificate");
                    metrics.certificate_reload(false);
                    last = seen;
                }
                continue;
            }
        };
        let seen = Observation::Content(fingerprint(&cert, &key));
        if seen == last {
            continue;
        }
        match load_pair(&cert, &key) {
            Ok(loaded) => {
                target.replace(loaded.key.clone());
                metrics.certificate_reload(true);
                metrics.certificate_served(loaded.not_after);
                log_loaded("serving certificate reloaded", &loaded, &files);
                last = seen;
            }
            Err(e) => {
                // A writer that replaces the two files one after the other may have been
                // caught in between: look again before calling the pair broken.
                if let Ok((c2, k2)) = files.read().await {
                    if fingerprint(&c2, &k2) != fingerprint(&cert, &key) {
                        continue;
                    }
                }
                tracing::error!(
                    cert = %files.cert.display(),
                    key = %files.key.display(),
                    error = %e,
                    "new certificate files rejected; still serving the previous certificate"
                );
                metrics.certificate_reload(false);
                last = seen;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_checked() {
        let a = certs::generate(&ServingRequest::default()).unwrap();
        let b = certs::generate(&ServingRequest::default()).unwrap();
        let ok = load_pair(a.serving.cert_pem.as_bytes(), a.serving.key_pem.as_bytes()).unwrap();
        assert!(ok.not_after > 0);
        assert!(matches!(
            load_pair(a.serving.cert_pem.as_bytes(), b.serving.key_pem.as_bytes()),
            Err(TlsError::KeyMismatch(_))
        ));
        assert!(matches!(
            load_pair(b"garbage", a.serving.key_pem.as_bytes()),
            Err(TlsError::NoCertificate(_))
        ));
        assert!(matches!(
            load_pair(a.serving.cert_pem.as_bytes(), b"garbage"),
            Err(TlsError::NoKey(_))
        ));
        let truncated = &a.serving.cert_pem[..a.serving.cert_pem.len() / 2];
        assert!(load_pair(truncated.as_bytes(), a.serving.key_pem.as_bytes()).is_err());
    }

    #[test]
    fn alpn_is_set() {
        let (loaded, bundle) = ephemeral().unwrap();
        assert!(!bundle.is_empty());
        let cfg = server_config(Arc::new(ReloadingCert::new(loaded.key))).unwrap();
        assert_eq!(
            cfg.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
