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

/// Whether `topic` is a valid MQTT topic to publish to.
pub fn is_mqtt_topic(topic: &str) -> bool {
    TOPIC.is_match(topic)
}

/// Whether `topic` is a valid Kafka topic name.
pub fn is_kafka_topic(topic: &str) -> bool {
    KAFKA_TOPIC.is_match(topic)
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

/// A Kafka broker to bootstrap from: `host:port` (a name or IPv4 address).
const BOOTSTRAP_SERVER_PATTERN: &str = concat!(
    "^([A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)",
    ":([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
);
/// A Kafka topic name: 1-249 of `[A-Za-z0-9._-]`, as Kafka itself allows.
const KAFKA_TOPIC_PATTERN: &str = r"^[A-Za-z0-9._-]{1,249}$";
/// A Kafka client id: 1-255 of `[A-Za-z0-9._-]`.
const KAFKA_CLIENT_ID_PATTERN: &str = r"^[A-Za-z0-9._-]{1,255}$";
/// A SASL user name or password: 1-255 characters, no NUL (PLAIN separates with NUL).
const SASL_TEXT_PATTERN: &str = r"^[^\x00]{1,255}$";
/// Most bootstrap servers one destination names.
const MAX_BOOTSTRAP_SERVERS: usize = 16;
/// Largest CA bundle accepted: a few certificates, well inside the request body limit.
const MAX_CA_PEM_CHARS: usize = 16_384;
/// PEM text: printable ASCII, tabs and line breaks.
const PEM_TEXT_PATTERN: &str = r"^[\x09\x0a\x0d\x20-\x7e]*$";

static BOOTSTRAP_SERVER: LazyLock<Regex> = LazyLock::new(|| regex(BOOTSTRAP_SERVER_PATTERN));
static KAFKA_TOPIC: LazyLock<Regex> = LazyLock::new(|| regex(KAFKA_TOPIC_PATTERN));
static KAFKA_CLIENT_ID: LazyLock<Regex> = LazyLock::new(|| regex(KAFKA_CLIENT_ID_PATTERN));
static SASL_TEXT: LazyLock<Regex> = LazyLock::new(|| regex(SASL_TEXT_PATTERN));
static PEM_TEXT: LazyLock<Regex> = LazyLock::new(|| regex(PEM_TEXT_PATTERN));

/// Kafka: one record per event on `topic`, keyed by the entity the event is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Brokers to bootstrap from (`host:port`); the cluster's metadata names the rest.
    #[schemars(length(min = 1, max = 16), inner(regex(pattern = BOOTSTRAP_SERVER_PATTERN)))]
    pub bootstrap_servers: Vec<String>,
    /// The client's topic (it must exist; eventgate never creates it).
    #[schemars(regex(pattern = KAFKA_TOPIC_PATTERN))]
    pub topic: String,
    /// The Kafka client id eventgate connects with (default `eventgate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = KAFKA_CLIENT_ID_PATTERN))]
    pub client_id: Option<String>,
    /// SASL authentication (the password is shown as `***`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<KafkaSasl>,
    /// TLS to the brokers; plaintext when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTls>,
    /// CloudEvents Kafka binding, binary mode: attributes as `ce_` headers.
    #[serde(default)]
    pub cloudevents: bool,
}

/// A SASL mechanism Kafka brokers offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

/// SASL credentials.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSasl {
    pub mechanism: SaslMechanism,
    #[schemars(regex(pattern = SASL_TEXT_PATTERN))]
    pub username: String,
    #[schemars(regex(pattern = SASL_TEXT_PATTERN))]
    pub password: String,
}

impl std::fmt::Debug for KafkaSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password: settings end up in logs through `Debug`.
        f.debug_struct("KafkaSasl")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// TLS settings: the brokers' certificates are checked against `ca_pem` when given, else
/// against the public web roots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaTls {
    /// CA certificates (PEM) to trust for these brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384), regex(pattern = PEM_TEXT_PATTERN))]
    pub ca_pem: Option<String>,
}

impl KafkaConfig {
    pub(super) fn validate(&self) -> Result<(), ApiError> {
        if self.bootstrap_servers.is_empty() || self.bootstrap_servers.len() > MAX_BOOTSTRAP_SERVERS
        {
            return Err(ApiError::invalid(
                "bootstrap_servers",
                format!("must name 1-{MAX_BOOTSTRAP_SERVERS} brokers"),
            ));
        }
        for (i, server) in self.bootstrap_servers.iter().enumerate() {
            check(
                &format!("bootstrap_servers[{i}]"),
                server,
                &BOOTSTRAP_SERVER,
                "must be host:port (a name or IPv4 address, and a port 1-65535)",
            )?;
        }
        check(
            "topic",
            &self.topic,
            &KAFKA_TOPIC,
            "must be 1-249 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
        )?;
        if let Some(client_id) = &self.client_id {
            check(
                "client_id",
                client_id,
                &KAFKA_CLIENT_ID,
                "must be 1-255 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
            )?;
        }
        if let Some(sasl) = &self.sasl {
            let what = "must be 1-255 characters without NUL";
            check("sasl.username", &sasl.username, &SASL_TEXT, what)?;
            check("sasl.password", &sasl.password, &SASL_TEXT, what)?;
        }
        if let Some(ca_pem) = self.tls.as_ref().and_then(|tls| tls.ca_pem.as_deref()) {
            if ca_pem.len() > MAX_CA_PEM_CHARS || !PEM_TEXT.is_match(ca_pem) {
                return Err(ApiError::invalid(
                    "tls.ca_pem",
                    format!(
                        "must be PEM text: at most {MAX_CA_PEM_CHARS} printable ASCII characters, tabs and line breaks"
                    ),
                ));
            }
            // The schema can say "text", not "PEM that parses": a bundle that fits the
            // schema but does not parse conflicts with what the field is for (409).
            if let Err(err) = crate::delivery::kafka::tls::certificates(ca_pem) {
                return Err(ApiError::conflict(format!(
                    "tls.ca_pem must hold one or more PEM certificates: {err}"
                )));
            }
        }
        Ok(())
    }

    /// Each bootstrap server's host and port (valid settings only).
    pub fn endpoints(&self) -> Vec<(&str, u16)> {
        self.bootstrap_servers
            .iter()
            .filter_map(|server| {
                let captures = BOOTSTRAP_SERVER.captures(server)?;
                Some((
                    captures.get(1)?.as_str(),
                    captures.get(2)?.as_str().parse().ok()?,
                ))
            })
            .collect()
    }
}
