//! API keys: an expired key is refused like a revoked one, an expiry must lie ahead, a
//! key is found by an index lookup of its hash, so how long a lookup takes says nothing
//! about how close a guess came, and the in-memory key cache never outlives a revocation
//! (notified to every replica) nor its staleness bound.

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use std::time::{Duration, Instant};

use crate::helpers::{PLATFORM_KEY, TestServer, assert_problem, config};

#[sqlx::test]
async fn an_expired_key_is_refused_like_a_revoked_one(pool: PgPool) {
    // No key cache: the expiry is moved in the table below, and a cached key would only be
    // dropped when the change's notification arrives (see the key cache tests).
    let server = TestServer::start_with(pool.clone(), config(&["--auth-cache-secs", "0"])).await;
    server.tenant_with_key("acme").await;
    let expires_at = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let created = server
        .post(
            "/platform/tenants/acme/keys",
            PLATFORM_KEY,
            &json!({"role": "client", "expires_at": expires_at}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: serde_json::Value = created.json().await.unwrap();
    assert!(created["expires_at"].is_string(), "{created}");
    let key = created["key"].as_str().unwrap();
    assert_eq!(
        server.get("/destinations", key).await.status(),
        StatusCode::OK
    );

    // The clock moves past the expiry (moved in the table: tests do not wait on time).
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1::uuid")
        .bind(created["id"].as_str().unwrap())
        .execute(&pool)
        .await
        .unwrap();
    assert_problem(
        server.get("/destinations", key).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    let past = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    let refused = server
        .post(
            "/platform/tenants/acme/keys",
            PLATFORM_KEY,
            &json!({"role": "client", "expires_at": past}),
        )
        .await;
    let problem = assert_problem(refused, StatusCode::CONFLICT).await;
    assert!(problem["detail"].as_str().unwrap().contains("expires_at"));
}

#[sqlx::test]
async fn a_key_is_looked_up_by_an_index_on_its_hash(pool: PgPool) {
    // Enough keys that the planner would rather scan than probe if it could.
    sqlx::query(
        "INSERT INTO api_keys (id, key_hash, role)
         SELECT gen_random_uuid(), sha256(i::text::bytea), 'platform' FROM generate_series(1, 5000) i",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE api_keys")
        .execute(&pool)
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN {}",
        eventgate::store::keys::FIND_ACTIVE.replace("$1", "sha256('guess'::bytea)")
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index Scan using api_keys_key_hash_key"),
        "{plan}"
    );
    assert!(!plan.contains("Seq Scan"), "{plan}");
}

/// A client key of `tenant` (made through `server`) and its id.
async fn client_key(
    server: &TestServer,
    tenant: &str,
    body: serde_json::Value,
) -> (String, String) {
    let created = server
        .post(
            &format!("/platform/tenants/{tenant}/keys"),
            PLATFORM_KEY,
            &body,
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: serde_json::Value = created.json().await.unwrap();
    (
        created["key"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    )
}

async fn status_with(server: &TestServer, key: &str) -> StatusCode {
    server.get("/destinations", key).await.status()
}

/// Waits (bounded, far below any staleness bound the tests set) until `server` refuses `key`.
async fn refused_soon(server: &TestServer, key: &str, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_with(server, key).await != StatusCode::UNAUTHORIZED {
        assert!(Instant::now() < deadline, "still accepted: {why}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const FOR_AN_HOUR: [&str; 2] = ["--auth-cache-secs", "300"];

#[sqlx::test]
async fn a_key_revoked_through_one_replica_is_refused_by_every_replica(pool: PgPool) {
    let first = TestServer::start_with(pool.clone(), config(&FOR_AN_HOUR)).await;
    let second = TestServer::start_with(pool.clone(), config(&FOR_AN_HOUR)).await;
    first.tenant_with_key("acme").await;
    let (key, id) = client_key(&first, "acme", json!({"role": "client"})).await;
    // Both replicas have verified (and cached) the key.
    assert_eq!(status_with(&first, &key).await, StatusCode::OK);
    assert_eq!(status_with(&second, &key).await, StatusCode::OK);

    let revoked = first
        .http
        .delete(first.url(&format!("/platform/keys/{id}")))
        .bearer_auth(PLATFORM_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    // The replica that revoked refuses the very next request.
    assert_problem(
        first.get("/destinations", &key).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // The other one as soon as the notification arrives: its cache would trust the key for
    // five more minutes.
    refused_soon(
        &second,
        &key,
        "the other replica after the revocation's notification",
    )
    .await;
}

#[sqlx::test]
async fn a_key_changed_without_a_notification_is_trusted_no_longer_than_the_bound(pool: PgPool) {
    let trusting = TestServer::start_with(pool.clone(), config(&FOR_AN_HOUR)).await;
    let bounded = TestServer::start_with(pool.clone(), config(&["--auth-cache-secs", "1"])).await;
    trusting.tenant_with_key("acme").await;
    let (key, _) = client_key(&trusting, "acme", json!({"role": "client"})).await;
    assert_eq!(status_with(&trusting, &key).await, StatusCode::OK);
    assert_eq!(status_with(&bounded, &key).await, StatusCode::OK);

    // Revoked behind the servers' backs: the notification is lost.
    sqlx::query("ALTER TABLE api_keys DISABLE TRIGGER api_keys_changed")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE api_keys SET revoked_at = now() WHERE revoked_at IS NULL AND tenant_id = 'acme'",
    )
    .execute(&pool)
    .await
    .unwrap();
    // The database says revoked; the cache still answers: the key is not looked up.
    assert_eq!(status_with(&trusting, &key).await, StatusCode::OK);
    // A one-second bound looks again soon after.
    refused_soon(&bounded, &key, "past the one-second bound").await;
    // A LISTEN connection that drops may have missed notifications: its replica forgets
    // every key when it reconnects.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .execute(&pool)
    .await
    .unwrap();
    refused_soon(
        &trusting,
        &key,
        "after its LISTEN connection was re-established",
    )
    .await;
}

#[sqlx::test]
async fn a_cached_key_is_refused_once_it_expires(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&FOR_AN_HOUR)).await;
    server.tenant_with_key("acme").await;
    let expires_at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (key, _) = client_key(
        &server,
        "acme",
        json!({"role": "client", "expires_at": expires_at}),
    )
    .await;
    assert_eq!(status_with(&server, &key).await, StatusCode::OK);
    refused_soon(&server, &key, "past its expiry, while cached").await;
}
