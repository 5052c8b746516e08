//! What a destination is: its kind-specific settings as clients send them ([`settings`],
//! with the URL grammar of [`url`]), their validation, and the redaction of credentials in
//! everything shown or logged.
//!
//! Bodies are dispatched on `kind` by hand, not with a serde-tagged enum: serde buffers
//! tagged enums through an internal form that breaks exact numbers (`qos: 1`).

pub mod endpoint_auth;
pub mod numbers;
pub mod objects;
pub mod settings;
pub mod tls;
pub mod url;
pub mod webhook;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use settings::{AmqpConfig, KafkaConfig, KafkaSasl, MqttConfig, SaslMechanism};
pub use tls::ClientTls;
pub use webhook::{EntityName, Ordering, SignatureScheme, WebhookConfig, WebhookFormat};

use crate::catalogue::TypePattern;
use crate::error::ApiError;

/// A kind of destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Amqp,
    Mqtt,
    Webhook,
    Kafka,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Amqp, Kind::Mqtt, Kind::Webhook, Kind::Kafka];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Amqp => "amqp",
            Kind::Mqtt => "mqtt",
            Kind::Webhook => "webhook",
            Kind::Kafka => "kafka",
        }
    }

    pub fn parse(value: &str) -> Option<Kind> {
        match value {
            "amqp" => Some(Kind::Amqp),
            "mqtt" => Some(Kind::Mqtt),
            "webhook" => Some(Kind::Webhook),
            "kafka" => Some(Kind::Kafka),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SinkConfig {
    Amqp(AmqpConfig),
    Mqtt(MqttConfig),
    Webhook(WebhookConfig),
    Kafka(KafkaConfig),
}

impl SinkConfig {
    pub fn kind(&self) -> Kind {
        match self {
            SinkConfig::Amqp(_) => Kind::Amqp,
            SinkConfig::Mqtt(_) => Kind::Mqtt,
            SinkConfig::Webhook(_) => Kind::Webhook,
            SinkConfig::Kafka(_) => Kind::Kafka,
        }
    }

    /// The hosts and ports this destination connects to first (a Kafka cluster's
    /// metadata names more brokers; each connection is checked as it is made).
    pub fn endpoints(&self) -> Vec<(&str, u16)> {
        match self {
            SinkConfig::Kafka(c) => c.endpoints(),
            SinkConfig::Webhook(c) => c.endpoints(),
            other => other
                .url()
                .and_then(|url| url::UrlKind::of(other.kind())?.endpoint(url))
                .into_iter()
                .collect(),
        }
    }

    /// The settings field naming where the destination connects.
    pub fn address_field(&self) -> &'static str {
        match self {
            SinkConfig::Kafka(_) => "bootstrap_servers",
            _ => "url",
        }
    }

    /// The URL of the kinds that have one.
    pub fn url(&self) -> Option<&str> {
        match self {
            SinkConfig::Amqp(c) => Some(&c.url),
            SinkConfig::Mqtt(c) => Some(&c.url),
            SinkConfig::Webhook(c) => Some(&c.url),
            SinkConfig::Kafka(_) => None,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            SinkConfig::Amqp(c) => serde_json::to_value(c),
            SinkConfig::Mqtt(c) => serde_json::to_value(c),
            SinkConfig::Webhook(c) => serde_json::to_value(c),
            SinkConfig::Kafka(c) => serde_json::to_value(c),
        }
        .unwrap_or(Value::Null)
    }

    /// Parses settings of `kind` a client sent, and checks every rule.
    pub fn parse(kind: Kind, config: Value) -> Result<SinkConfig, ApiError> {
        let parsed = Self::stored(kind, config)?;
        parsed.validate()?;
        Ok(parsed)
    }

    /// Reads settings as stored: checked when they were saved (perhaps by an older release
    /// with other rules), so only their shape matters here.
    pub fn stored(kind: Kind, config: Value) -> Result<SinkConfig, ApiError> {
        Ok(match kind {
            Kind::Amqp => SinkConfig::Amqp(parse_fields(config)?),
            Kind::Mqtt => SinkConfig::Mqtt(parse_fields(config)?),
            Kind::Webhook => SinkConfig::Webhook(parse_fields(config)?),
            Kind::Kafka => SinkConfig::Kafka(parse_fields(config)?),
        })
    }

    fn validate(&self) -> Result<(), ApiError> {
        match self {
            SinkConfig::Amqp(c) => c.validate(),
            SinkConfig::Mqtt(c) => c.validate(),
            SinkConfig::Webhook(c) => c.validate(),
            SinkConfig::Kafka(c) => c.validate(),
        }
    }

    /// The settings as shown to clients: the URL's password, and a SASL password,
    /// replaced.
    pub fn redacted(&self) -> Value {
        self.clone().into_redacted().to_json()
    }

    /// These settings with every credential replaced by `***`.
    pub fn into_redacted(self) -> Self {
        match self {
            SinkConfig::Amqp(mut c) => {
                c.url = redact_url(&c.url);
                redact_tls(&mut c.tls);
                SinkConfig::Amqp(c)
            }
            SinkConfig::Mqtt(mut c) => {
                c.url = redact_url(&c.url);
                redact_tls(&mut c.tls);
                SinkConfig::Mqtt(c)
            }
            SinkConfig::Webhook(mut c) => {
                c.url = redact_url(&c.url);
                redact_tls(&mut c.tls);
                if let Some(oauth2) = &mut c.oauth2 {
                    oauth2.client_secret = REDACTED.to_owned();
                }
                for value in c.headers.values_mut() {
                    *value = REDACTED.to_owned();
                }
                SinkConfig::Webhook(c)
            }
            SinkConfig::Kafka(mut c) => {
                if let Some(sasl) = &mut c.sasl {
                    sasl.password = REDACTED.to_owned();
                }
                redact_tls(&mut c.tls);
                SinkConfig::Kafka(c)
            }
        }
    }

    /// The settings as the audit log keeps them: [`Self::redacted`], and the queries of
    /// the URL and the token URL (where a token may be carried) replaced too.
    pub fn audited(&self) -> Value {
        let mut kept = self.redacted();
        let hide_query = |url: &mut Value| {
            if let Value::String(url) = url
                && let Some((before, _)) = url.split_once('?')
            {
                *url = format!("{before}?***");
            }
        };
        if let Some(url) = kept.get_mut("url") {
            hide_query(url);
        }
        if let Some(url) = kept.pointer_mut("/oauth2/token_url") {
            hide_query(url);
        }
        kept
    }
}

/// What a credential is shown as.
pub const REDACTED: &str = "***";

fn redact_tls(tls: &mut Option<ClientTls>) {
    if let Some(key) = tls.as_mut().and_then(|tls| tls.client_key_pem.as_mut()) {
        *key = REDACTED.to_owned();
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

/// `amqp://user:secret@host/` becomes `amqp://user:***@host/`; anything unparsable is
/// hidden entirely.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let password = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{password}@{host}{tail}")
        }
        None => url.to_owned(),
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
        assert_eq!(
            redact_url("amqps://user:p%40ss@host/vhost?x=1"),
            "amqps://user:***@host/vhost?x=1"
        );
        assert_eq!(redact_url("amqp://user@host"), "amqp://user@host");
    }

    #[test]
    fn the_audit_log_keeps_neither_passwords_nor_queries() {
        let webhook = SinkConfig::parse(
            Kind::Webhook,
            serde_json::json!({"url": "https://hooks.example.com/in?token=t0ps3cret"}),
        )
        .unwrap();
        assert_eq!(webhook.audited()["url"], "https://hooks.example.com/in?***");
        let amqp = SinkConfig::parse(
            Kind::Amqp,
            serde_json::json!({"url": "amqp://u:pw@h/v", "exchange": "x"}),
        )
        .unwrap();
        assert_eq!(amqp.audited()["url"], "amqp://u:***@h/v");
    }

    #[test]
    fn a_kafka_password_is_never_shown() {
        let kafka = SinkConfig::parse(
            Kind::Kafka,
            serde_json::json!({"bootstrap_servers": ["b1:9092", "b2:9093"], "topic": "acme.events",
                "sasl": {"mechanism": "SCRAM-SHA-256", "username": "acme", "password": "hunter2"}}),
        )
        .unwrap();
        assert_eq!(kafka.redacted()["sasl"]["password"], "***");
        assert_eq!(kafka.audited()["sasl"]["password"], "***");
        assert!(!format!("{kafka:?}").contains("hunter2"));
        assert_eq!(kafka.endpoints(), [("b1", 9092), ("b2", 9093)]);
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
