//! Nested settings objects (`tls`, `oauth2`, `sasl`) accept a JSON object and nothing else:
//! serde's derived structs also take an array of their fields in order, which the contract
//! does not allow (`"tls": [null, null]` must be refused, not read as `{}`).

use serde::de::{DeserializeOwned, Error};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An optional nested object; `null` is the same as leaving it out.
pub fn optional<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        object @ Value::Object(_) => T::deserialize(object).map(Some).map_err(D::Error::custom),
        _ => Err(D::Error::custom("must be an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Kind, SinkConfig};

    #[test]
    fn an_array_is_not_an_object() {
        for body in [
            serde_json::json!({"url": "https://h/x", "tls": [null, null]}),
            serde_json::json!({"url": "https://h/x", "oauth2": ["https://t/x", "a", "b"]}),
            serde_json::json!({"url": "https://h/x", "tls": "x"}),
        ] {
            assert!(
                SinkConfig::parse(Kind::Webhook, body.clone()).is_err(),
                "{body}"
            );
        }
        let kafka = serde_json::json!({"bootstrap_servers": ["h:1"], "topic": "t",
            "sasl": ["PLAIN", "u", "p"]});
        assert!(SinkConfig::parse(Kind::Kafka, kafka).is_err());
        let fine = serde_json::json!({"url": "https://h/x", "tls": {}});
        assert!(SinkConfig::parse(Kind::Webhook, fine).is_ok());
    }
}
