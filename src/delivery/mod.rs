//! Pushing each tenant's outbox to its destinations (AMQP exchange, MQTT topic, Kafka
//! topic, webhook).
//!
//! Delivery is at-least-once, in feed order per destination: a driver reads the events
//! after the destination's confirmed position with the feed's gap-free reader, publishes
//! them, and advances the position only after the broker confirms the whole batch. A crash
//! re-sends, never drops; the event `id` is the consumer's de-duplication key. Each
//! destination is driven by one process at a time (see [`relay`]).

pub mod amqp;
pub mod backoff;
pub mod batch;
pub mod changes;
pub mod destination;
pub mod event;
pub mod health;
pub mod kafka;
pub mod mqtt;
pub mod relay;
pub mod webhook;

use uuid::Uuid;

use destination::SinkConfig;
use event::{OutboundEvent, Sending};

use crate::error::ApiError;
use crate::store::position::Position;
use crate::telemetry::trace_context::{DeliveryTrace, Hop};
use webhook::WebhookError;

/// Why a driver's step failed; shown to the client as the destination's `last_error`, so
/// it never carries URLs or credentials.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored destination has unknown kind '{0}'")]
    UnknownKind(String),
    #[error("stored settings are invalid: {0}")]
    Settings(#[source] ApiError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    #[error(
        "events after cursor {} through cursor {} were purged before this destination received them; \
         replay from the oldest kept event (POST /destinations/{{id}}/replay {{\"from\": \"oldest\"}}) \
         or from a cursor or time",
        .after.encode(), .through.encode()
    )]
    Gap { after: Position, through: Position },
}

/// Why a batch was not delivered. Messages never contain broker URLs or credentials.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("AMQP: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("MQTT client: {0}")]
    MqttClient(#[from] rumqttc::v5::ClientError),
    #[error("MQTT connection: {0}")]
    MqttConnection(#[from] rumqttc::v5::ConnectionError),
    #[error("Kafka: {0}")]
    Kafka(#[from] rskafka::client::error::Error),
    #[error("cannot reach the broker: {0}")]
    Unreachable(#[source] std::io::Error),
    #[error("timed out {0}")]
    Timeout(&'static str),
    #[error("refused by the broker: {0}")]
    Refused(String),
    #[error("invalid settings: {0}")]
    Config(String),
    #[error(transparent)]
    Policy(#[from] crate::egress::PolicyError),
}

/// A connected sink of one destination.
/// Both boxed: the clients are large and a sink lives as long as its connection.
pub enum Sink {
    Amqp(Box<amqp::AmqpSink>),
    Mqtt(Box<mqtt::MqttSink>),
    Kafka(Box<kafka::KafkaSink>),
}

impl Sink {
    /// Connects to the destination's broker, at an address `policy` allows.
    pub async fn connect(
        config: &SinkConfig,
        destination: Uuid,
        policy: &crate::egress::AddressPolicy,
    ) -> Result<Self, SinkError> {
        match config {
            SinkConfig::Amqp(c) => amqp::AmqpSink::connect(c, policy)
                .await
                .map(|sink| Sink::Amqp(Box::new(sink))),
            SinkConfig::Mqtt(c) => {
                mqtt::MqttSink::connect(c, &format!("eventgate-{destination}"), policy)
                    .await
                    .map(|sink| Sink::Mqtt(Box::new(sink)))
            }
            SinkConfig::Kafka(c) => kafka::KafkaSink::connect(c, policy)
                .await
                .map(|sink| Sink::Kafka(Box::new(sink))),
            SinkConfig::Webhook(_) => Err(SinkError::Config(
                "webhooks are delivered through their queue, not a bus sink".into(),
            )),
        }
    }

    /// Publishes `events` of `destination` in order; `Ok` only once the broker confirmed
    /// all of them. Each event is one traced attempt, carrying its trace context on.
    pub async fn publish(
        &mut self,
        destination: Uuid,
        events: &[OutboundEvent],
    ) -> Result<(), SinkError> {
        let hop = match self {
            Sink::Amqp(_) => Hop::Amqp,
            Sink::Mqtt(_) => Hop::Mqtt,
            Sink::Kafka(_) => Hop::Kafka,
        };
        let traces: Vec<DeliveryTrace<'_>> = events
            .iter()
            .map(|event| DeliveryTrace::start(hop, destination, &event.id, event.trace.as_ref()))
            .collect();
        let sending: Vec<Sending<'_>> = events
            .iter()
            .zip(&traces)
            .map(|(event, trace)| Sending {
                event,
                trace: trace.outgoing(),
            })
            .collect();
        let published = match self {
            Sink::Amqp(sink) => sink.publish(&sending).await,
            Sink::Mqtt(sink) => sink.publish(&sending).await,
            Sink::Kafka(sink) => sink.publish(&sending).await,
        };
        drop(sending);
        if crate::telemetry::exporting() {
            let outcome = match &published {
                Ok(()) => "delivered".to_owned(),
                Err(err) => err.to_string(),
            };
            for trace in traces {
                trace.finish(published.is_ok(), &outcome);
            }
        }
        published
    }
}
