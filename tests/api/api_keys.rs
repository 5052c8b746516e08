//! API keys: an expired key is refused like a revoked one, an expiry must lie ahead, and a
//! key is found by an index lookup of its hash, so how long a lookup takes says nothing
//! about how close a guess came.

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{PLATFORM_KEY, TestServer, assert_problem};

#[sqlx::test]
async fn an_expired_key_is_refused_like_a_revoked_one(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
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
