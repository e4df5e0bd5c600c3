//! Optional TLS termination (`[server.tls]`), for deployments without an ingress: rustls with the
//! ring provider, HTTP/1.1 (ALPN `http/1.1`), and a certificate that SIGHUP swaps without
//! dropping a connection (new handshakes get the new one).

use crate::config::TlsSettings;
use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::Arc;

/// A certificate or key that cannot be used; the message names the config key.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}`: {message}")]
pub struct TlsError {
    key: &'static str,
    message: String,
}

/// The certificate in force, reloadable.
#[derive(Debug)]
pub struct TlsReloader {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsReloader {
    /// Loads the PEM files named by `settings`.
    pub fn load(settings: &TlsSettings) -> Result<Arc<Self>, TlsError> {
        let key = Self::read(&settings.cert_file, &settings.key_file)?;
        Ok(Arc::new(Self {
            cert_file: settings.cert_file.clone(),
            key_file: settings.key_file.clone(),
            current: ArcSwap::from_pointee(key),
        }))
    }

    /// Re-reads the files; on error the current certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = Self::read(&self.cert_file, &self.key_file)?;
        self.current.store(Arc::new(key));
        Ok(())
    }

    fn read(
        cert_file: &std::path::Path,
        key_file: &std::path::Path,
    ) -> Result<CertifiedKey, TlsError> {
        // Read with the size cap and the regular-file check of every file the settings name: a
        // FIFO or a device would block start-up or the reload, or fill memory.
        let cert_pem = crate::config::read_tls_pem(cert_file).map_err(|message| TlsError {
            key: "server.tls.cert_file",
            message: format!("{}: {message}", cert_file.display()),
        })?;
        let certs = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError {
                key: "server.tls.cert_file",
                message: format!("{}: {e}", cert_file.display()),
            })?;
        if certs.is_empty() {
            return Err(TlsError {
                key: "server.tls.cert_file",
                message: format!("{}: no certificate in the file", cert_file.display()),
            });
        }
        let key_pem = crate::config::read_tls_pem(key_file).map_err(|message| TlsError {
            key: "server.tls.key_file",
            message: format!("{}: {message}", key_file.display()),
        })?;
        // The key's own error text could quote key material; say only what failed.
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError {
            key: "server.tls.key_file",
            message: format!("{}: no readable PEM private key", key_file.display()),
        })?;
        let signing_key = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|_| TlsError {
                key: "server.tls.key_file",
                message: format!("{}: unsupported private key", key_file.display()),
            })?;
        let certified = CertifiedKey::new(certs, signing_key);
        certified.keys_match().map_err(|_| TlsError {
            key: "server.tls.key_file",
            message: "the key does not match the certificate".to_owned(),
        })?;
        Ok(certified)
    }

    /// The acceptor for the public listener.
    pub fn acceptor(self: &Arc<Self>) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError {
                key: "server.tls",
                message: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        // HTTP/1.1 only: its header deadline covers a client that handshakes and then stalls, and
        // hyper's HTTP/2 server has no such deadline. OAuth clients send one request at a time.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for TlsReloader {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
