//! Kafka scenarios: a consumer counting the records of a topic (with each record's
//! commit-to-receipt latency), and the bare-producer ceiling the relay is measured
//! against: the same client (rskafka) through the same kind of egress endpoint,
//! `acks=all`, record, key spread and batching as eventgate's sink.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eventgate::egress::AddressPolicy;
use eventgate::egress::socks::SocksEndpoint;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;

pub const PARTITIONS: i32 = 3;
/// The relay's batch: 256 events, one produce request per partition.
const BATCH: u64 = 256;

pub fn address() -> String {
    std::env::var("EVENTGATE_BENCH_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

/// Every client here connects through an egress endpoint like the relay's (allowing any
/// address): rskafka's own sockets keep Nagle's algorithm on and write a request in two
/// parts, so without it each fetch and produce request here would wait up to 40 ms for a
/// delayed acknowledgement that the relay's requests no longer wait for, and the consumer
/// would add that to every latency it measures (`eventgate::egress::socks`).
async fn client() -> Client {
    static EGRESS: tokio::sync::OnceCell<SocksEndpoint> = tokio::sync::OnceCell::const_new();
    let egress = EGRESS
        .get_or_init(|| async {
            SocksEndpoint::start(AddressPolicy::allow_all())
                .await
                .expect("an egress endpoint")
        })
        .await;
    ClientBuilder::new(vec![address()])
        .socks5_proxy(egress.address())
        .build()
        .await
        .expect("a Kafka broker (scripts/bench.sh starts tansu)")
}

async fn partitions(client: &Client, topic: &str) -> Vec<PartitionClient> {
    let mut all = Vec::new();
    for partition in 0..PARTITIONS {
        all.push(
            client
                .partition_client(topic, partition, UnknownTopicHandling::Retry)
                .await
                .expect("partition"),
        );
    }
    all
}

pub async fn create_topic(topic: &str) {
    client()
        .await
        .controller_client()
        .expect("controller")
        .create_topic(topic, PARTITIONS, 1, 5_000)
        .await
        .expect("topic");
}

/// The consumer's fetch wait. Short, because tansu 0.6 answers a fetch only when the whole
/// wait is over, even with records at hand (`tansu-storage`, `service/fetch.rs`: it sleeps
/// the remaining wait after every read); with 50 ms, the consumer itself added 0-50 ms to
/// each latency it measured. Apache Kafka answers once `min_bytes` (1 here) are there.
const FETCH_WAIT_MS: i32 = 2;

/// Creates `topic` and counts its records as they arrive, with each one's latency from
/// the envelope's `created` to its receipt.
pub async fn counter(topic: &str) -> (Arc<AtomicU64>, super::samples::Samples) {
    create_topic(topic).await;
    let client = client().await;
    let count = Arc::new(AtomicU64::new(0));
    let latencies = super::samples::Samples::default();
    for partition in partitions(&client, topic).await {
        let (count, latencies) = (count.clone(), latencies.clone());
        tokio::spawn(async move {
            let mut offset = 0;
            loop {
                let Ok((records, _)) = partition
                    .fetch_records(offset, 1..8_000_000, FETCH_WAIT_MS)
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let now = chrono::Utc::now();
                let mut seen = Vec::with_capacity(records.len());
                for record in &records {
                    offset = record.offset + 1;
                    let created = record
                        .record
                        .value
                        .as_deref()
                        .and_then(|value| serde_json::from_slice::<serde_json::Value>(value).ok())
                        .and_then(|envelope| envelope["created"].as_str().map(str::to_owned))
                        .and_then(|created| chrono::DateTime::parse_from_rfc3339(&created).ok());
                    if let Some(created) = created {
                        let latency = (now - created.to_utc()).to_std().unwrap_or_default();
                        seen.push(super::samples::Sample {
                            received: now,
                            latency,
                        });
                    }
                }
                count.fetch_add(records.len() as u64, Ordering::Relaxed);
                latencies.lock().await.extend(seen);
            }
        });
    }
    (count, latencies)
}

/// Produces `events` records like eventgate's from one task, in batches of 256 split by
/// key onto the partitions, every request awaited with `acks=all` before the next batch.
pub async fn ceiling(events: u64) -> f64 {
    let topic = format!("bench-ceiling-{}", uuid::Uuid::now_v7().simple());
    create_topic(&topic).await;
    let client = client().await;
    let partitions = partitions(&client, &topic).await;
    let started = Instant::now();
    let mut produced = 0;
    while produced < events {
        let n = (events - produced).min(BATCH);
        let mut by_partition: Vec<Vec<Record>> = vec![Vec::new(); partitions.len()];
        for i in produced..produced + n {
            let key = format!("P{i}");
            let id = uuid::Uuid::now_v7().to_string();
            let value = format!(
                r#"{{"id":"{id}","created":"2026-11-23T01:00:00.000000Z","version":"1.0.0","subject":"portfolios","action":"status-update","data":{{"id":"{key}","external_id":"an-external-id","value":"ACTIVE"}}}}"#
            );
            let partition = eventgate::delivery::kafka::partitioner::partition_for(
                key.as_bytes(),
                partitions.len(),
            );
            by_partition[partition].push(Record {
                key: Some(key.into_bytes()),
                value: Some(value.into_bytes()),
                headers: BTreeMap::from([
                    ("event_id".to_owned(), id.into_bytes()),
                    (
                        "event_type".to_owned(),
                        b"portfolios.status-update".to_vec(),
                    ),
                    ("content-type".to_owned(), b"application/json".to_vec()),
                ]),
                timestamp: chrono::Utc::now(),
            });
        }
        let requests = partitions
            .iter()
            .zip(by_partition)
            .filter(|(_, records)| !records.is_empty())
            .map(|(client, records)| client.produce(records, Compression::NoCompression));
        futures::future::try_join_all(requests)
            .await
            .expect("produce");
        produced += n;
    }
    events as f64 / started.elapsed().as_secs_f64()
}
