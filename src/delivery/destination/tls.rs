//! The `tls` settings every kind of destination may carry: the CA bundle to trust for that
//! endpoint or broker, and a client certificate with its key for mutual TLS. The key is a
//! credential: sealed at rest, shown as `***`, never in `Debug`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::tls::{ClientIdentity, Trust};

/// Largest PEM text accepted per field: a few certificates, well inside the body limit.
pub const MAX_PEM_CHARS: usize = 16_384;
/// PEM text: printable ASCII, tabs and line breaks.
pub const PEM_TEXT_PATTERN: &str = r"^[\x09\x0a\x0d\x20-\x7e]*$";

/// TLS settings: the server is checked against `ca_pem` when given, else against the
/// operating system's trust store; `client_cert_pem` and `client_key_pem` (both or neither) are
/// presented when the server asks for a client certificate.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// CA certificates (PEM) to trust for this endpoint, instead of the system's trust
    /// store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384), regex(pattern = PEM_TEXT_PATTERN))]
    pub ca_pem: Option<String>,
    /// The client certificate chain (PEM) for mutual TLS, leaf first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384), regex(pattern = PEM_TEXT_PATTERN))]
    pub client_cert_pem: Option<String>,
    /// Its private key (PEM: PKCS#8, SEC1 or PKCS#1). Stored encrypted, shown as `***`;
    /// sending `***` back in a PATCH keeps the stored key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384), regex(pattern = PEM_TEXT_PATTERN))]
    pub client_key_pem: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key: settings end up in logs through `Debug`.
        f.debug_struct("ClientTls")
            .field("ca_pem", &self.ca_pem.is_some())
            .field("client_cert_pem", &self.client_cert_pem.is_some())
            .finish_non_exhaustive()
    }
}

fn pem_text(field: &str, text: &str) -> Result<(), ApiError> {
    let printable = text
        .bytes()
        .all(|b| matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7e));
    if text.len() > MAX_PEM_CHARS || !printable {
        return Err(ApiError::invalid(
            field,
            format!(
                "must be PEM text: at most {MAX_PEM_CHARS} printable ASCII characters, tabs and line breaks"
            ),
        ));
    }
    Ok(())
}

impl ClientTls {
    /// Checks the fields under `prefix` (`tls`). Text that fits the schema but does not
    /// parse, or a certificate without its key, conflicts with what the fields are for:
    /// 409, as the schema cannot say "PEM that parses".
    pub fn validate(&self, prefix: &str) -> Result<(), ApiError> {
        for (name, value) in [
            ("ca_pem", &self.ca_pem),
            ("client_cert_pem", &self.client_cert_pem),
            ("client_key_pem", &self.client_key_pem),
        ] {
            if let Some(text) = value {
                pem_text(&format!("{prefix}.{name}"), text)?;
            }
        }
        if let Some(ca_pem) = &self.ca_pem
            && let Err(err) = crate::tls::certificates(ca_pem)
        {
            return Err(ApiError::conflict(format!(
                "{prefix}.ca_pem must hold one or more PEM certificates: {err}"
            )));
        }
        match (&self.client_cert_pem, &self.client_key_pem) {
            (None, None) => Ok(()),
            (Some(_), None) | (None, Some(_)) => Err(ApiError::conflict(format!(
                "{prefix}.client_cert_pem and {prefix}.client_key_pem go together: send both or neither"
            ))),
            (Some(certificate_pem), Some(key_pem)) => {
                // A redacted key sent back unchanged is restored before this check.
                ClientIdentity {
                    certificate_pem,
                    key_pem,
                }
                .check()
                .map_err(|err| {
                    ApiError::conflict(format!(
                        "{prefix}.client_cert_pem and {prefix}.client_key_pem must be a PEM certificate and its private key: {err}"
                    ))
                })
            }
        }
    }

    /// The client certificate to present, if any.
    pub fn identity(&self) -> Option<ClientIdentity<'_>> {
        Some(ClientIdentity {
            certificate_pem: self.client_cert_pem.as_deref()?,
            key_pem: self.client_key_pem.as_deref()?,
        })
    }

    /// Whom to trust: the bundle alone when given, else the system's trust store.
    pub fn trust(&self) -> Trust<'_> {
        Trust::only_or_system(self.ca_pem.as_deref())
    }

    /// The client configuration these settings describe.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, crate::tls::TlsError> {
        crate::tls::client_config(&self.trust(), self.identity().as_ref())
    }
}
