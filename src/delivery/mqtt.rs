//! MQTT 5 sink (rumqttc): the envelope on the destination's topic, not retained, at the
//! destination's QoS, with the event id and type (and `traceparent`/`tracestate` when the
//! event carries a trace context) as user properties. A batch counts as
//! delivered when every message is acknowledged (PUBACK for QoS 1, PUBCOMP for QoS 2;
//! written to the socket for QoS 0).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode, Packet, PubAckReason, PubCompReason, PublishProperties,
};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use url::Url;

use super::SinkError;
use super::destination::MqttConfig;
use super::event::Sending;
use crate::egress::AddressPolicy;
use crate::egress::forward::ForwardEndpoint;
use crate::telemetry::trace_context::TraceContext;

const TIMEOUT: Duration = Duration::from_secs(15);
/// Requests queued towards the event loop; larger than any batch.
const QUEUE: usize = 512;

pub struct MqttSink {
    client: AsyncClient,
    eventloop: EventLoop,
    config: MqttConfig,
    /// Kept for the sink's life: the client's connections (and reconnections) go through it.
    _forward: Option<ForwardEndpoint>,
}

impl MqttSink {
    /// Connects to the broker at an address `policy` allows. Plain `mqtt://` connects to
    /// the very address that was checked; `mqtts://` connects by name after the check,
    /// because its certificate is checked against the name.
    pub async fn connect(
        config: &MqttConfig,
        client_id: &str,
        policy: &AddressPolicy,
    ) -> Result<Self, SinkError> {
        let url = Url::parse(&config.url).map_err(|e| SinkError::Config(e.to_string()))?;
        let host = url.host_str().unwrap_or_default();
        let secure = url.scheme() == "mqtts";
        let port = url.port().unwrap_or(if secure { 8883 } else { 1883 });
        let addresses = policy.resolve(host, port).await?;
        let address = addresses
            .first()
            .ok_or_else(|| SinkError::Config("the MQTT host has no address".into()))?;
        // Plain connections go through a loopback endpoint that acknowledges the broker's
        // packets at once: a broker with Nagle's algorithm on (Mosquitto's default) holds
        // each PUBACK after the first until this side acknowledges the one before, which
        // the kernel delays by up to 40 ms. `mqtts://` connects directly: its certificate
        // is checked against the host name the client connects to.
        let mut forward = None;
        let mut options = if secure {
            let tls = match &config.tls {
                Some(tls) => tls.client_config(),
                None => crate::tls::client_config(&crate::tls::Trust::System, None),
            }
            .map_err(|err| SinkError::Config(format!("TLS settings: {err}")))?;
            let mut options = MqttOptions::new(client_id, host, port);
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(tls),
            )));
            options
        } else {
            let endpoint = ForwardEndpoint::start(*address).await.map_err(|err| {
                SinkError::Config(format!("cannot open the egress endpoint: {err}"))
            })?;
            let local = endpoint.address();
            forward = Some(endpoint);
            MqttOptions::new(client_id, local.ip().to_string(), local.port())
        };
        options.set_keep_alive(Duration::from_secs(30));
        options.set_clean_start(true);
        if !url.username().is_empty() {
            options.set_credentials(url.username(), url.password().unwrap_or_default());
        }
        let (client, mut eventloop) = AsyncClient::new(options, QUEUE);
        let connected = tokio::time::timeout(TIMEOUT, async {
            loop {
                match eventloop.poll().await? {
                    Event::Incoming(Packet::ConnAck(ack)) => {
                        return match ack.code {
                            ConnectReturnCode::Success => Ok(()),
                            code => Err(SinkError::Refused(format!("CONNACK {code:?}"))),
                        };
                    }
                    _ => continue,
                }
            }
        })
        .await
        .unwrap_or(Err(SinkError::Timeout("connecting to the MQTT broker")));
        if let Err(err) = connected {
            // Through the loopback endpoint the client only sees its connection closed;
            // the endpoint knows why (refused, unreachable).
            let failure = forward.as_ref().and_then(ForwardEndpoint::take_failure);
            return Err(failure.map_or(err, SinkError::Unreachable));
        }
        Ok(Self {
            client,
            eventloop,
            config: config.clone(),
            _forward: forward,
        })
    }

    fn qos(&self) -> QoS {
        match self.config.qos {
            0 => QoS::AtMostOnce,
            2 => QoS::ExactlyOnce,
            _ => QoS::AtLeastOnce,
        }
    }

    fn properties(&self, sending: Sending<'_>) -> PublishProperties {
        let event = sending.event;
        let mut user_properties = vec![
            ("event_id".to_owned(), event.id.clone()),
            ("event_type".to_owned(), event.event_type.clone()),
        ];
        if self.config.cloudevents {
            // CloudEvents MQTT binding, binary mode: attributes as user properties.
            user_properties.extend(
                event
                    .cloudevents_attributes()
                    .into_iter()
                    .filter(|(name, _)| *name != "datacontenttype")
                    .map(|(name, value)| (name.to_owned(), value)),
            );
        }
        user_properties.extend(
            sending
                .trace
                .into_iter()
                .flat_map(TraceContext::fields)
                .map(|(name, value)| (name.to_owned(), value.to_owned())),
        );
        PublishProperties {
            content_type: Some("application/json".into()),
            payload_format_indicator: Some(1),
            user_properties,
            ..PublishProperties::default()
        }
    }

    pub async fn publish(&mut self, events: &[Sending<'_>]) -> Result<(), SinkError> {
        let qos = self.qos();
        for &sending in events {
            self.client
                .publish_with_properties(
                    self.config.topic.as_str(),
                    qos,
                    false,
                    sending.event.envelope.clone().into_bytes(),
                    self.properties(sending),
                )
                .await?;
        }
        tokio::time::timeout(TIMEOUT, self.await_acks(events.len(), qos))
            .await
            .map_err(|_| SinkError::Timeout("waiting for MQTT acknowledgements"))?
    }

    async fn await_acks(&mut self, expected: usize, qos: QoS) -> Result<(), SinkError> {
        let mut sent = 0;
        let mut done = 0;
        let mut unacked = HashSet::new();
        while done < expected {
            match self.eventloop.poll().await? {
                Event::Outgoing(Outgoing::Publish(pkid)) => {
                    sent += 1;
                    if qos == QoS::AtMostOnce {
                        done += 1;
                    } else {
                        unacked.insert(pkid);
                    }
                }
                Event::Incoming(Packet::PubAck(ack)) if unacked.remove(&ack.pkid) => {
                    if !matches!(
                        ack.reason,
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                    ) {
                        return Err(SinkError::Refused(format!("PUBACK {:?}", ack.reason)));
                    }
                    done += 1;
                }
                Event::Incoming(Packet::PubComp(comp)) if unacked.remove(&comp.pkid) => {
                    if comp.reason != PubCompReason::Success {
                        return Err(SinkError::Refused(format!("PUBCOMP {:?}", comp.reason)));
                    }
                    done += 1;
                }
                Event::Incoming(Packet::Disconnect(disconnect)) => {
                    return Err(SinkError::Refused(format!(
                        "DISCONNECT {:?}",
                        disconnect.reason_code
                    )));
                }
                _ => {}
            }
            debug_assert!(sent >= done);
        }
        Ok(())
    }
}
