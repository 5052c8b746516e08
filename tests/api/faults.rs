//! Crash safety: the real binary is SIGKILLed again and again while clients deposit and
//! publish platform events, retrying with the same Idempotency-Key as a real client would.
//! Afterwards PostgreSQL must hold every acknowledged deposit and event exactly once (one
//! funding event per deposit), and the AMQP queue every event at least once.
//! (Part of the fault suite of issue 9; bounded: 5 kills, a few seconds of load.)

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::process::Child;

use crate::brokers::{AMQP_URL, AmqpQueue, Received, unique};
use crate::helpers::{
    FaultSetup, PLATFORM_KEY, acme_event_ids, create_amqp_destination, free_port, spawn_eventgate,
    wait_ready,
};

const CLIENTS: usize = 8;
const DEPOSITS_PER_CLIENT: usize = 25;
const KILLS: usize = 5;

fn spawn(url: &str, port: u16) -> Child {
    spawn_eventgate(url, port, &[("EVENTGATE_RATE_LIMIT_PER_SEC", "0")])
}

#[sqlx::test]
async fn repeated_sigkill_loses_and_doubles_nothing(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let FaultSetup {
        url,
        pool,
        server: _setup,
        key,
    } = FaultSetup::start(options, connect).await;

    let port = free_port();
    let base = Arc::new(format!("http://127.0.0.1:{port}"));
    let mut server = spawn(&url, port);
    let failures = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(120);

    // The AMQP destination is driven by whichever server process is alive.
    let exchange = unique("acme");
    let queue = AmqpQueue::bind_new(&exchange).await;
    let http = reqwest::Client::new();
    wait_ready(&http, &base).await;
    create_amqp_destination(&http, &base, &key, AMQP_URL, &exchange).await;
    // A new destination starts at the end of the feed: what was there is not sent.
    let earlier: HashSet<String> = acme_event_ids(&pool).await.into_iter().collect();

    // Clients keep depositing and publishing until every kill has happened (and at least
    // DEPOSITS_PER_CLIENT rounds each), so every kill lands in the middle of the load.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (key, base, failures, done) = (key.clone(), base.clone(), failures.clone(), done.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
                let mut acknowledged = HashMap::new();
                let mut batches = 0;
                let mut n = 0;
                while n < DEPOSITS_PER_CLIENT || !done.load(Ordering::Relaxed) {
                    n += 1;
                    let idempotency_key = format!("client{client}-deposit{n}");
                    // Valid for any n (a cents field from n would overflow past 99 deposits).
                    let body = json!({"data": {"amount": format!("{n}.{:02}", client + 1), "currency": "EUR", "portfolio": "P1"}});
                    let deposit = until_created(&failures, deadline, || {
                        http.post(format!("{base}/events/deposit/"))
                            .bearer_auth(key.as_str())
                            .header("idempotency-key", &idempotency_key)
                            .json(&body)
                    })
                    .await;
                    acknowledged.insert(idempotency_key, deposit["id"].as_str().unwrap().to_owned());

                    let batch = json!({"events": [{"tenant": "acme", "subject": "portfolios", "action": "creation",
                        "data": {"id": format!("C{client}-{n}"), "external_id": "e", "owned_by_user_id": "U"}}]});
                    until_created(&failures, deadline, || {
                        http.post(format!("{base}/platform/events/batch"))
                            .bearer_auth(PLATFORM_KEY)
                            .header("idempotency-key", format!("client{client}-batch{n}"))
                            .json(&batch)
                    })
                    .await;
                    batches += 1;
                }
                (acknowledged, batches)
            })
        })
        .collect();

    // Kill the server at intervals while the clients work, restarting it on the same port.
    let killer_done = done.clone();
    let killer = tokio::spawn(async move {
        for kill in 0..KILLS {
            tokio::time::sleep(Duration::from_millis(200 + 100 * kill as u64)).await;
            server.start_kill().unwrap();
            server.wait().await.unwrap();
            server = spawn(&url, port);
        }
        killer_done.store(true, Ordering::Relaxed);
        server
    });

    let _server = killer.await.unwrap();
    let mut acknowledged = HashMap::new();
    let mut batches = 0;
    for client in clients {
        let (deposits, published) = client.await.unwrap();
        acknowledged.extend(deposits);
        batches += published;
    }

    assert!(
        acknowledged.len() >= CLIENTS * DEPOSITS_PER_CLIENT,
        "every client finished its deposits"
    );
    assert!(
        failures.load(Ordering::Relaxed) > 0,
        "requests failed during the kills and were retried"
    );

    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let expected = acknowledged.len() as i64;
    assert_eq!(
        count("SELECT count(*) FROM outbox WHERE event_type = 'portfolios.creation'").await,
        1 + batches as i64,
        "each acknowledged platform event stored once (plus the setup's P1)"
    );
    assert_eq!(
        count("SELECT count(*) FROM deposits").await,
        expected,
        "no deposit doubled or lost"
    );
    assert_eq!(
        count("SELECT count(*) FROM outbox WHERE event_type = 'portfolios.funding'").await,
        expected
    );
    assert_eq!(
        count("SELECT count(*) FROM idempotency_keys WHERE scope = 'deposits'").await,
        expected
    );
    assert_eq!(
        count("SELECT count(*) FROM deposits d JOIN outbox o ON o.id = d.event_id").await,
        expected,
        "each deposit's funding event exists"
    );
    for (idempotency_key, deposit_id) in &acknowledged {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM deposits WHERE id = $1::uuid")
            .bind(deposit_id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(
            stored, 1,
            "the acknowledged deposit of {idempotency_key} is stored"
        );
    }

    // The bus received every event at least once, whichever process relayed it.
    let expected: HashSet<String> = acme_event_ids(&pool)
        .await
        .into_iter()
        .filter(|id| !earlier.contains(id))
        .collect();
    assert_eq!(expected.len(), acknowledged.len() + batches);
    let received = queue.take_every(&expected).await;
    let distinct: HashSet<String> = received.iter().map(Received::event_id).collect();
    eprintln!(
        "faults: {KILLS} SIGKILLs; {} deposits and {batches} platform events acknowledged; \
         {} failed attempts retried; {} events checked, {} AMQP messages ({} duplicates); \
         0 lost, 0 doubled",
        acknowledged.len(),
        failures.load(Ordering::Relaxed),
        expected.len(),
        received.len(),
        received.len() - distinct.len(),
    );
}

/// Sends one request until it is answered 201, with the same body and key each time,
/// counting failed attempts. While the server is being killed only a failed connection,
/// a 5xx or a 409 (the same key still in flight) are acceptable.
async fn until_created(
    failures: &AtomicU64,
    deadline: Instant,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Value {
    loop {
        assert!(Instant::now() < deadline, "never acknowledged");
        match request().send().await {
            Ok(response) if response.status() == StatusCode::CREATED => {
                return response.json().await.unwrap();
            }
            Ok(response) => assert!(
                response.status().is_server_error() || response.status() == StatusCode::CONFLICT,
                "only retryable answers while crashing, got {}",
                response.status()
            ),
            Err(_) => {}
        }
        failures.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
