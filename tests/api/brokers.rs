//! Real broker peers for delivery tests: an AMQP queue bound to a fresh exchange and an
//! MQTT subscriber.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const WAIT: Duration = Duration::from_secs(90);

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

pub struct AmqpQueue {
    _connection: Connection,
    channel: Channel,
    queue: String,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub body: String,
    pub properties: BasicProperties,
}

impl Received {
    /// The `id` of the envelope in the body.
    pub fn event_id(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Declares `exchange` (topic, as `AmqpQueue::bind_new` does) with no queue bound to it.
pub async fn declare_unbound_exchange(exchange: &str) {
    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (scripts/test.sh starts it)");
    let channel = connection.create_channel().await.unwrap();
    declare_exchange(&channel, exchange, false).await;
    let _ = connection.close(0, ShortString::from("done")).await;
}

/// A topic exchange; a durable one survives a broker restart, another goes with its last
/// binding.
async fn declare_exchange(channel: &Channel, exchange: &str, durable: bool) {
    channel
        .exchange_declare(
            ShortString::from(exchange),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable,
                auto_delete: !durable,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
}

impl AmqpQueue {
    /// Declares `exchange` (topic) and an exclusive queue bound to all of it.
    pub async fn bind_new(exchange: &str) -> Self {
        Self::declare(AMQP_URL, exchange, false).await
    }

    /// Declares a durable `exchange` (topic) and a durable queue of the same name bound to
    /// all of it: both, and the persistent messages in the queue, survive a broker restart.
    /// Read it after a restart with [`AmqpQueue::reopen`].
    pub async fn bind_durable(url: &str, exchange: &str) -> Self {
        Self::declare(url, exchange, true).await
    }

    /// A new connection to the durable queue `bind_durable` made for `exchange`.
    pub async fn reopen(url: &str, exchange: &str) -> Self {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .expect("the broker accepts connections");
        let channel = connection.create_channel().await.unwrap();
        Self {
            _connection: connection,
            channel,
            queue: exchange.to_owned(),
        }
    }

    async fn declare(url: &str, exchange: &str, durable: bool) -> Self {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .expect("RabbitMQ on 127.0.0.1:5672 (scripts/test.sh starts it)");
        let channel = connection.create_channel().await.unwrap();
        declare_exchange(&channel, exchange, durable).await;
        let (name, options) = if durable {
            let options = QueueDeclareOptions {
                durable: true,
                ..Default::default()
            };
            (exchange, options)
        } else {
            let options = QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            };
            ("", options)
        };
        let queue = channel
            .queue_declare(ShortString::from(name), options, FieldTable::default())
            .await
            .unwrap();
        let queue = queue.name().to_string();
        channel
            .queue_bind(
                ShortString::from(queue.as_str()),
                ShortString::from(exchange),
                ShortString::from("#"),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self {
            _connection: connection,
            channel,
            queue,
        }
    }

    async fn get(&self) -> Option<Received> {
        let message = self
            .channel
            .basic_get(
                ShortString::from(self.queue.as_str()),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()?;
        Some(Received {
            body: String::from_utf8(message.delivery.data.clone()).unwrap(),
            properties: message.delivery.properties.clone(),
        })
    }

    /// Takes messages until `done` says the collection is complete (bounded in time).
    pub async fn take_until(&self, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + WAIT;
        let mut received = Vec::new();
        while !done(&received) {
            assert!(
                Instant::now() < deadline,
                "timed out with {} messages",
                received.len()
            );
            match self.get().await {
                Some(message) => received.push(message),
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        received
    }

    /// Takes messages until every id in `expected` has arrived at least once.
    pub async fn take_every(&self, expected: &HashSet<String>) -> Vec<Received> {
        self.take_until(|messages| {
            let ids: HashSet<String> = messages.iter().map(Received::event_id).collect();
            expected.iter().all(|id| ids.contains(id))
        })
        .await
    }

    pub async fn take(&self, n: usize) -> Vec<Received> {
        self.take_until(|r| r.len() >= n).await
    }

    /// Whatever else is in the queue right now.
    pub async fn rest(&self) -> Vec<Received> {
        let mut rest = Vec::new();
        while let Some(message) = self.get().await {
            rest.push(message);
        }
        rest
    }
}

/// A message an MQTT subscriber received: payload and MQTT 5 user properties.
pub type MqttMessage = (String, Vec<(String, String)>);

/// Subscribes to `topic` (QoS 1) and returns once the broker confirmed the subscription.
pub async fn mqtt_subscribe(topic: &str) -> (mpsc::UnboundedReceiver<MqttMessage>, JoinHandle<()>) {
    mqtt_subscribe_at(1883, topic).await
}

/// [`mqtt_subscribe`] on the broker at 127.0.0.1:`port`.
pub async fn mqtt_subscribe_at(
    port: u16,
    topic: &str,
) -> (mpsc::UnboundedReceiver<MqttMessage>, JoinHandle<()>) {
    let mut options = MqttOptions::new(unique("sub"), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let _client = client;
        let mut ready = Some(ready_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let properties = publish
                        .properties
                        .map(|p| p.user_properties)
                        .unwrap_or_default();
                    let body = String::from_utf8(publish.payload.to_vec()).unwrap();
                    let _ = tx.send((body, properties));
                }
                Ok(_) => {}
                Err(err) => {
                    panic!("MQTT subscriber failed (is Mosquitto on 127.0.0.1:1883?): {err}")
                }
            }
        }
    });
    tokio::time::timeout(WAIT, ready_rx)
        .await
        .expect("SUBACK")
        .unwrap();
    (rx, task)
}

pub async fn mqtt_take(
    rx: &mut mpsc::UnboundedReceiver<MqttMessage>,
    n: usize,
) -> Vec<MqttMessage> {
    let mut received = Vec::new();
    while received.len() < n {
        let message = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("MQTT message in time")
            .unwrap();
        received.push(message);
    }
    received
}
