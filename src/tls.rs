//! TLS for every outbound connection: the process-wide crypto provider, and the client
//! configuration a destination's settings ask for (the CA bundle it trusts, and its client
//! certificate for mutual TLS). rustls is built with ring only, the provider sqlx and
//! lapin already use.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// Installs ring as the rustls provider; later calls are no-ops.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the CA bundle holds no PEM certificate")]
    NoCertificate,
    #[error("the client certificate holds no PEM certificate")]
    NoClientCertificate,
    #[error("does not parse as PEM: {0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
    #[error("not usable: {0}")]
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

/// A client certificate chain and its private key (PKCS#8, SEC1 or PKCS#1 PEM).
pub struct ClientIdentity<'a> {
    pub certificate_pem: &'a str,
    pub key_pem: &'a str,
}

impl ClientIdentity<'_> {
    fn parsed(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let chain = certificates(self.certificate_pem).map_err(|err| match err {
            TlsError::NoCertificate => TlsError::NoClientCertificate,
            other => other,
        })?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())?;
        Ok((chain, key))
    }

    /// Checks that the pair loads and that the key belongs to the certificate.
    pub fn check(&self) -> Result<(), TlsError> {
        client_config(&Trust::WebRoots, Some(self)).map(drop)
    }
}

/// Which servers a client trusts.
pub enum Trust<'a> {
    /// The public web roots.
    WebRoots,
    /// Only the certificates of this PEM bundle.
    Only(&'a str),
    /// The public web roots and this PEM bundle.
    WebRootsAnd(&'a str),
}

impl<'a> Trust<'a> {
    /// Only `ca_pem` when given, else the web roots.
    pub fn only_or_web(ca_pem: Option<&'a str>) -> Self {
        ca_pem.map_or(Self::WebRoots, Self::Only)
    }
}

/// The client configuration for servers trusted as `trust` says, presenting `identity`
/// when the server asks for a client certificate.
pub fn client_config(
    trust: &Trust<'_>,
    identity: Option<&ClientIdentity<'_>>,
) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    if matches!(trust, Trust::WebRoots | Trust::WebRootsAnd(_)) {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Trust::Only(pem) | Trust::WebRootsAnd(pem) = trust {
        for certificate in certificates(pem)? {
            roots.add(certificate)?;
        }
    }
    // The provider is named here rather than taken from the process default, so building
    // a configuration never depends on start-up order.
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
    Ok(match identity {
        Some(identity) => {
            let (chain, key) = identity.parsed()?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    })
}
