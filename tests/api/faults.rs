//! Crash safety of deposits: the real binary is SIGKILLed again and again while clients
//! deposit, retrying with the same Idempotency-Key as a real client would. Afterwards
//! PostgreSQL must hold every acknowledged deposit exactly once, with its funding event.
//! (Part of the fault suite of issue 9; bounded: 5 kills, about 2 seconds of load.)

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::process::Child;

use crate::helpers::{FaultSetup, free_port, spawn_eventgate};

const CLIENTS: usize = 8;
const DEPOSITS_PER_CLIENT: usize = 25;
const KILLS: usize = 5;

fn spawn(url: &str, port: u16) -> Child {
    spawn_eventgate(url, port, &[("EVENTGATE_RELAY", "false")])
}

#[sqlx::test]
async fn deposits_survive_repeated_sigkill_exactly_once(
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

    // Clients keep depositing until every kill has happened (and at least
    // DEPOSITS_PER_CLIENT each), so every kill lands in the middle of the load.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (key, base, failures, done) = (key.clone(), base.clone(), failures.clone(), done.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
                let mut acknowledged = HashMap::new();
                let mut n = 0;
                while n < DEPOSITS_PER_CLIENT || !done.load(Ordering::Relaxed) {
                    n += 1;
                    let idempotency_key = format!("client{client}-deposit{n}");
                    // Valid for any n (a cents field from n would overflow past 99 deposits).
                    let body = json!({"data": {"amount": format!("{n}.{:02}", client + 1), "currency": "EUR", "portfolio": "P1"}});
                    loop {
                        assert!(Instant::now() < deadline, "deposit {idempotency_key} never acknowledged");
                        let sent = http
                            .post(format!("{base}/events/deposit/"))
                            .bearer_auth(key.as_str())
                            .header("idempotency-key", &idempotency_key)
                            .json(&body)
                            .send()
                            .await;
                        match sent {
                            Ok(response) if response.status() == StatusCode::CREATED => {
                                let deposit: Value = response.json().await.unwrap();
                                acknowledged.insert(idempotency_key, deposit["id"].as_str().unwrap().to_owned());
                                break;
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
                acknowledged
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
    for client in clients {
        acknowledged.extend(client.await.unwrap());
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
    eprintln!(
        "faults: {KILLS} SIGKILLs, {} deposits acknowledged, {} failed attempts retried",
        acknowledged.len(),
        failures.load(Ordering::Relaxed)
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
}
