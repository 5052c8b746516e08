//! AMQP 0-9-1 sink (lapin): persistent JSON messages on the destination's exchange, with
//! publisher confirms; `traceparent`/`tracestate` headers when the event carries a trace
//! context. A batch is published in order on one channel and counts as
//! delivered only when the broker has confirmed every message of it.
//!
//! Messages are published `mandatory`: a message no queue is bound to receive is returned
//! by the broker (and then acknowledged). Without it the broker would acknowledge and drop
//! it, and the position would move past an event nobody got. A return fails the batch, so
//! the destination's status says why and the events are sent again once a queue is bound.

use std::time::Duration;

use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use super::SinkError;
use super::destination::AmqpConfig;
use super::event::Sending;
use crate::egress::AddressPolicy;
use crate::telemetry::trace_context::TraceContext;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const PERSISTENT: u8 = 2;

/// `amqps://`: the destination's CA (trusted beside the public web roots, as lapin does) and its
/// client certificate for mutual TLS.
fn tls_config(config: &AmqpConfig) -> OwnedTLSConfig {
    let Some(tls) = &config.tls else {
        return OwnedTLSConfig::default();
    };
    OwnedTLSConfig {
        identity: tls.identity().map(|identity| OwnedIdentity::PKCS8 {
            pem: identity.certificate_pem.as_bytes().to_vec(),
            key: identity.key_pem.as_bytes().to_vec(),
        }),
        cert_chain: tls.ca_pem.clone(),
    }
}

pub struct AmqpSink {
    _connection: Connection,
    channel: Channel,
    config: AmqpConfig,
}

impl AmqpSink {
    /// Connects to the broker at an address `policy` allows. Plain `amqp://` connects to
    /// the very address that was checked; `amqps://` connects by name after the check,
    /// because its certificate is checked against the name.
    pub async fn connect(config: &AmqpConfig, policy: &AddressPolicy) -> Result<Self, SinkError> {
        let mut uri: AMQPUri = config
            .url
            .parse()
            .map_err(|_| SinkError::Config("the AMQP URL does not parse".into()))?;
        let addresses = policy
            .resolve(&uri.authority.host, uri.authority.port)
            .await?;
        if uri.scheme == AMQPScheme::AMQP
            && let Some(address) = addresses.first()
        {
            uri.authority.host = address.ip().to_string();
        }
        let properties =
            ConnectionProperties::default().with_connection_name(LongString::from("eventgate"));
        let runtime = lapin::runtime::default_runtime()?;
        let connecting =
            Connection::connect_uri_with_config(uri, properties, tls_config(config), runtime);
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| SinkError::Timeout("connecting to the AMQP broker"))??;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        // The exchange is the client's: check it exists, never create or change it.
        channel
            .exchange_declare(
                ShortString::from(config.exchange.as_str()),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(Self {
            _connection: connection,
            channel,
            config: config.clone(),
        })
    }

    fn properties(&self, sending: Sending<'_>) -> BasicProperties {
        let event = sending.event;
        let properties = BasicProperties::default()
            .with_content_type(ShortString::from("application/json"))
            .with_delivery_mode(PERSISTENT)
            .with_message_id(ShortString::from(event.id.as_str()))
            .with_type(ShortString::from(event.event_type.as_str()))
            .with_timestamp(event.created.timestamp().max(0) as u64);
        let mut headers = FieldTable::default();
        if self.config.cloudevents {
            // CloudEvents AMQP binding, binary mode: attributes as `cloudEvents:` headers.
            for (name, value) in event.cloudevents_attributes() {
                headers.insert(
                    ShortString::from(format!("cloudEvents:{name}")),
                    AMQPValue::LongString(LongString::from(value)),
                );
            }
        }
        for (name, value) in sending.trace.into_iter().flat_map(TraceContext::fields) {
            headers.insert(
                ShortString::from(name),
                AMQPValue::LongString(LongString::from(value)),
            );
        }
        if headers.inner().is_empty() {
            properties
        } else {
            properties.with_headers(headers)
        }
    }

    pub async fn publish(&mut self, events: &[Sending<'_>]) -> Result<(), SinkError> {
        let mut confirms = Vec::with_capacity(events.len());
        for &sending in events {
            let event = sending.event;
            let confirm = self
                .channel
                .basic_publish(
                    ShortString::from(self.config.exchange.as_str()),
                    ShortString::from(self.config.routing_key.as_str()),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    event.envelope.as_bytes(),
                    self.properties(sending),
                )
                .await?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            match confirm.await? {
                Confirmation::Ack(None) | Confirmation::NotRequested => {}
                Confirmation::Ack(Some(returned)) => {
                    return Err(SinkError::Refused(format!(
                        "the broker returned a message as unroutable ({} {}): no queue is bound to exchange '{}' with routing key '{}'",
                        returned.reply_code,
                        returned.reply_text,
                        self.config.exchange,
                        self.config.routing_key
                    )));
                }
                Confirmation::Nack(_) => {
                    return Err(SinkError::Refused("the broker nacked a message".into()));
                }
            }
        }
        Ok(())
    }
}
