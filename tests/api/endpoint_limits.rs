//! Per-destination limits against real local receivers: `max_in_flight` caps concurrent
//! requests, `rate_limit` spaces them, `timeout` fails a slow answer, and an endpoint that
//! answers 429 with `Retry-After` pauses its own destination and no other.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{TestServer, config};
use crate::receiver::{Receiver, Reply};
use crate::webhooks::{attempts_once, create_webhook, webhook_server_args};

async fn portfolios(server: &TestServer, ids: impl IntoIterator<Item = usize>) {
    for i in ids {
        server.create_portfolio("acme", &format!("P{i}")).await;
    }
}

#[sqlx::test]
async fn max_in_flight_caps_the_requests_one_endpoint_sees_at_once(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    let slow = Reply {
        status: 200,
        delay: Some(Duration::from_millis(300)),
        ..Reply::default()
    };
    let receiver = Receiver::start(move |_, _| slow.clone()).await;
    let created = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook"), "max_in_flight": 2}),
    )
    .await;
    assert_eq!(created["max_in_flight"], 2);
    portfolios(&server, 1..=10).await;
    receiver
        .wait_until("10 deliveries", |r| r.len() >= 10)
        .await;
    assert!(
        receiver.peak_concurrency() <= 2,
        "at most 2 at once, saw {}",
        receiver.peak_concurrency()
    );
}

#[sqlx::test]
async fn rate_limit_spaces_the_requests_to_one_endpoint(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    let receiver = Receiver::start(|_, _| Reply::status(200)).await;
    create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook"), "rate_limit": 5}),
    )
    .await;
    portfolios(&server, 1..=15).await;
    let requests = receiver
        .wait_until("15 deliveries", |r| r.len() >= 15)
        .await;
    // 5 a second with a burst of 5: the last 10 need at least 2 s after the first.
    let span = requests[14].at - requests[0].at;
    assert!(
        span >= Duration::from_millis(1800),
        "15 requests in {span:?}"
    );
}

#[sqlx::test]
async fn a_destination_timeout_fails_a_slow_answer_and_the_default_waits(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    let slow = Reply {
        status: 200,
        delay: Some(Duration::from_secs(3)),
        ..Reply::default()
    };
    let receiver = Receiver::start(move |_, _| slow.clone()).await;
    let impatient = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/impatient"), "timeout": 1}),
    )
    .await;
    let patient = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/patient")}),
    )
    .await;
    portfolios(&server, [1]).await;
    let path =
        |d: &serde_json::Value| format!("/destinations/{}/attempts", d["id"].as_str().unwrap());
    let failed = attempts_once(&server, &key, &path(&impatient), 1).await;
    assert_eq!(failed["data"][0]["status"], "failed");
    assert_eq!(failed["data"][0]["error"], "timed out");
    let delivered = attempts_once(&server, &key, &path(&patient), 1).await;
    assert_eq!(delivered["data"][0]["status"], "succeeded");
    assert!(delivered["data"][0]["duration_ms"].as_u64().unwrap() >= 3000);
}

#[sqlx::test]
async fn retry_after_pauses_its_own_destination_and_no_other(pool: PgPool) {
    let server = TestServer::start_with(
        pool,
        config(&[
            "--allow-private-destinations",
            "true",
            "--webhook-retry-delays-secs",
            "10,10",
        ]),
    )
    .await;
    let key = server.tenant_with_key("acme").await;
    let busy = Receiver::start(|_, seen| {
        if seen == 0 {
            Reply {
                status: 429,
                retry_after: Some(4),
                ..Reply::default()
            }
        } else {
            Reply::status(200)
        }
    })
    .await;
    let calm = Receiver::start(|_, _| Reply::status(200)).await;
    let paused = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": busy.url("/hook")}),
    )
    .await;
    create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": calm.url("/hook")}),
    )
    .await;

    portfolios(&server, [1]).await;
    let attempts = format!("/destinations/{}/attempts", paused["id"].as_str().unwrap());
    attempts_once(&server, &key, &attempts, 1).await;
    portfolios(&server, 2..=5).await;

    let calm_requests = calm.wait_until("5 deliveries", |r| r.len() >= 5).await;
    let busy_requests = busy
        .wait_until("5 deliveries after the pause", |r| {
            r.iter().filter(|r| r.accepted()).count() >= 5
        })
        .await;
    let asked_at = busy_requests[0].at;
    assert_eq!(busy_requests[0].answered, 429);
    for later in &busy_requests[1..] {
        assert!(
            later.at - asked_at >= Duration::from_secs(4),
            "a request {:?} after the 429 asked for 4 s",
            later.at - asked_at
        );
    }
    assert!(
        calm_requests[4].at < busy_requests[1].at,
        "the other destination was not held back"
    );
}
