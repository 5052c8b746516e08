//! The stored values that are sealed, each bound to its place (the destination's id and
//! which value it is), so a sealed value copied into another row or column does not open:
//! - a destination's `url` inside its settings (broker credentials, and any token a
//!   webhook URL carries in its query), a Kafka destination's `sasl.password`, a client
//!   certificate's key, a webhook's OAuth2 client secret and static header values;
//! - a webhook's signing secrets or ed25519 private keys, current and previous (one place
//!   for both: a rotation moves the current one to `previous_secret` as it is).
//!
//! A value that is not sealed is read as it is: rows written before encryption existed,
//! which start-up seals (`store::resealing`).

use serde_json::Value;
use uuid::Uuid;

use super::keyring::{self, Keyring, SecretsError};

fn url_place(destination: Uuid) -> String {
    format!("destination:{destination}:url")
}

fn signing_place(destination: Uuid) -> String {
    format!("destination:{destination}:signing-secret")
}

/// The credentials inside a destination's settings, each with its place: the `url`, a
/// Kafka destination's `sasl.password`, a client certificate's `tls.client_key_pem`, a
/// webhook's `oauth2.client_secret` and the value of each of its `headers`.
fn credentials(config: &mut Value, destination: Uuid) -> Vec<(&mut String, String)> {
    let mut found = Vec::new();
    let Some(settings) = config.as_object_mut() else {
        return found;
    };
    let place = |what: &str| format!("destination:{destination}:{what}");
    for (name, value) in settings.iter_mut() {
        match (name.as_str(), value) {
            ("url", Value::String(url)) => found.push((url, url_place(destination))),
            ("sasl", Value::Object(sasl)) => {
                if let Some(Value::String(password)) = sasl.get_mut("password") {
                    found.push((password, place("sasl-password")));
                }
            }
            ("tls", Value::Object(tls)) => {
                if let Some(Value::String(key)) = tls.get_mut("client_key_pem") {
                    found.push((key, place("tls-client-key")));
                }
            }
            ("oauth2", Value::Object(oauth2)) => {
                if let Some(Value::String(secret)) = oauth2.get_mut("client_secret") {
                    found.push((secret, place("oauth2-client-secret")));
                }
            }
            ("headers", Value::Object(headers)) => {
                for (header, value) in headers.iter_mut() {
                    if let Value::String(value) = value {
                        let what = format!("header:{}", header.to_ascii_lowercase());
                        found.push((value, place(&what)));
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// The settings field a credential's place names (`tls.client_key_pem`), for messages.
fn field_of(place: &str) -> String {
    let what = place.rsplit_once(':').map_or(place, |(_, what)| what);
    match place.split(':').nth(2) {
        Some("header") => format!("headers.{what}"),
        _ => match what {
            "sasl-password" => "sasl.password".into(),
            "tls-client-key" => "tls.client_key_pem".into(),
            "oauth2-client-secret" => "oauth2.client_secret".into(),
            other => other.into(),
        },
    }
}

/// The first credential (other than the URL) that is still `redacted` in `config`: a value
/// copied from a view where there is no stored value to keep.
pub fn still_redacted(config: &Value, redacted: &str) -> Option<String> {
    let mut config = config.clone();
    credentials(&mut config, Uuid::nil())
        .into_iter()
        .find(|(value, place)| value.as_str() == redacted && !place.ends_with(":url"))
        .map(|(_, place)| field_of(&place))
}

/// A PATCH sends back what it was shown: every credential that is still `redacted` (`***`)
/// in `config` takes the value it has at the same place in `stored`, so a client can change
/// one field without re-sending every secret. A credential with no stored value stays as
/// sent (and fails validation if it must parse).
pub fn keep_redacted(config: &mut Value, stored: &Value, redacted: &str) {
    let mut stored = stored.clone();
    // The places are per destination; any one id pairs the two sides.
    let id = Uuid::nil();
    let kept: std::collections::HashMap<String, String> = credentials(&mut stored, id)
        .into_iter()
        .map(|(value, place)| (place, value.clone()))
        .collect();
    for (value, place) in credentials(config, id) {
        if value == redacted
            && let Some(old) = kept.get(&place)
        {
            value.clone_from(old);
        }
    }
}

/// `config` with its credentials sealed.
pub fn seal_settings(
    keyring: &Keyring,
    destination: Uuid,
    config: &Value,
) -> Result<Value, SecretsError> {
    let mut sealed = config.clone();
    for (value, place) in credentials(&mut sealed, destination) {
        if !keyring::is_sealed(value) {
            *value = keyring.seal(value, &place)?;
        }
    }
    Ok(sealed)
}

/// `config` with its credentials opened.
pub fn open_settings(
    keyring: &Keyring,
    destination: Uuid,
    mut config: Value,
) -> Result<Value, SecretsError> {
    for (value, place) in credentials(&mut config, destination) {
        if keyring::is_sealed(value) {
            *value = keyring.open(value, &place)?;
        }
    }
    Ok(config)
}

pub fn seal_signing_secret(
    keyring: &Keyring,
    destination: Uuid,
    secret: &str,
) -> Result<String, SecretsError> {
    keyring.seal(secret, &signing_place(destination))
}

pub fn open_signing_secret(
    keyring: &Keyring,
    destination: Uuid,
    stored: Option<String>,
) -> Result<Option<String>, SecretsError> {
    match stored {
        Some(sealed) if keyring::is_sealed(&sealed) => {
            keyring.open(&sealed, &signing_place(destination)).map(Some)
        }
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_url_opens_only_in_its_own_destination() {
        let ring = Keyring::from_base64([Keyring::generate_base64().unwrap().as_str()]).unwrap();
        let (id, other) = (Uuid::now_v7(), Uuid::now_v7());
        let config = serde_json::json!({"url": "amqp://u:hunter2@h/v", "exchange": "x"});
        let sealed = seal_settings(&ring, id, &config).unwrap();
        assert!(!sealed.to_string().contains("hunter2"));
        assert_eq!(sealed["exchange"], "x", "only the url is sealed");
        assert_eq!(open_settings(&ring, id, sealed.clone()).unwrap(), config);
        assert!(open_settings(&ring, other, sealed).is_err());
        let secret = seal_signing_secret(&ring, id, "whsec_x").unwrap();
        assert_eq!(
            open_signing_secret(&ring, id, Some(secret))
                .unwrap()
                .as_deref(),
            Some("whsec_x")
        );
        assert_eq!(
            open_signing_secret(&ring, id, Some("whsec_plain".into()))
                .unwrap()
                .as_deref(),
            Some("whsec_plain"),
            "a row from before encryption reads as it is"
        );
    }
}
