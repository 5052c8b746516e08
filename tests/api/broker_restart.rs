//! Broker outage (fault suite, issue 9): the real RabbitMQ a destination publishes to is
//! stopped for 30 s while a real eventgate process relays a steady stream of platform events
//! and deposits to it, then started again. The destination's status must show the outage
//! while it lasts and clear after; every event of the tenant must be in the client's durable
//! queue afterwards (at least once). Bounded: one outage, about 40 s of load.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::brokers::{AmqpQueue, Received, unique};
use crate::helpers::{
    FaultSetup, PLATFORM_KEY, acme_event_ids, create_amqp_destination, free_port, spawn_eventgate,
    wait_ready,
};
use crate::private_rabbit::PrivateRabbit;

const OUTAGE: Duration = Duration::from_secs(30);

/// What the load sent, every request acknowledged.
#[derive(Default)]
struct Sent {
    platform_events: usize,
    deposits: usize,
}

/// Publishes two portfolio creations and makes one deposit every 100 ms until `stop`.
async fn steady_load(base: String, key: Arc<String>, stop: Arc<AtomicBool>) -> Sent {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut sent = Sent::default();
    let mut tick = 0;
    while !stop.load(Ordering::Relaxed) {
        tick += 1;
        let events: Vec<Value> = (0..2)
            .map(|i| json!({"tenant": "acme", "subject": "portfolios", "action": "creation",
                            "data": {"id": format!("L{tick}-{i}"), "external_id": "e", "owned_by_user_id": "U"}}))
            .collect();
        let published = http
            .post(format!("{base}/platform/events/batch"))
            .bearer_auth(PLATFORM_KEY)
            .json(&json!({"events": events}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            published.status(),
            StatusCode::CREATED,
            "publishing does not depend on the broker"
        );
        sent.platform_events += 2;
        let deposit = http
            .post(format!("{base}/events/deposit/"))
            .bearer_auth(key.as_str())
            .header("idempotency-key", format!("deposit-{tick}"))
            .json(&json!({"data": {"amount": format!("{tick}.00"), "currency": "EUR", "portfolio": "P1"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            deposit.status(),
            StatusCode::CREATED,
            "deposits do not depend on the broker"
        );
        sent.deposits += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sent
}

async fn destination_view(http: &reqwest::Client, base: &str, key: &str, id: &str) -> Value {
    http.get(format!("{base}/destinations/{id}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls the destination (bounded) until `done` holds; returns that view.
async fn wait_for_status(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let view = destination_view(http, base, key, id).await;
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "{what}: never; last {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test]
async fn rabbitmq_stopped_for_thirty_seconds_delivers_every_event_after(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut rabbit = PrivateRabbit::start().await;
    let FaultSetup {
        url,
        pool,
        server: _setup,
        key,
    } = FaultSetup::start(options, connect).await;
    // The client's exchange and queue, durable as a production consumer's would be.
    let exchange = unique("acme");
    drop(AmqpQueue::bind_durable(&rabbit.url(), &exchange).await);

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _eventgate = spawn_eventgate(&url, port, &[("EVENTGATE_RATE_LIMIT_PER_SEC", "0")]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_ready(&http, &base).await;
    let id = create_amqp_destination(&http, &base, &key, &rabbit.url(), &exchange).await;
    // A new destination starts at the end of the feed: what was there is not sent.
    let earlier: HashSet<String> = acme_event_ids(&pool).await.into_iter().collect();
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(steady_load(base.clone(), key.clone(), stop.clone()));
    wait_for_status(&http, &base, &key, &id, "first delivery", |v| {
        v["status"]["delivered_through"].is_string()
    })
    .await;

    rabbit.stop().await;
    let stopped_at = Instant::now();
    let during = wait_for_status(&http, &base, &key, &id, "the outage in the status", |v| {
        v["status"]["last_error"].is_string() && v["status"]["failing_since"].is_string()
    })
    .await;
    let shown_after = stopped_at.elapsed();
    assert!(
        !during.to_string().contains("guest:guest"),
        "no credentials in the status: {during}"
    );
    let lag_during = during["status"]["lag"].as_i64().unwrap();
    tokio::time::sleep(OUTAGE.saturating_sub(stopped_at.elapsed())).await;
    let outage = stopped_at.elapsed();
    rabbit.restart().await;
    let restarted_at = Instant::now();

    // The stream goes on after the broker is back, then stops.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let sent = load.await.unwrap();
    let after = wait_for_status(&http, &base, &key, &id, "caught up and healthy", |v| {
        v["status"]["lag"] == 0 && v["status"]["last_error"].is_null()
    })
    .await;
    let recovered_after = restarted_at.elapsed();
    assert!(after["status"]["failing_since"].is_null(), "{after}");

    let expected: HashSet<String> = acme_event_ids(&pool)
        .await
        .into_iter()
        .filter(|id| !earlier.contains(id))
        .collect();
    // The load's events and one funding event per deposit, and the delivery-health events
    // of this outage: when it and the reconnect outlast EVENTGATE_DESTINATION_FAILING_AFTER_SECS
    // (60 s; on a loaded machine they have), `destinations.failing` and then
    // `destinations.recovered` join the tenant's feed, and are delivered like the rest.
    let health: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM outbox WHERE tenant_id = 'acme' AND event_type LIKE 'destinations.%'
          ORDER BY tx_id, seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        health.is_empty() || health == ["destinations.failing", "destinations.recovered"],
        "delivery-health events of one outage: {health:?}"
    );
    assert_eq!(
        expected.len(),
        sent.platform_events + sent.deposits + health.len()
    );
    let queue = AmqpQueue::reopen(&rabbit.url(), &exchange).await;
    let received = queue.take_every(&expected).await;
    let received_ids: Vec<String> = received.iter().map(Received::event_id).collect();
    let distinct: HashSet<&str> = received_ids.iter().map(String::as_str).collect();
    assert!(
        distinct.iter().all(|id| expected.contains(*id)),
        "only this tenant's events"
    );
    eprintln!(
        "broker outage: {} platform events and {} deposits sent, all acknowledged; RabbitMQ down {:.1} s, \
         outage in the status after {:.2} s (lag {lag_during} then); caught up {:.2} s after the restart; \
         {} events checked, {} messages received, {} duplicates, 0 lost",
        sent.platform_events,
        sent.deposits,
        outage.as_secs_f64(),
        shown_after.as_secs_f64(),
        recovered_after.as_secs_f64(),
        expected.len(),
        received_ids.len(),
        received_ids.len() - distinct.len(),
    );
}
