//! TLS with rustls (ring): a PEM certificate chain and private key from files.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A rustls server configuration from PEM files (HTTP/2 and HTTP/1.1 by ALPN).
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("{}: cannot read certificates", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: bad PEM", files.cert.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("{}: no certificate in it", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("{}: no private key read", files.key.display()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and the key do not go together")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor> {
    Ok(TlsAcceptor::from(Arc::new(server_config(files)?)))
}
