//! Each kind's settings as clients send them. The schema of every field is the rule the
//! server checks: the same patterns validate the value and appear in the contract.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex_lite::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::url::{AMQP_URL_PATTERN, MAX_URL_CHARS, MQTT_URL_PATTERN, UrlKind, WEBHOOK_URL_PATTERN};
use crate::error::ApiError;

/// An AMQP exchange: 1-255 printable ASCII characters, no space.
const EXCHANGE_PATTERN: &str = r"^[\x21-\x7e]{1,255}$";
/// An AMQP routing key: up to 255 printable ASCII characters.
const ROUTING_KEY_PATTERN: &str = r"^[\x20-\x7e]{0,255}$";
/// An MQTT topic to publish to: 1-1024 printable ASCII characters, no wildcard (`+`, `#`).
const TOPIC_PATTERN: &str = r"^[\x20-\x22\x24-\x2a\x2c-\x7e]{1,1024}$";
/// Text stored with the settings: anything but NUL (which PostgreSQL cannot store).
const NO_NUL_PATTERN: &str = r"^[^\x00]*$";

fn regex(pattern: &'static str) -> Regex {
    // The patterns are constants above; a mistake in one fails every test at once.
    Regex::new(pattern).unwrap_or_else(|err| panic!("pattern {pattern}: {err}"))
}

static EXCHANGE: LazyLock<Regex> = LazyLock::new(|| regex(EXCHANGE_PATTERN));
static ROUTING_KEY: LazyLock<Regex> = LazyLock::new(|| regex(ROUTING_KEY_PATTERN));
static TOPIC: LazyLock<Regex> = LazyLock::new(|| regex(TOPIC_PATTERN));

fn check(field: &str, value: &str, rule: &Regex, what: &str) -> Result<(), ApiError> {
    if rule.is_match(value) {
        Ok(())
    } else {
        Err(ApiError::invalid(field, what))
    }
}

pub(super) fn check_url(url: &str, kind: UrlKind) -> Result<(), ApiError> {
    match kind.host(url) {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid(
            "url",
            format!(
                "must be {} (at most {MAX_URL_CHARS} characters; no IPv6 literal)",
                kind.expected()
            ),
        )),
    }
}

/// AMQP 0-9-1: publish to `exchange` with `routing_key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// The broker, with its credentials (shown with the password as `***`).
    #[schemars(regex(pattern = AMQP_URL_PATTERN), length(max = 2048))]
    pub url: String,
    /// The client's exchange (it must exist; eventgate never declares it).
    #[schemars(regex(pattern = EXCHANGE_PATTERN))]
    pub exchange: String,
    #[serde(default)]
    #[schemars(regex(pattern = ROUTING_KEY_PATTERN))]
    pub routing_key: String,
    /// CloudEvents AMQP binding, binary mode: attributes as `cloudEvents:` headers.
    #[serde(default)]
    pub cloudevents: bool,
}

impl AmqpConfig {
    pub(super) fn validate(&self) -> Result<(), ApiError> {
        check_url(&self.url, UrlKind::Amqp)?;
        check(
            "exchange",
            &self.exchange,
            &EXCHANGE,
            "must be 1-255 printable ASCII characters without spaces",
        )?;
        check(
            "routing_key",
            &self.routing_key,
            &ROUTING_KEY,
            "must be at most 255 printable ASCII characters",
        )
    }
}

/// MQTT 5: publish to `topic` with `qos`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    #[schemars(regex(pattern = MQTT_URL_PATTERN), length(max = 2048))]
    pub url: String,
    /// The client's topic (all events on this one topic).
    #[schemars(regex(pattern = TOPIC_PATTERN))]
    pub topic: String,
    #[serde(default = "default_qos", deserialize_with = "qos")]
    #[schemars(range(min = 0, max = 2))]
    pub qos: u8,
    /// CloudEvents MQTT binding, binary mode: attributes as user properties.
    #[serde(default)]
    pub cloudevents: bool,
}

fn default_qos() -> u8 {
    1
}

/// 0, 1 or 2, however the JSON number is written (`1`, `1.0`): JSON Schema's integers are
/// numbers with no fraction, and the contract says integer.
fn qos<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u8, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    let value: rust_decimal::Decimal = number
        .as_str()
        .parse()
        .or_else(|_| rust_decimal::Decimal::from_scientific(number.as_str()))
        .map_err(|_| serde::de::Error::custom("must be 0, 1 or 2"))?;
    match u8::try_from(value.normalize().mantissa()) {
        Ok(qos) if value.fract().is_zero() => Ok(qos),
        _ => Err(serde::de::Error::custom("must be 0, 1 or 2")),
    }
}

impl MqttConfig {
    pub(super) fn validate(&self) -> Result<(), ApiError> {
        check_url(&self.url, UrlKind::Mqtt)?;
        check(
            "topic",
            &self.topic,
            &TOPIC,
            "must be 1-1024 printable ASCII characters without the wildcards '+' and '#'",
        )?;
        if self.qos > 2 {
            return Err(ApiError::invalid("qos", "must be 0, 1 or 2"));
        }
        Ok(())
    }
}

/// The wire format of a webhook: the seed's envelope, or the entity-change notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Envelope,
    Entity,
}

/// An entity named in the entity-change format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EntityName {
    Portfolio,
    Optimization,
    User,
    Profile,
    Report,
}

impl EntityName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Portfolio => "Portfolio",
            Self::Optimization => "Optimization",
            Self::User => "User",
            Self::Profile => "Profile",
            Self::Report => "Report",
        }
    }
}

/// An HTTP(S) endpoint receiving signed POSTs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[schemars(regex(pattern = WEBHOOK_URL_PATTERN), length(max = 2048))]
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// Entities to deliver (all when empty).
    #[serde(default)]
    pub entities: Vec<EntityName>,
    /// Sent as `custom_config` in entity-format payloads: names to text values, no NUL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<CustomConfig>")]
    pub custom_config: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Names to text values, no NUL (documentation only).
#[derive(JsonSchema)]
#[schemars(transparent)]
#[allow(dead_code)]
struct CustomConfig(BTreeMap<String, NoNul>);

impl WebhookConfig {
    pub(super) fn validate(&self) -> Result<(), ApiError> {
        check_url(&self.url, UrlKind::Webhook)?;
        for (name, value) in self.custom_config.iter().flatten() {
            let text = value.as_str().ok_or_else(|| {
                ApiError::invalid(format!("custom_config.{name}"), "must be a string")
            })?;
            if name.contains('\0') || text.contains('\0') {
                return Err(ApiError::invalid(
                    "custom_config",
                    "names and values must not contain NUL",
                ));
            }
        }
        Ok(())
    }

    /// Whether an event about `entity` goes to this endpoint.
    pub fn delivers(&self, entity: &str) -> bool {
        self.entities.is_empty() || self.entities.iter().any(|e| e.as_str() == entity)
    }
}

/// Text without NUL (documentation only).
#[derive(JsonSchema)]
#[schemars(transparent, inline)]
#[allow(dead_code)]
struct NoNul(#[schemars(regex(pattern = NO_NUL_PATTERN))] String);
