//! The operator's secrets keys, and sealing values with them: XChaCha20-Poly1305 (AEAD,
//! RustCrypto) with a random 24-byte nonce per value, and the value's place (`aad`: which
//! destination, which field) authenticated with it, so a sealed value cannot be moved to
//! another row or field. A sealed value is `egs1:<key id>:<base64url(nonce ‖ ciphertext)>`;
//! the key id is the first 8 hex digits of the key's SHA-256. Several keys may be
//! configured: the first seals, every one opens (rotation: `eventgate secrets rotate`).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const PREFIX: &str = "egs1";
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("a secrets key must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)")]
    BadKey,
    #[error("no secrets key is configured")]
    NoKey,
    #[error("a stored secret was sealed with key {0}, which is not configured")]
    UnknownKey(String),
    #[error("a stored secret is malformed or was tampered with")]
    Corrupt,
    #[error("the operating system's random number generator failed")]
    Random,
}

struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The configured keys, newest first. `Debug` shows key ids only.
#[derive(Clone)]
pub struct Keyring {
    keys: std::sync::Arc<Vec<Key>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field(
                "key_ids",
                &self.keys.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Keyring {
    /// Keys in base64 (standard or URL-safe), newest first.
    pub fn from_base64<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Self, SecretsError> {
        let keys = keys
            .into_iter()
            .map(|text| {
                let text = text.trim();
                let bytes = STANDARD
                    .decode(text)
                    .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                    .map_err(|_| SecretsError::BadKey)?;
                let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| SecretsError::BadKey)?;
                Ok(Key {
                    id: key_id(&bytes),
                    cipher: XChaCha20Poly1305::new(&bytes.into()),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SecretsError::NoKey);
        }
        Ok(Self {
            keys: std::sync::Arc::new(keys),
        })
    }

    /// A new random key, in base64 (for the zero-config mode's key file).
    pub fn generate_base64() -> Result<String, SecretsError> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|_| SecretsError::Random)?;
        Ok(STANDARD.encode(bytes))
    }

    /// The id of the key that seals.
    pub fn newest_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Seals `plaintext` for the place `aad` names.
    pub fn seal(&self, plaintext: &str, aad: &str) -> Result<String, SecretsError> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SecretsError::Random)?;
        let ciphertext = key
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Corrupt)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(format!(
            "{PREFIX}:{}:{}",
            key.id,
            URL_SAFE_NO_PAD.encode(sealed)
        ))
    }

    /// Opens a value `seal` made for the place `aad` names.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<String, SecretsError> {
        let (key_id, body) = sealed_parts(sealed).ok_or(SecretsError::Corrupt)?;
        let key = self
            .keys
            .iter()
            .find(|key| key.id == key_id)
            .ok_or_else(|| SecretsError::UnknownKey(key_id.to_owned()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SecretsError::Corrupt)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretsError::Corrupt);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| SecretsError::Corrupt)?;
        let plaintext = key
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Corrupt)?;
        String::from_utf8(plaintext).map_err(|_| SecretsError::Corrupt)
    }
}

/// Whether `value` is a sealed value (of any key).
pub fn is_sealed(value: &str) -> bool {
    sealed_parts(value).is_some()
}

/// The key id a sealed value names.
pub fn sealed_key_id(value: &str) -> Option<&str> {
    sealed_parts(value).map(|(key_id, _)| key_id)
}

fn sealed_parts(value: &str) -> Option<(&str, &str)> {
    let rest = value.strip_prefix(PREFIX)?.strip_prefix(':')?;
    rest.split_once(':')
}

fn key_id(key: &[u8]) -> String {
    Sha256::digest(key)[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        Keyring::generate_base64().unwrap()
    }

    #[test]
    fn sealed_values_open_with_their_place_only() {
        let ring = Keyring::from_base64([key().as_str()]).unwrap();
        let sealed = ring.seal("whsec_abc", "destination:1:secret").unwrap();
        assert!(is_sealed(&sealed) && !sealed.contains("whsec_abc"));
        assert_eq!(
            ring.open(&sealed, "destination:1:secret").unwrap(),
            "whsec_abc"
        );
        assert!(
            ring.open(&sealed, "destination:2:secret").is_err(),
            "another row"
        );
        let again = ring.seal("whsec_abc", "destination:1:secret").unwrap();
        assert_ne!(sealed, again, "a fresh nonce each time");
    }

    #[test]
    fn older_keys_open_and_the_newest_seals() {
        let (old, new) = (key(), key());
        let before = Keyring::from_base64([old.as_str()]).unwrap();
        let sealed = before.seal("pw", "p").unwrap();
        let after = Keyring::from_base64([new.as_str(), old.as_str()]).unwrap();
        assert_eq!(after.open(&sealed, "p").unwrap(), "pw");
        assert_eq!(
            sealed_key_id(&after.seal("pw", "p").unwrap()),
            Some(after.newest_id())
        );
        let without = Keyring::from_base64([new.as_str()]).unwrap();
        assert!(matches!(
            without.open(&sealed, "p"),
            Err(SecretsError::UnknownKey(_))
        ));
        assert!(!format!("{after:?}").contains(&old));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(Keyring::from_base64(["short"]).is_err());
        assert!(Keyring::from_base64(Vec::<&str>::new()).is_err());
    }
}
