//! Standard Webhooks signatures over `"{id}.{timestamp}.{body}"`, in either scheme:
//! - `v1`: HMAC-SHA256, keyed with the base64 part of a shared `whsec_` secret;
//! - `v1a`: ed25519, with a `whsk_` private key (base64 of its 32-byte seed) that never
//!   leaves eventgate; receivers verify with the `whpk_` public key (base64 of 32 bytes).
//!
//! During a rotation every live key signs, space-separated, so a receiver that knows either
//! key verifies. Which scheme a key signs with is told by its prefix, so a destination's old
//! and new keys need not share one.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::Sha256;

use crate::auth::RandomnessError;
use crate::delivery::destination::SignatureScheme;

pub const SECRET_PREFIX: &str = "whsec_";
pub const PRIVATE_KEY_PREFIX: &str = "whsk_";
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";

/// A new signing key of `scheme`: a `whsec_` secret (24 random bytes) or a `whsk_` ed25519
/// private key (a random 32-byte seed).
pub fn new_key(scheme: SignatureScheme) -> Result<String, RandomnessError> {
    match scheme {
        SignatureScheme::HmacSha256 => new_secret(),
        SignatureScheme::Ed25519 => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(RandomnessError::from)?;
            Ok(format!("{PRIVATE_KEY_PREFIX}{}", STANDARD.encode(seed)))
        }
    }
}

/// A new signing secret: `whsec_` and 24 random bytes in base64.
pub fn new_secret() -> Result<String, RandomnessError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(RandomnessError::from)?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

fn ed25519_pair(private_key: &str) -> Option<Ed25519KeyPair> {
    let seed = STANDARD
        .decode(private_key.strip_prefix(PRIVATE_KEY_PREFIX)?)
        .ok()?;
    Ed25519KeyPair::from_seed_unchecked(&seed).ok()
}

/// The `whpk_` public key of a `whsk_` private key; `None` for an HMAC secret.
pub fn public_key(key: &str) -> Option<String> {
    let pair = ed25519_pair(key)?;
    Some(format!(
        "{PUBLIC_KEY_PREFIX}{}",
        STANDARD.encode(pair.public_key().as_ref())
    ))
}

/// The signed content: `{id}.{timestamp}.{body}`.
fn signed_content(message_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = format!("{message_id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    content
}

/// `v1,<signature>` or `v1a,<signature>` for one key; `None` if the key is malformed.
pub fn sign(key: &str, message_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    if key.starts_with(PRIVATE_KEY_PREFIX) {
        let pair = ed25519_pair(key)?;
        let signature = pair.sign(&signed_content(message_id, timestamp, body));
        return Some(format!("v1a,{}", STANDARD.encode(signature.as_ref())));
    }
    let secret = STANDARD
        .decode(key.strip_prefix(SECRET_PREFIX).unwrap_or(key))
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).ok()?;
    mac.update(&signed_content(message_id, timestamp, body));
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header value: one signature per live key.
pub fn signature_header(keys: &[String], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .filter_map(|key| sign(key, message_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ED25519, UnparsedPublicKey};

    #[test]
    fn matches_the_standard_webhooks_known_answer() {
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn matches_the_rfc_8032_ed25519_test_vector() {
        // RFC 8032 §7.1, TEST 1: the empty message. Our signed content is never empty, so
        // the vector is checked on the key pair directly.
        let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        let seed: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&seed[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let key = format!("{PRIVATE_KEY_PREFIX}{}", STANDARD.encode(&seed));
        let public = public_key(&key).unwrap();
        let public = STANDARD
            .decode(public.strip_prefix(PUBLIC_KEY_PREFIX).unwrap())
            .unwrap();
        let hex: String = public.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    #[test]
    fn an_ed25519_signature_verifies_with_the_public_key_only() {
        let key = new_key(SignatureScheme::Ed25519).unwrap();
        let header = sign(&key, "msg_1", 1_700_000_000, b"{\"a\":1}").unwrap();
        let signature = STANDARD
            .decode(header.strip_prefix("v1a,").unwrap())
            .unwrap();
        let public = public_key(&key).unwrap();
        let public = STANDARD
            .decode(public.strip_prefix(PUBLIC_KEY_PREFIX).unwrap())
            .unwrap();
        let verifier = UnparsedPublicKey::new(&ED25519, public);
        assert!(
            verifier
                .verify(b"msg_1.1700000000.{\"a\":1}", &signature)
                .is_ok()
        );
        assert!(
            verifier
                .verify(b"msg_1.1700000000.{\"a\":2}", &signature)
                .is_err()
        );
        assert_eq!(public_key(&new_secret().unwrap()), None);
    }

    #[test]
    fn rotation_signs_with_every_live_key_whatever_its_scheme() {
        let keys = vec![
            new_key(SignatureScheme::Ed25519).unwrap(),
            new_secret().unwrap(),
        ];
        let header = signature_header(&keys, "id", 1, b"{}");
        let schemes: Vec<&str> = header
            .split(' ')
            .map(|s| s.split_once(',').unwrap().0)
            .collect();
        assert_eq!(schemes, ["v1a", "v1"]);
    }
}
