//! What a destination is: its kind-specific settings as clients send them, their
//! validation, and the redaction of credentials in everything shown or logged.
//!
//! Bodies are dispatched on `kind` by hand, not with a serde-tagged enum: serde buffers
//! tagged enums through an internal form that breaks exact numbers (`qos: 1`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::catalogue::TypePattern;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Amqp,
    Mqtt,
    Webhook,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Amqp => "amqp",
            Kind::Mqtt => "mqtt",
            Kind::Webhook => "webhook",
        }
    }

    pub fn parse(value: &str) -> Option<Kind> {
        match value {
            "amqp" => Some(Kind::Amqp),
            "mqtt" => Some(Kind::Mqtt),
            "webhook" => Some(Kind::Webhook),
            _ => None,
        }
    }
}

/// AMQP 0-9-1: publish to `exchange` with `routing_key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    pub url: String,
    pub exchange: String,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub cloudevents: bool,
}

/// MQTT 5: publish to `topic` with `qos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    pub url: String,
    pub topic: String,
    #[serde(default = "default_qos")]
    pub qos: u8,
    #[serde(default)]
    pub cloudevents: bool,
}

fn default_qos() -> u8 {
    1
}

/// The wire format of a webhook: the seed's envelope, or the entity-change notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Envelope,
    Entity,
}

/// An HTTP(S) endpoint receiving signed POSTs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// Entity names to deliver (all when empty).
    #[serde(default)]
    pub entities: Vec<String>,
    /// Sent as `custom_config` in entity-format payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_config: Option<Value>,
}

const ENTITY_NAMES: [&str; 5] = ["Portfolio", "Optimization", "User", "Profile", "Report"];

#[derive(Debug, Clone, PartialEq)]
pub enum SinkConfig {
    Amqp(AmqpConfig),
    Mqtt(MqttConfig),
    Webhook(WebhookConfig),
}

impl SinkConfig {
    pub fn kind(&self) -> Kind {
        match self {
            SinkConfig::Amqp(_) => Kind::Amqp,
            SinkConfig::Mqtt(_) => Kind::Mqtt,
            SinkConfig::Webhook(_) => Kind::Webhook,
        }
    }

    pub fn url(&self) -> &str {
        match self {
            SinkConfig::Amqp(c) => &c.url,
            SinkConfig::Mqtt(c) => &c.url,
            SinkConfig::Webhook(c) => &c.url,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            SinkConfig::Amqp(c) => serde_json::to_value(c),
            SinkConfig::Mqtt(c) => serde_json::to_value(c),
            SinkConfig::Webhook(c) => serde_json::to_value(c),
        }
        .unwrap_or(Value::Null)
    }

    /// Parses stored or requested settings of `kind` and validates them.
    pub fn parse(kind: Kind, config: Value) -> Result<SinkConfig, ApiError> {
        let parsed = match kind {
            Kind::Amqp => SinkConfig::Amqp(parse_fields(config)?),
            Kind::Mqtt => SinkConfig::Mqtt(parse_fields(config)?),
            Kind::Webhook => SinkConfig::Webhook(parse_fields(config)?),
        };
        parsed.validate()?;
        Ok(parsed)
    }

    fn validate(&self) -> Result<(), ApiError> {
        match self {
            SinkConfig::Amqp(c) => {
                check_url(&c.url, &["amqp", "amqps"])?;
                if c.exchange.is_empty() || c.exchange.len() > 255 {
                    return Err(ApiError::invalid("exchange", "must be 1-255 bytes"));
                }
                if c.routing_key.len() > 255 {
                    return Err(ApiError::invalid(
                        "routing_key",
                        "must be at most 255 bytes",
                    ));
                }
            }
            SinkConfig::Mqtt(c) => {
                check_url(&c.url, &["mqtt"])?;
                if c.topic.is_empty() || c.topic.len() > 1024 || c.topic.contains(['+', '#', '\0'])
                {
                    return Err(ApiError::invalid(
                        "topic",
                        "must be 1-1024 bytes without the wildcards '+' and '#'",
                    ));
                }
                if c.qos > 2 {
                    return Err(ApiError::invalid("qos", "must be 0, 1 or 2"));
                }
            }
            SinkConfig::Webhook(c) => {
                check_url(&c.url, &["http", "https"])?;
                for (i, entity) in c.entities.iter().enumerate() {
                    if !ENTITY_NAMES.contains(&entity.as_str()) {
                        return Err(ApiError::invalid(
                            format!("entities[{i}]"),
                            format!("must be one of: {}", ENTITY_NAMES.join(", ")),
                        ));
                    }
                }
                if c.custom_config.as_ref().is_some_and(|v| !v.is_object()) {
                    return Err(ApiError::invalid("custom_config", "must be an object"));
                }
            }
        }
        Ok(())
    }

    /// The settings as shown to clients: the URL's password replaced.
    pub fn redacted(&self) -> Value {
        let mut shown = self.to_json();
        if let Some(url) = shown.get_mut("url") {
            *url = Value::String(redact_url(self.url()));
        }
        shown
    }
}

fn parse_fields<T: for<'de> Deserialize<'de>>(config: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(config).map_err(|err| {
        let path = err.path().to_string();
        ApiError::invalid(
            if path == "." { String::new() } else { path },
            err.into_inner().to_string(),
        )
    })
}

fn check_url(url: &str, schemes: &[&str]) -> Result<(), ApiError> {
    let parsed = Url::parse(url).map_err(|e| ApiError::invalid("url", e.to_string()))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(ApiError::invalid(
            "url",
            format!("scheme must be one of: {}", schemes.join(", ")),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid("url", "must name a host"));
    }
    Ok(())
}

/// `amqp://user:secret@host/` becomes `amqp://user:***@host/`; anything unparsable is
/// hidden entirely.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "***".to_owned(),
    }
}

/// Validates `types` patterns and expands them to the event type names they cover.
pub fn expand_types(patterns: &[String]) -> Result<Vec<String>, ApiError> {
    let mut names = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let parsed = TypePattern::parse(pattern).ok_or_else(|| {
            ApiError::invalid(
                format!("types[{i}]"),
                format!("unknown event type '{pattern}' (subject.action or subject.*)"),
            )
        })?;
        names.extend(parsed.names());
    }
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("mqtt://127.0.0.1:1883"), "mqtt://127.0.0.1:1883");
        assert_eq!(redact_url("not a url with secret"), "***");
    }

    #[test]
    fn settings_are_validated_per_kind() {
        let ok =
            serde_json::json!({"url": "mqtt://127.0.0.1:1883", "topic": "acme/events", "qos": 1});
        assert!(SinkConfig::parse(Kind::Mqtt, ok).is_ok());
        let wildcard = serde_json::json!({"url": "mqtt://127.0.0.1", "topic": "acme/#"});
        assert!(SinkConfig::parse(Kind::Mqtt, wildcard).is_err());
        let wrong_scheme = serde_json::json!({"url": "http://x", "exchange": "e"});
        assert!(SinkConfig::parse(Kind::Amqp, wrong_scheme).is_err());
        let unknown = serde_json::json!({"url": "amqp://x", "exchange": "e", "colour": 1});
        assert!(SinkConfig::parse(Kind::Amqp, unknown).is_err());
    }
}
