//! Kafka sink (rskafka): one record per event on the destination's topic.
//!
//! - Key: the id of the entity the event is about, placed by Kafka's default partitioner,
//!   so one entity's records share a partition (in feed order) and a compacted topic keeps
//!   the latest per entity.
//! - Value: the envelope as stored; headers `event_id`, `event_type` and `content-type`,
//!   plus `ce_*` headers (CloudEvents Kafka binding, binary mode) when asked, and
//!   `traceparent`/`tracestate` when the event carries a trace context.
//! - Acknowledgement: every produce request asks for `acks=all`. A batch goes out as one
//!   request per partition, all awaited before the next batch, so a partition never has
//!   two requests in flight and a retry re-sends in the same order (rskafka has no
//!   idempotent producer; a retry can repeat records, and the event `id` tells them apart).
//!
//! Every broker connection, the ones the cluster's metadata names included, passes the
//! address policy through [`SocksEndpoint`].

pub mod partitioner;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::try_join_all;
use rskafka::BackoffConfig;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;

use super::SinkError;
use super::destination::{KafkaConfig, SaslMechanism};
use super::event::Sending;
use crate::egress::AddressPolicy;
use crate::egress::socks::SocksEndpoint;
use crate::telemetry::trace_context::TraceContext;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one batch may take, the client's own retries included.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(20);
const DEFAULT_CLIENT_ID: &str = "eventgate";

pub struct KafkaSink {
    /// One client per partition, in partition order.
    partitions: Vec<PartitionClient>,
    config: KafkaConfig,
    egress: SocksEndpoint,
}

impl KafkaSink {
    /// Connects to the cluster and looks the topic up (it must exist).
    pub async fn connect(config: &KafkaConfig, policy: &AddressPolicy) -> Result<Self, SinkError> {
        let egress = SocksEndpoint::start(policy.clone())
            .await
            .map_err(|err| SinkError::Config(format!("cannot open the egress endpoint: {err}")))?;
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, Self::open(config, &egress))
            .await
            .map_err(|_| SinkError::Timeout("connecting to the Kafka cluster"));
        match connected {
            Ok(Ok(partitions)) => Ok(Self {
                partitions,
                config: config.clone(),
                egress,
            }),
            Ok(Err(err)) | Err(err) => Err(egress.take_refusal().map_or(err, SinkError::Policy)),
        }
    }

    async fn open(
        config: &KafkaConfig,
        egress: &SocksEndpoint,
    ) -> Result<Vec<PartitionClient>, SinkError> {
        let mut builder = ClientBuilder::new(config.bootstrap_servers.clone())
            .client_id(config.client_id.as_deref().unwrap_or(DEFAULT_CLIENT_ID))
            .socks5_proxy(egress.address())
            // The relay retries with its own backoff and shows the error meanwhile; the
            // client's retries must end well before a batch's deadline.
            .backoff_config(BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
                deadline: Some(Duration::from_secs(10)),
            });
        if let Some(tls) = &config.tls {
            let tls = tls
                .client_config()
                .map_err(|err| SinkError::Config(format!("TLS settings: {err}")))?;
            builder = builder.tls_config(std::sync::Arc::new(tls));
        }
        if let Some(sasl) = &config.sasl {
            let credentials = Credentials::new(sasl.username.clone(), sasl.password.clone());
            builder = builder.sasl_config(match sasl.mechanism {
                SaslMechanism::Plain => SaslConfig::Plain(credentials),
                SaslMechanism::ScramSha256 => SaslConfig::ScramSha256(credentials),
                SaslMechanism::ScramSha512 => SaslConfig::ScramSha512(credentials),
            });
        }
        let client = builder.build().await?;
        let topic = client
            .list_topics()
            .await?
            .into_iter()
            .find(|topic| topic.name == config.topic)
            .ok_or_else(|| {
                SinkError::Refused(format!(
                    "topic '{}' does not exist (eventgate never creates it)",
                    config.topic
                ))
            })?;
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        // BTreeSet: ascending, so index i is partition i of a topic numbered 0..n.
        for partition in topic.partitions {
            partitions.push(
                client
                    .partition_client(&config.topic, partition, UnknownTopicHandling::Error)
                    .await?,
            );
        }
        if partitions.is_empty() {
            return Err(SinkError::Refused(format!(
                "topic '{}' has no partitions",
                config.topic
            )));
        }
        Ok(partitions)
    }

    fn record(&self, sending: Sending<'_>) -> Record {
        let event = sending.event;
        let mut headers = BTreeMap::from([
            ("event_id".to_owned(), event.id.clone().into_bytes()),
            (
                "event_type".to_owned(),
                event.event_type.clone().into_bytes(),
            ),
            ("content-type".to_owned(), b"application/json".to_vec()),
        ]);
        if self.config.cloudevents {
            // CloudEvents Kafka binding, binary mode: `ce_` headers, and the content type
            // in `content-type` (set above).
            headers.extend(
                event
                    .cloudevents_attributes()
                    .into_iter()
                    .filter(|(name, _)| *name != "datacontenttype")
                    .map(|(name, value)| (format!("ce_{name}"), value.into_bytes())),
            );
        }
        headers.extend(
            sending
                .trace
                .into_iter()
                .flat_map(TraceContext::fields)
                .map(|(name, value)| (name.to_owned(), value.as_bytes().to_vec())),
        );
        Record {
            key: Some(event.entity_id.clone().into_bytes()),
            value: Some(event.envelope.clone().into_bytes()),
            headers,
            timestamp: event.created,
        }
    }

    /// Publishes `events`; `Ok` once every partition's leader acknowledged its records
    /// with `acks=all`.
    pub async fn publish(&mut self, events: &[Sending<'_>]) -> Result<(), SinkError> {
        let mut by_partition: Vec<Vec<Record>> = vec![Vec::new(); self.partitions.len()];
        for &sending in events {
            let partition = partitioner::partition_for(
                sending.event.entity_id.as_bytes(),
                self.partitions.len(),
            );
            by_partition[partition].push(self.record(sending));
        }
        let requests = self
            .partitions
            .iter()
            .zip(by_partition)
            .filter(|(_, records)| !records.is_empty())
            .map(|(client, records)| client.produce(records, Compression::NoCompression));
        let produced = tokio::time::timeout(PUBLISH_TIMEOUT, try_join_all(requests))
            .await
            .map_err(|_| SinkError::Timeout("waiting for Kafka acknowledgements"));
        match produced {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(self
                .egress
                .take_refusal()
                .map_or(err.into(), SinkError::Policy)),
            Err(err) => Err(self.egress.take_refusal().map_or(err, SinkError::Policy)),
        }
    }
}
