//! Writes are announced on `eventgate_outbox` after they commit (one NOTIFY per tenant,
//! sent by the announcer outside the write's transaction): that is how other replicas'
//! long-polls and relay drivers hear of them.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

use crate::helpers::{PLATFORM_KEY, TestServer};

/// Receives notifications until every tenant of `expected` has been heard.
async fn hear(listener: &mut PgListener, expected: &[&str]) {
    let mut heard = HashSet::new();
    while !expected.iter().all(|tenant| heard.contains(*tenant)) {
        let notification = tokio::time::timeout(Duration::from_secs(30), listener.recv())
            .await
            .unwrap_or_else(|_| panic!("no announcement of {expected:?}; heard {heard:?}"))
            .expect("LISTEN connection");
        assert_eq!(notification.channel(), "eventgate_outbox");
        heard.insert(notification.payload().to_owned());
    }
}

#[sqlx::test]
async fn deposits_and_publishes_are_announced_per_tenant(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let acme = server.tenant_with_key("acme").await;
    server.tenant_with_key("zeta").await;
    server.create_portfolio("acme", "P1").await;
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen("eventgate_outbox").await.unwrap();

    let deposit = server
        .http
        .post(server.url("/events/deposit/"))
        .bearer_auth(&acme)
        .header("idempotency-key", "announced-1")
        .json(&json!({"data": {"amount": "5", "currency": "EUR", "portfolio": "P1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(deposit.status(), StatusCode::CREATED);
    hear(&mut listener, &["acme"]).await;

    let creation = |tenant: &str, id: &str| {
        json!({"tenant": tenant, "subject": "portfolios", "action": "creation",
               "data": {"id": id, "external_id": "e", "owned_by_user_id": "U1"}})
    };
    let batch = server
        .post(
            "/platform/events/batch",
            PLATFORM_KEY,
            &json!({"events": [creation("acme", "P2"), creation("zeta", "P3")]}),
        )
        .await;
    assert_eq!(batch.status(), StatusCode::CREATED);
    hear(&mut listener, &["acme", "zeta"]).await;
}
