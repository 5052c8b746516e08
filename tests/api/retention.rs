//! Retention per tenant: a destination with nothing to deliver keeps up with its tenant's
//! feed and never pins the purge; one tenant's destinations never hold back another's
//! feed; a destination left behind by the purge shows the gap and waits for its client;
//! webhook history is purged too.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::brokers::{AMQP_URL, AmqpQueue, unique};
use crate::helpers::{TestServer, assert_problem, config, view, wait_view};

async fn create(server: &TestServer, key: &str, body: Value) -> String {
    let response = server.post("/destinations", key, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    created["id"].as_str().unwrap().to_owned()
}

async fn outbox_rows(server: &TestServer, tenant: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&server.pool)
        .await
        .unwrap()
}

/// The stored position, as text (the view's cursor would do as well).
async fn delivered_through(server: &TestServer, id: &str) -> String {
    sqlx::query_scalar(
        "SELECT delivered_tx::text || '/' || delivered_seq FROM destinations WHERE id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&server.pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn a_quiet_destination_never_holds_back_its_tenants_retention(pool: PgPool) {
    let server =
        TestServer::start_with(pool, config(&["--allow-private-destinations", "true"])).await;
    let key = server.tenant_with_key("acme").await;
    // Its types never match what acme publishes: it has nothing to deliver, ever.
    let quiet = create(
        &server,
        &key,
        json!({"kind": "amqp", "url": AMQP_URL, "exchange": unique("quiet"), "types": ["optimizations.*"]}),
    )
    .await;
    let created_at = delivered_through(&server, &quiet).await;
    for i in 0..3 {
        server.create_portfolio("acme", &format!("P{i}")).await;
    }
    server.settle().await;

    // The relay reads nothing of its types, and moves it past the events it skips.
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered_through(&server, &quiet).await == created_at {
        assert!(
            Instant::now() < deadline,
            "the quiet destination never moved"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown = view(&server, &key, &quiet).await;
    assert_eq!(shown["status"]["lag"], 0);
    assert_eq!(
        shown["status"]["last_success_at"],
        Value::Null,
        "skipping is not delivering"
    );

    eventgate::maintenance::purge_feed(&server.pool, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        outbox_rows(&server, "acme").await,
        0,
        "nothing pins acme's feed"
    );
}

#[sqlx::test]
async fn one_tenants_stuck_destination_never_holds_back_another_tenant(pool: PgPool) {
    let server =
        TestServer::start_with(pool, config(&["--allow-private-destinations", "true"])).await;
    let acme = server.tenant_with_key("acme").await;
    let bank = server.tenant_with_key("bank-b").await;
    // bank-b's destination can never deliver: its exchange does not exist.
    let stuck = create(
        &server,
        &bank,
        json!({"kind": "amqp", "url": AMQP_URL, "exchange": unique("missing")}),
    )
    .await;
    let exchange = unique("acme");
    let queue = AmqpQueue::bind_new(&exchange).await;
    let live = create(
        &server,
        &acme,
        json!({"kind": "amqp", "url": AMQP_URL, "exchange": exchange}),
    )
    .await;
    server.create_portfolio("bank-b", "B1").await;
    server.create_portfolio("acme", "A1").await;
    server.create_portfolio("acme", "A2").await;
    queue.take(2).await;
    wait_view(&server, &acme, &live, "the expected state", |v| {
        v["status"]["lag"] == 0
    })
    .await;
    wait_view(&server, &bank, &stuck, "the expected state", |v| {
        v["status"]["last_error"].is_string()
    })
    .await;

    eventgate::maintenance::purge_feed(&server.pool, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        outbox_rows(&server, "acme").await,
        0,
        "acme's delivered events are purged"
    );
    assert_eq!(
        outbox_rows(&server, "bank-b").await,
        1,
        "bank-b's undelivered event is kept for its destination"
    );
}

#[sqlx::test]
async fn a_destination_behind_the_purge_shows_the_gap_and_waits_for_its_client(pool: PgPool) {
    let server =
        TestServer::start_with(pool, config(&["--allow-private-destinations", "true"])).await;
    let key = server.tenant_with_key("acme").await;
    let exchange = unique("acme");
    let queue = AmqpQueue::bind_new(&exchange).await;
    let id = create(
        &server,
        &key,
        json!({"kind": "amqp", "url": AMQP_URL, "exchange": exchange, "enabled": false}),
    )
    .await;
    server.create_portfolio("acme", "P1").await;
    server.create_portfolio("acme", "P2").await;
    server.settle().await;
    // Disabled destinations do not hold back the purge.
    let purged = eventgate::maintenance::purge_feed(&server.pool, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(purged, 2);

    let enabled = server
        .patch(
            &format!("/destinations/{id}"),
            &key,
            &json!({"enabled": true}),
        )
        .await;
    assert_eq!(enabled.status(), StatusCode::OK);
    let shown: Value = enabled.json().await.unwrap();
    let gap = &shown["status"]["gap"];
    assert!(
        gap["after"].is_string() && gap["through"].is_string(),
        "the gap is shown: {shown}"
    );
    assert_eq!(gap["after"], shown["status"]["delivered_through"]);

    // It does not skip ahead on its own: a new event waits, and the status says why.
    server.create_portfolio("acme", "P3").await;
    let stalled = wait_view(&server, &key, &id, "the expected state", |v| {
        v["status"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("purged"))
    })
    .await;
    assert_eq!(stalled["status"]["lag"], 1);
    assert!(
        queue.rest().await.is_empty(),
        "nothing was delivered past the gap"
    );

    // A cursor into the purged range cannot be replayed; the oldest kept event can.
    let before_gap = server
        .post(
            &format!("/destinations/{id}/replay"),
            &key,
            &json!({"after": gap["after"]}),
        )
        .await;
    assert_problem(before_gap, StatusCode::GONE).await;
    let replayed = server
        .post(
            &format!("/destinations/{id}/replay"),
            &key,
            &json!({"from": "oldest"}),
        )
        .await;
    assert_eq!(replayed.status(), StatusCode::OK);
    let replayed: Value = replayed.json().await.unwrap();
    assert_eq!(replayed["status"]["gap"], Value::Null, "{replayed}");
    let received = queue.take(1).await;
    let body: Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(
        body["data"]["id"], "P3",
        "delivery resumes with the oldest kept event"
    );
    wait_view(&server, &key, &id, "the expected state", |v| {
        v["status"]["lag"] == 0 && v["status"]["last_error"].is_null()
    })
    .await;
}

#[sqlx::test]
async fn finished_webhook_history_past_retention_is_purged(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&["--relay", "false"])).await;
    server.tenant_with_key("acme").await;
    let destination: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO destinations (id, tenant_id, kind, config, delivered_tx, delivered_seq)
         VALUES (gen_random_uuid(), 'acme', 'webhook', '{}', '0', 0) RETURNING id",
    )
    .fetch_one(&server.pool)
    .await
    .unwrap();
    for (message, status, age) in [
        ("old-delivered", "delivered", "2 days"),
        ("old-failed", "failed", "2 days"),
        ("old-pending", "pending", "2 days"),
        ("new-delivered", "delivered", "1 minute"),
    ] {
        sqlx::query(
            "INSERT INTO webhook_deliveries (destination_id, message_id, payload, status, updated)
             VALUES ($1, $2, '{}', $3, now() - $4::interval)",
        )
        .bind(destination)
        .bind(message)
        .bind(status)
        .bind(age)
        .execute(&server.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO webhook_attempts (destination_id, message_id, attempted_at, status, duration_ms)
             VALUES ($1, $2, now() - $3::interval, 'failed', 1)",
        )
        .bind(destination)
        .bind(message)
        .bind(age)
        .execute(&server.pool)
        .await
        .unwrap();
    }
    let purged =
        eventgate::maintenance::purge_webhook_history(&server.pool, Duration::from_secs(24 * 3600))
            .await
            .unwrap();
    assert_eq!(
        purged,
        3 + 2,
        "three old attempts and two finished old deliveries"
    );
    let deliveries: Vec<String> =
        sqlx::query_scalar("SELECT message_id FROM webhook_deliveries ORDER BY message_id")
            .fetch_all(&server.pool)
            .await
            .unwrap();
    assert_eq!(
        deliveries,
        ["new-delivered", "old-pending"],
        "pending deliveries stay"
    );
    let attempts: Vec<String> = sqlx::query_scalar("SELECT message_id FROM webhook_attempts")
        .fetch_all(&server.pool)
        .await
        .unwrap();
    assert_eq!(attempts, ["new-delivered"]);
}
