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
    /// The operating system's trust store (what an HTTPS client trusts by default, a
    /// company CA the operator installed included).
    System,
    /// The public web roots compiled in (for checks that must not depend on the system).
    WebRoots,
    /// Only the certificates of this PEM bundle.
    Only(&'a str),
    /// The operating system's trust store and this PEM bundle.
    SystemAnd(&'a str),
}

impl<'a> Trust<'a> {
    /// Only `ca_pem` when given, else the system's trust store.
    pub fn only_or_system(ca_pem: Option<&'a str>) -> Self {
        ca_pem.map_or(Self::System, Self::Only)
    }
}

/// The client configuration for servers trusted as `trust` says, presenting `identity`
/// when the server asks for a client certificate.
pub fn client_config(
    trust: &Trust<'_>,
    identity: Option<&ClientIdentity<'_>>,
) -> Result<ClientConfig, TlsError> {
    // The provider is named here rather than taken from the process default, so building
    // a configuration never depends on start-up order.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match trust {
        Trust::System | Trust::SystemAnd(_) => {
            let extra = match trust {
                Trust::SystemAnd(pem) => certificates(pem)?,
                _ => Vec::new(),
            };
            let verifier =
                rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
        Trust::WebRoots | Trust::Only(_) => {
            let mut roots = RootCertStore::empty();
            match trust {
                Trust::Only(pem) => {
                    for certificate in certificates(pem)? {
                        roots.add(certificate)?;
                    }
                }
                _ => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots)
        }
    };
    Ok(match identity {
        Some(identity) => {
            let (chain, key) = identity.parsed()?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate_and_key() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["client.example".to_owned()]).unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn every_kind_of_trust_builds_a_configuration() {
        let (ca, _) = certificate_and_key();
        for trust in [
            Trust::System,
            Trust::WebRoots,
            Trust::Only(&ca),
            Trust::SystemAnd(&ca),
        ] {
            assert!(client_config(&trust, None).is_ok());
        }
        assert!(matches!(
            client_config(&Trust::Only("no PEM here"), None),
            Err(TlsError::NoCertificate)
        ));
    }

    #[test]
    fn a_client_identity_must_be_a_certificate_and_its_own_key() {
        let (certificate_pem, key_pem) = certificate_and_key();
        let (_, other_key) = certificate_and_key();
        let pair = ClientIdentity {
            certificate_pem: &certificate_pem,
            key_pem: &key_pem,
        };
        assert!(pair.check().is_ok());
        let mismatched = ClientIdentity {
            certificate_pem: &certificate_pem,
            key_pem: &other_key,
        };
        assert!(mismatched.check().is_err(), "a key of another certificate");
        let no_certificate = ClientIdentity {
            certificate_pem: &key_pem,
            key_pem: &key_pem,
        };
        assert!(matches!(
            no_certificate.check(),
            Err(TlsError::NoClientCertificate)
        ));
    }
}
