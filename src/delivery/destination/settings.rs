//! Each kind's settings as clients send them. The schema of every field is the rule the
//! server checks: the same patterns validate the value and appear in the contract.

use std::sync::LazyLock;

use regex_lite::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::objects;
use super::tls::ClientTls;
use super::url::{AMQP_URL_PATTERN, MAX_URL_CHARS, MQTT_URL_PATTERN, UrlKind};
use crate::error::ApiError;

/// An AMQP exchange: 1-255 printable ASCII characters, no space.
const EXCHANGE_PATTERN: &str = r"^[\x21-\x7e]{1,255}$";
/// An AMQP routing key: up to 255 printable ASCII characters.
const ROUTING_KEY_PATTERN: &str = r"^[\x20-\x7e]{0,255}$";
/// An MQTT topic to publish to: 1-1024 printable ASCII characters, no wildcard (`+`, `#`).
const TOPIC_PATTERN: &str = r"^[\x20-\x22\x24-\x2a\x2c-\x7e]{1,1024}$";
/// Text stored with the settings: anything but NUL (which PostgreSQL cannot store).
pub(super) const NO_NUL_PATTERN: &str = r"^[^\x00]*$";

pub(super) fn regex(pattern: &'static str) -> Regex {
    // The patterns are constants above; a mistake in one fails every test at once.
    Regex::new(pattern).unwrap_or_else(|err| panic!("pattern {pattern}: {err}"))
}

static EXCHANGE: LazyLock<Regex> = LazyLock::new(|| regex(EXCHANGE_PATTERN));
static ROUTING_KEY: LazyLock<Regex> = LazyLock::new(|| regex(ROUTING_KEY_PATTERN));
static TOPIC: LazyLock<Regex> = LazyLock::new(|| regex(TOPIC_PATTERN));

pub(super) fn check(field: &str, value: &str, rule: &Regex, what: &str) -> Result<(), ApiError> {
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

/// `tls` settings apply to a TLS URL only: with a plain one they would silently do nothing,
/// so they conflict with it (409: each field fits the schema, the pair does not).
fn check_tls(url: &str, tls_scheme: &str, tls: Option<&ClientTls>) -> Result<(), ApiError> {
    let Some(tls) = tls else {
        return Ok(());
    };
    if !url.starts_with(tls_scheme) {
        return Err(ApiError::conflict(format!(
            "`tls` applies to {tls_scheme} URLs only; this URL does not use TLS"
        )));
    }
    tls.validate("tls")
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
    /// `amqps://` only: the CA to trust and a client certificate (mutual TLS).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "objects::optional"
    )]
    pub tls: Option<ClientTls>,
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
        )?;
        check_tls(&self.url, "amqps://", self.tls.as_ref())
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
    #[serde(default = "default_qos", deserialize_with = "super::numbers::qos")]
    #[schemars(range(min = 0, max = 2))]
    pub qos: u8,
    /// CloudEvents MQTT binding, binary mode: attributes as user properties.
    #[serde(default)]
    pub cloudevents: bool,
    /// `mqtts://` only: the CA to trust and a client certificate (mutual TLS).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "objects::optional"
    )]
    pub tls: Option<ClientTls>,
}

fn default_qos() -> u8 {
    1
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
        check_tls(&self.url, "mqtts://", self.tls.as_ref())
    }
}

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

static BOOTSTRAP_SERVER: LazyLock<Regex> = LazyLock::new(|| regex(BOOTSTRAP_SERVER_PATTERN));
static KAFKA_TOPIC: LazyLock<Regex> = LazyLock::new(|| regex(KAFKA_TOPIC_PATTERN));
static KAFKA_CLIENT_ID: LazyLock<Regex> = LazyLock::new(|| regex(KAFKA_CLIENT_ID_PATTERN));
static SASL_TEXT: LazyLock<Regex> = LazyLock::new(|| regex(SASL_TEXT_PATTERN));

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
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "objects::optional"
    )]
    pub sasl: Option<KafkaSasl>,
    /// TLS to the brokers; plaintext when absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "objects::optional"
    )]
    pub tls: Option<ClientTls>,
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
        if let Some(tls) = &self.tls {
            tls.validate("tls")?;
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
