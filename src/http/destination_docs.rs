//! The documented bodies of `POST /destinations` and `PATCH /destinations/{id}`. The
//! handlers read the bodies field by field (to dispatch on `kind` without losing exact
//! numbers), and check them with the very settings types these documents are made of.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::tenant_id::TenantId;
use crate::catalogue::TypePattern;
use crate::delivery::destination::endpoint_auth::{HeadersDoc, OAuth2};
use crate::delivery::destination::{
    AmqpConfig, ClientTls, EntityName, KafkaConfig, KafkaSasl, MqttConfig, Ordering,
    SignatureScheme, WebhookConfig, WebhookFormat,
};

/// Fields every kind's settings share.
pub const COMMON_FIELDS: [&str; 2] = ["types", "enabled"];

/// The settings fields of each kind, for telling "not this kind's" (409) from "no kind's"
/// (422) in a PATCH.
pub fn fields_of(kind: crate::delivery::destination::Kind) -> &'static [&'static str] {
    use crate::delivery::destination::Kind;
    match kind {
        Kind::Amqp => &["url", "exchange", "routing_key", "cloudevents", "tls"],
        Kind::Mqtt => &["url", "topic", "qos", "cloudevents", "tls"],
        Kind::Webhook => &[
            "url",
            "format",
            "entities",
            "custom_config",
            "signature",
            "tls",
            "oauth2",
            "headers",
            "max_in_flight",
            "rate_limit",
            "timeout",
            "ordering",
        ],
        Kind::Kafka => &[
            "bootstrap_servers",
            "topic",
            "client_id",
            "sasl",
            "tls",
            "cloudevents",
        ],
    }
}

/// An event type filter: `subject.action`, or `subject.*` for all of a subject.
pub struct TypeFilter;

impl JsonSchema for TypeFilter {
    fn schema_name() -> Cow<'static, str> {
        "TypeFilter".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An event type (`subject.action`) or all of a subject (`subject.*`); see GET /catalogue.",
            "type": "string",
            "enum": TypePattern::every_pattern()
        })
    }
}

/// Optional fields of a request body may be left out, not sent as null (the handlers read
/// them field by field): drops the `null` schemars adds for `Option`.
pub fn optional_not_null(schema: &mut Schema) {
    let Some(properties) = schema
        .get_mut("properties")
        .and_then(|properties| properties.as_object_mut())
    else {
        return;
    };
    for property in properties.values_mut() {
        if let Some(property) = property.as_object_mut() {
            strip_null(property);
        }
    }
}

/// Takes `null` out of a schema's `type` list or `anyOf` branches, repeatedly (an optional
/// field whose own schema allows null nests one in the other).
fn strip_null(schema: &mut serde_json::Map<String, serde_json::Value>) {
    loop {
        if let Some(types) = schema.get_mut("type").and_then(|t| t.as_array_mut()) {
            types.retain(|t| t != "null");
            if let [only] = types.as_slice() {
                let only = only.clone();
                schema.insert("type".into(), only);
            }
        }
        let Some(branches) = schema.get_mut("anyOf").and_then(|b| b.as_array_mut()) else {
            return;
        };
        branches.retain(|b| b.get("type").is_none_or(|t| t != "null"));
        let [only] = branches.as_slice() else {
            return;
        };
        let Some(only) = only.as_object().cloned() else {
            return;
        };
        schema.remove("anyOf");
        schema.extend(only);
    }
}

/// A new destination of one kind.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = optional_not_null)]
#[allow(dead_code)] // Documents the body; the handler reads it field by field.
pub struct NewDestination<Settings> {
    /// The tenant: required with a platform key (404 without); a client key may only name
    /// its own (403 otherwise).
    tenant: Option<TenantId>,
    /// Event types to deliver; all when absent or empty.
    #[schemars(length(max = 50))]
    types: Option<Vec<TypeFilter>>,
    /// Default true.
    enabled: Option<bool>,
    #[serde(flatten)]
    settings: Settings,
}

/// `POST /destinations`: a destination of one kind.
#[derive(JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[schemars(rename = "DestinationRequest")]
#[allow(dead_code)]
pub enum DestinationRequest {
    #[schemars(title = "NewAmqpDestination")]
    Amqp(NewDestination<AmqpConfig>),
    #[schemars(title = "NewMqttDestination")]
    Mqtt(NewDestination<MqttConfig>),
    #[schemars(
        title = "NewWebhookDestination",
        extend("examples" = [{
            "kind": "webhook",
            "url": "https://gateway.bank.example/eventgate",
            "tls": {
                "ca_pem": "-----BEGIN CERTIFICATE-----\n(the bank's CA)\n-----END CERTIFICATE-----\n",
                "client_cert_pem": "-----BEGIN CERTIFICATE-----\n(our client certificate)\n-----END CERTIFICATE-----\n",
                "client_key_pem": "-----BEGIN PRIVATE KEY-----\n(its key)\n-----END PRIVATE KEY-----\n"
            },
            "oauth2": {
                "token_url": "https://login.bank.example/oauth2/token",
                "client_id": "eventgate-acme",
                "client_secret": "(from the bank)",
                "scope": "events.write"
            },
            "signature": "ed25519",
            "ordering": "entity",
            "max_in_flight": 8,
            "timeout": 10
        }])
    )]
    Webhook(NewDestination<WebhookConfig>),
    #[schemars(title = "NewKafkaDestination")]
    Kafka(NewDestination<KafkaConfig>),
}

/// `PATCH /destinations/{id}`: any of the destination's settings; `kind` and `tenant`
/// cannot change. A field of another kind than the destination's is 409.
#[derive(JsonSchema)]
#[schemars(rename = "DestinationPatch")]
#[serde(untagged)]
#[allow(dead_code)]
pub enum DestinationPatch {
    Amqp(AmqpPatch),
    Mqtt(MqttPatch),
    Webhook(WebhookPatch),
    Kafka(KafkaPatch),
}

/// The patch of one kind's settings: every field optional.
macro_rules! patch {
    ($name:ident, { $($field:ident: $ty:ty),* $(,)? }) => {
        #[derive(JsonSchema)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        #[schemars(transform = optional_not_null)]
        pub struct $name {
            #[schemars(length(max = 50))]
            types: Option<Vec<TypeFilter>>,
            enabled: Option<bool>,
            $($field: Option<$ty>,)*
        }
    };
}

patch!(AmqpPatch, {
    url: AmqpUrl, exchange: Exchange, routing_key: RoutingKey, cloudevents: bool, tls: ClientTls,
});
patch!(MqttPatch, { url: MqttUrl, topic: Topic, qos: Qos, cloudevents: bool, tls: ClientTls });
patch!(WebhookPatch, {
    url: WebhookUrl, format: WebhookFormat, entities: Vec<EntityName>, custom_config: CustomConfig,
    signature: SignatureScheme, tls: ClientTls, oauth2: OAuth2, headers: HeadersDoc,
    max_in_flight: MaxInFlight, rate_limit: RateLimit, timeout: Timeout, ordering: Ordering,
});
patch!(KafkaPatch, {
    bootstrap_servers: BootstrapServers, topic: KafkaTopic, client_id: KafkaClientId,
    sasl: KafkaSasl, tls: ClientTls, cloudevents: bool,
});

/// A single field's schema, taken from the full settings type's schema (so a patch and a
/// create document the same rule).
macro_rules! field_schema {
    ($name:ident, $full:ty, $field:literal) => {
        pub struct $name;
        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                concat!(stringify!($name)).into()
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(generator: &mut SchemaGenerator) -> Schema {
                let full = generator.root_schema_for::<$full>();
                full.get("properties")
                    .and_then(|properties| properties.get($field))
                    .cloned()
                    .and_then(|field| Schema::try_from(field).ok())
                    .unwrap_or_else(|| json_schema!(false))
            }
        }
    };
}

field_schema!(AmqpUrl, AmqpConfig, "url");
field_schema!(Exchange, AmqpConfig, "exchange");
field_schema!(RoutingKey, AmqpConfig, "routing_key");
field_schema!(MqttUrl, MqttConfig, "url");
field_schema!(Topic, MqttConfig, "topic");
field_schema!(Qos, MqttConfig, "qos");
field_schema!(WebhookUrl, WebhookConfig, "url");
field_schema!(CustomConfig, WebhookConfig, "custom_config");
field_schema!(MaxInFlight, WebhookConfig, "max_in_flight");
field_schema!(RateLimit, WebhookConfig, "rate_limit");
field_schema!(Timeout, WebhookConfig, "timeout");
field_schema!(BootstrapServers, KafkaConfig, "bootstrap_servers");
field_schema!(KafkaTopic, KafkaConfig, "topic");
field_schema!(KafkaClientId, KafkaConfig, "client_id");
