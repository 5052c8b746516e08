//! Slow consumers (fault suite, issue 9): 1,000 long-pollers follow one tenant's feed on a
//! real eventgate process while clients deposit. Waiting polls must hold no database
//! connection (deposits never starve: every one is acknowledged), every poller must see
//! every event in feed order, and the process's memory must stay bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{FaultSetup, free_port, metrics_text, spawn_eventgate, wait_ready};

const POLLERS: usize = 1000;
const DEPOSIT_CLIENTS: usize = 4;
const DEPOSITS_PER_CLIENT: usize = 25;
/// Far above what 1,000 idle connections need; a leak per wake-up would cross it.
const RSS_BOUND_KIB: u64 = 512 * 1024;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

async fn page(http: &reqwest::Client, url: String, key: &str) -> Value {
    let response = http.get(url).bearer_auth(key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Follows the feed from `cursor` with long-polls until `want` events arrived.
async fn follow(
    http: reqwest::Client,
    base: Arc<String>,
    key: Arc<String>,
    mut cursor: String,
    want: usize,
) -> Vec<String> {
    let mut seen = Vec::with_capacity(want);
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < want {
        assert!(
            Instant::now() < deadline,
            "a poller saw only {} events",
            seen.len()
        );
        let url = format!("{base}/events/?after={cursor}&limit=200&wait=20");
        let body = page(&http, url, &key).await;
        for event in body["data"].as_array().unwrap() {
            seen.push(event["id"].as_str().unwrap().to_owned());
        }
        cursor = body["next_cursor"].as_str().unwrap().to_owned();
    }
    seen
}

async fn waiting(http: &reqwest::Client, base: &str) -> u64 {
    let text = metrics_text(http, base).await;
    text.lines()
        .find_map(|line| line.strip_prefix("eventgate_feed_waiters "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

#[sqlx::test]
async fn a_thousand_long_polls_neither_starve_deposits_nor_grow_memory(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let FaultSetup {
        url,
        pool,
        server: setup,
        key,
    } = FaultSetup::start(options, connect).await;
    setup.settle().await;

    let port = free_port();
    let server = spawn_eventgate(
        &url,
        port,
        &[
            ("EVENTGATE_RELAY", "false"),
            ("EVENTGATE_RATE_LIMIT_PER_SEC", "0"),
            ("EVENTGATE_MAX_LONG_POLLS_PER_TENANT", "2000"),
            ("EVENTGATE_DB_MAX_CONNECTIONS", "20"),
        ],
    );
    let pid = server.id().unwrap();
    let base = Arc::new(format!("http://127.0.0.1:{port}"));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(POLLERS + 64)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    wait_ready(&http, &base).await;
    let start = page(&http, format!("{base}/events/"), &key).await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let rss_before = rss_kib(pid);

    let total = DEPOSIT_CLIENTS * DEPOSITS_PER_CLIENT;
    let pollers: Vec<_> = (0..POLLERS)
        .map(|_| {
            tokio::spawn(follow(
                http.clone(),
                base.clone(),
                key.clone(),
                start.clone(),
                total,
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while waiting(&http, &base).await < POLLERS as u64 {
        assert!(Instant::now() < deadline, "the pollers never all waited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
    let sampler = tokio::spawn({
        let (sampling, peak) = (sampling.clone(), peak.clone());
        async move {
            while sampling.load(Ordering::SeqCst) {
                peak.fetch_max(rss_kib(pid), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    // Deposits while every poll waits: each must be acknowledged, first time.
    let started = Instant::now();
    let depositors: Vec<_> = (0..DEPOSIT_CLIENTS)
        .map(|client| {
            let (http, base, key) = (http.clone(), base.clone(), key.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for n in 0..DEPOSITS_PER_CLIENT {
                    let sent = Instant::now();
                    let response = http
                        .post(format!("{base}/events/deposit/"))
                        .bearer_auth(key.as_str())
                        .header("idempotency-key", format!("c{client}-d{n}"))
                        .json(&json!({"data": {"amount": "1.00", "currency": "USD", "portfolio": "P1"}}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap());
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for depositor in depositors {
        latencies.extend(depositor.await.unwrap());
    }
    let depositing = started.elapsed();

    setup.settle().await;
    let reference: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM outbox WHERE event_type = 'portfolios.funding' ORDER BY tx_id, seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(reference.len(), total);
    for poller in pollers {
        assert_eq!(
            poller.await.unwrap(),
            reference,
            "every event, in feed order"
        );
    }
    let delivered = started.elapsed();
    sampling.store(false, Ordering::SeqCst);
    sampler.await.unwrap();
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak < RSS_BOUND_KIB, "peak RSS {peak} KiB");

    latencies.sort();
    println!(
        "slow consumers: {POLLERS} long-polls waiting; {total} deposits all 201 in {depositing:?} \
         (p50 {:?}, max {:?}); every poller saw all {total} in order within {delivered:?}; \
         server RSS {rss_before} KiB before, peak {peak} KiB",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
    );
}
