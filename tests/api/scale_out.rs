//! Scale-out (fault suite, issue 9): three real eventgate processes on one database.
//! Clients spread deposits round-robin and retry a failed one on the next process with the
//! same Idempotency-Key; the process driving the AMQP destination is SIGKILLed mid-load.
//! Afterwards: every acknowledged deposit exists once with one funding event, every process
//! serves the same feed, one process drove the destination at any moment, another took it
//! over, and the queue received every event. Bounded: 120 deposits, one kill.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::process::Child;
use tokio::sync::Mutex;

use crate::brokers::{AMQP_URL, AmqpQueue, unique};
use crate::helpers::{FaultSetup, free_port, spawn_eventgate, wait_ready};

const REPLICAS: usize = 3;
const CLIENTS: usize = 6;
const DEPOSITS_PER_CLIENT: usize = 20;

struct Replica {
    name: String,
    base: String,
    port: u16,
    process: Option<Child>,
}

fn spawn(url: &str, name: &str, port: u16) -> Child {
    // application_name tells the replicas apart in pg_stat_activity.
    let url = format!("{url}?application_name={name}");
    spawn_eventgate(&url, port, &[("EVENTGATE_RATE_LIMIT_PER_SEC", "0")])
}

/// The application names of the sessions holding `destination`'s relay lock.
async fn drivers(pool: &PgPool, destination: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND ((l.classid::bigint << 32) | l.objid::bigint)
               = hashtextextended('eventgate/destination/' || $1, 0)",
    )
    .bind(destination)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn wait_for_driver(pool: &PgPool, destination: &str, not: Option<&str>) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let [name] = drivers(pool, destination).await.as_slice()
            && Some(name.as_str()) != not
        {
            return name.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no replica took {destination} over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Posts one deposit, starting at replica `first` and moving to the next on any failure,
/// always with the same key; returns the deposit id once one answers 201.
async fn deposit(
    http: &reqwest::Client,
    bases: &[String],
    first: usize,
    key: &str,
    idem: &str,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut attempt = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "deposit {idem} never acknowledged"
        );
        let base = &bases[(first + attempt) % bases.len()];
        let sent = http
            .post(format!("{base}/events/deposit/"))
            .bearer_auth(key)
            .header("idempotency-key", idem)
            .json(&json!({"data": {"amount": "1.00", "currency": "USD", "portfolio": "P1"}}))
            .send()
            .await;
        if let Ok(response) = sent
            && response.status() == StatusCode::CREATED
        {
            let body: Value = response.json().await.unwrap();
            return body["id"].as_str().unwrap().to_owned();
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn feed_ids(http: &reqwest::Client, base: &str, key: &str) -> Vec<String> {
    let page: Value = http
        .get(format!("{base}/events/?limit=1000"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["has_more"], false);
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect()
}

#[sqlx::test]
async fn three_replicas_keep_every_invariant_when_the_driver_dies(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let FaultSetup {
        url,
        pool,
        server: setup,
        key,
    } = FaultSetup::start(options, connect).await;
    let http = setup.http.clone();

    let mut replicas: Vec<Replica> = (0..REPLICAS)
        .map(|i| {
            let port = free_port();
            let name = format!("replica-{i}");
            Replica {
                process: Some(spawn(&url, &name, port)),
                base: format!("http://127.0.0.1:{port}"),
                name,
                port,
            }
        })
        .collect();
    for replica in &replicas {
        wait_ready(&http, &replica.base).await;
    }
    let bases: Arc<Vec<String>> = Arc::new(replicas.iter().map(|r| r.base.clone()).collect());

    // A new destination delivers what is published after it; these came before.
    setup.settle().await;
    let earlier: BTreeSet<String> = feed_ids(&http, &bases[0], &key).await.into_iter().collect();
    let exchange = unique("scale-out");
    let queue = AmqpQueue::bind_new(&exchange).await;
    let created: Value = http
        .post(format!("{}/destinations", bases[0]))
        .bearer_auth(key.as_str())
        .json(&json!({"kind": "amqp", "url": AMQP_URL, "exchange": exchange}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let destination = created["id"].as_str().unwrap().to_owned();
    let first_driver = wait_for_driver(&pool, &destination, None).await;

    // Sample the lock holders all along: never two at once.
    let sampling = Arc::new(AtomicBool::new(true));
    let holders: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let sampler = tokio::spawn({
        let (pool, destination, sampling, holders) = (
            pool.clone(),
            destination.clone(),
            sampling.clone(),
            holders.clone(),
        );
        async move {
            while sampling.load(Ordering::SeqCst) {
                let now = drivers(&pool, &destination).await;
                holders.lock().await.push(now);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    });

    let acknowledged = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (http, bases, key, acknowledged) = (
                http.clone(),
                bases.clone(),
                key.clone(),
                acknowledged.clone(),
            );
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..DEPOSITS_PER_CLIENT {
                    let idem = format!("c{client}-d{n}");
                    let first = client + n;
                    ids.push(deposit(&http, &bases, first, &key, &idem).await);
                    acknowledged.fetch_add(1, Ordering::SeqCst);
                }
                ids
            })
        })
        .collect();

    // Halfway through, SIGKILL the process driving the destination.
    let total = CLIENTS * DEPOSITS_PER_CLIENT;
    while acknowledged.load(Ordering::SeqCst) < total / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let victim = replicas
        .iter_mut()
        .find(|r| r.name == first_driver)
        .unwrap();
    let mut process = victim.process.take().unwrap();
    let killed_at = Instant::now();
    process.start_kill().unwrap();
    process.wait().await.unwrap();
    let second_driver = wait_for_driver(&pool, &destination, Some(&first_driver)).await;
    let takeover = killed_at.elapsed();

    let mut deposit_ids = Vec::new();
    for client in clients {
        deposit_ids.extend(client.await.unwrap());
    }
    sampling.store(false, Ordering::SeqCst);
    sampler.await.unwrap();

    // Every acknowledged deposit exists exactly once, with exactly one funding event.
    assert_eq!(deposit_ids.len(), total);
    let unique_ids: HashSet<&String> = deposit_ids.iter().collect();
    assert_eq!(
        unique_ids.len(),
        total,
        "each key answered with one deposit"
    );
    let stored: Vec<String> = sqlx::query_scalar("SELECT id::text FROM deposits")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored.iter().collect::<HashSet<_>>(),
        unique_ids,
        "the database holds exactly the acknowledged deposits"
    );
    let fundings = setup
        .count("SELECT count(*) FROM outbox WHERE event_type = 'portfolios.funding'")
        .await;
    assert_eq!(fundings, total as i64);

    // The killed replica comes back; all three serve the same feed.
    let victim = replicas
        .iter_mut()
        .find(|r| r.name == first_driver)
        .unwrap();
    victim.process = Some(spawn(&url, &victim.name, victim.port));
    wait_ready(&http, &victim.base).await;
    setup.settle().await;
    let reference = feed_ids(&http, &bases[0], &key).await;
    assert_eq!(reference.len(), total + 1, "the creation and every funding");
    for base in bases.iter().skip(1) {
        assert_eq!(feed_ids(&http, base, &key).await, reference, "{base}");
    }

    // One driver at a time, and the survivor delivered everything at least once.
    let samples = holders.lock().await;
    assert!(samples.iter().all(|s| s.len() <= 1), "two drivers at once");
    assert!(!samples.is_empty());
    let expected: BTreeSet<String> = reference
        .into_iter()
        .filter(|id| !earlier.contains(id))
        .collect();
    assert_eq!(expected.len(), total);
    let received = queue
        .take_until(|got| {
            let ids: BTreeSet<String> = got
                .iter()
                .filter_map(|m| m.properties.message_id().as_ref().map(|id| id.to_string()))
                .collect();
            expected.is_subset(&ids)
        })
        .await;
    println!(
        "scale-out: {total} deposits acknowledged through {REPLICAS} replicas, {} stored, \
         {fundings} funding events; driver {first_driver} killed, {second_driver} took over \
         in {takeover:?}; {} AMQP messages for {} events ({} duplicates)",
        stored.len(),
        received.len(),
        expected.len(),
        received.len() - expected.len()
    );
}
