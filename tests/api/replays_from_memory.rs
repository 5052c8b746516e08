//! Replays answered from the memory of the replica that committed the write: the same
//! answer as from the database, 422 for another body, nothing past the key's lifetime, and
//! other replicas still replay from the database.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestServer, assert_problem, config};

const PORTFOLIO: &str = "P01F8ZSNV0J45R9DFZ3D7D8C26F";

fn deposit(amount: &str) -> Value {
    json!({"data": {"amount": amount, "currency": "USD", "portfolio": PORTFOLIO}})
}

async fn post_deposit(server: &TestServer, key: &str, idem: &str, body: &Value) -> Response {
    server
        .http
        .post(server.url("/events/deposit/"))
        .bearer_auth(key)
        .header("idempotency-key", idem)
        .json(body)
        .send()
        .await
        .expect("request sent")
}

fn replayed(response: &Response) -> bool {
    response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

async fn deposits(server: &TestServer) -> i64 {
    server.count("SELECT count(*) FROM deposits").await
}

#[sqlx::test]
async fn a_retry_on_the_committing_replica_is_replayed_without_the_database(pool: PgPool) {
    let committing = TestServer::start_with(pool.clone(), config(&[])).await;
    let other = TestServer::start_with(pool, config(&[])).await;
    let key = committing.tenant_with_key("acme").await;
    committing.create_portfolio("acme", PORTFOLIO).await;

    let first = post_deposit(&committing, &key, "k1", &deposit("10")).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(!replayed(&first));
    let location = first.headers()["location"].clone();
    let answer: Value = first.json().await.unwrap();

    // The other replica never saw the write: it replays from the database.
    let elsewhere = post_deposit(&other, &key, "k1", &deposit("10")).await;
    assert_eq!(elsewhere.status(), StatusCode::CREATED);
    assert!(replayed(&elsewhere));
    assert_eq!(elsewhere.json::<Value>().await.unwrap(), answer);

    // With the key's row gone, only memory can still know the answer: a retry on the
    // committing replica is replayed from it, and makes no second deposit.
    sqlx::query("DELETE FROM idempotency_keys")
        .execute(&committing.pool)
        .await
        .unwrap();
    let retry = post_deposit(&committing, &key, "k1", &deposit("10")).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert!(replayed(&retry));
    assert_eq!(retry.headers()["location"], location);
    assert_eq!(retry.json::<Value>().await.unwrap(), answer);
    assert_eq!(deposits(&committing).await, 1);

    let other_body = post_deposit(&committing, &key, "k1", &deposit("11")).await;
    assert_problem(other_body, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(deposits(&committing).await, 1);
}

#[sqlx::test]
async fn a_key_past_its_lifetime_is_not_replayed_from_memory(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&["--idempotency-ttl-secs", "1"])).await;
    let key = server.tenant_with_key("acme").await;
    server.create_portfolio("acme", PORTFOLIO).await;
    let first = post_deposit(&server, &key, "k1", &deposit("10")).await;
    assert_eq!(first.status(), StatusCode::CREATED);

    // Past the lifetime (counted from before the request was sent), in memory and in the
    // database alike.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let later = post_deposit(&server, &key, "k1", &deposit("10")).await;
    assert_eq!(later.status(), StatusCode::CREATED);
    assert!(!replayed(&later), "an expired key is a new key");
    assert_eq!(deposits(&server).await, 2);
}
