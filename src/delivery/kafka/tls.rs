//! TLS to Kafka brokers: the brokers' certificates are checked against the destination's
//! CA bundle when it has one, else against the public web roots.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the CA bundle holds no PEM certificate")]
    NoCertificate,
    #[error("the CA bundle does not parse: {0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
    #[error("a CA certificate is not usable: {0}")]
    Certificate(#[from] rustls::Error),
}

/// The certificates of a PEM bundle; at least one.
pub fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates =
        CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certificates)
}

/// The client configuration for brokers trusted by `ca_pem` (or the web roots).
pub fn client_config(ca_pem: Option<&str>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for certificate in certificates(pem)? {
                roots.add(certificate)?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    // The provider is named here rather than taken from the process default, so building
    // a configuration never depends on start-up order.
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}
