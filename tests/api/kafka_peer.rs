//! A real Kafka-protocol broker for delivery tests: the shared one `scripts/test.sh`
//! starts (tansu on 127.0.0.1:19092, or `EVENTGATE_TEST_KAFKA`), private brokers for
//! outage tests, and a reader that takes every record of a topic back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rskafka::client::partition::UnknownTopicHandling;
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(90);

/// The shared broker, `host:port`.
pub fn kafka_address() -> String {
    std::env::var("EVENTGATE_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".to_owned())
}

pub async fn client(address: &str) -> Client {
    // rskafka retries a broker that does not answer for ever: bound it, and say why.
    let connecting = ClientBuilder::new(vec![address.to_owned()]).build();
    tokio::time::timeout(std::time::Duration::from_secs(30), connecting)
        .await
        .unwrap_or_else(|_| {
            panic!("no Kafka broker answered on {address} in 30 s (scripts/test.sh starts tansu)")
        })
        .unwrap_or_else(|err| {
            panic!("a Kafka broker on {address} (scripts/test.sh starts tansu): {err}")
        })
}

/// Creates `topic` with `partitions` partitions.
pub async fn create_topic(address: &str, topic: &str, partitions: i32) {
    client(address)
        .await
        .controller_client()
        .unwrap()
        .create_topic(topic, partitions, 1, 5_000)
        .await
        .unwrap();
}

/// One record as read back, with where it was.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub record: Record,
}

impl Consumed {
    pub fn value(&self) -> &str {
        std::str::from_utf8(self.record.value.as_deref().unwrap_or_default()).unwrap()
    }

    pub fn key(&self) -> &str {
        std::str::from_utf8(self.record.key.as_deref().unwrap_or_default()).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.record
            .headers
            .get(name)
            .map(|value| std::str::from_utf8(value).unwrap())
    }

    pub fn event_id(&self) -> String {
        serde_json::from_str::<serde_json::Value>(self.value()).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Every record of `topic` on `address` so far: waits until there are at least `count`,
/// then returns them by partition and offset.
pub async fn read_at_least(address: &str, topic: &str, count: usize) -> Vec<Consumed> {
    let client = client(address).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let all = read_all(&client, topic).await;
        if all.len() >= count {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} records arrived on {topic}",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn read_all(client: &Client, topic: &str) -> Vec<Consumed> {
    let partitions = client
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == topic)
        .map(|t| t.partitions)
        .unwrap_or_default();
    let mut all = Vec::new();
    for partition in partitions {
        let reader = client
            .partition_client(topic, partition, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        let mut offset = 0;
        loop {
            let (records, high_watermark) = reader
                .fetch_records(offset, 1..1_000_000, 100)
                .await
                .unwrap();
            for record in records {
                offset = record.offset + 1;
                all.push(Consumed {
                    partition,
                    offset: record.offset,
                    record: record.record,
                });
            }
            if offset >= high_watermark {
                break;
            }
        }
    }
    all
}

/// Records grouped by partition, each in offset order.
pub fn by_partition(records: &[Consumed]) -> BTreeMap<i32, Vec<&Consumed>> {
    let mut grouped: BTreeMap<i32, Vec<&Consumed>> = BTreeMap::new();
    for record in records {
        grouped.entry(record.partition).or_default().push(record);
    }
    for records in grouped.values_mut() {
        records.sort_by_key(|r| r.offset);
    }
    grouped
}

/// A private in-memory tansu broker on `port`, advertising `advertised` (`host:port`);
/// killed when dropped. Its records live as long as the process.
pub struct PrivateBroker {
    child: Option<Child>,
    listen: String,
    port: u16,
    advertised: String,
}

impl PrivateBroker {
    /// Listens on 127.0.0.1.
    pub async fn start(port: u16, advertised: &str) -> Self {
        Self::start_on("127.0.0.1", port, advertised).await
    }

    /// Listens on `host` (a loopback address).
    pub async fn start_on(host: &str, port: u16, advertised: &str) -> Self {
        let mut broker = Self {
            child: None,
            listen: host.to_owned(),
            port,
            advertised: advertised.to_owned(),
        };
        broker.restart().await;
        broker
    }

    pub fn address(&self) -> String {
        format!("{}:{}", self.listen, self.port)
    }

    /// Stops the broker (its in-memory records go with it).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        let child = Command::new(std::env::var("TANSU").unwrap_or_else(|_| "tansu".into()))
            .args([
                "broker",
                "--listener-url",
                &format!("tcp://{}:{}", self.listen, self.port),
                "--advertised-listener-url",
                &format!("tcp://{}", self.advertised),
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("tansu on PATH (scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while tokio::net::TcpStream::connect((self.listen.as_str(), self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "tansu never listened");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
