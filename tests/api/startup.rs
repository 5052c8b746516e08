//! What the server checks and settles when it starts: the configured platform key (the
//! only start-up key), and a database whose transaction ids went backwards.

use eventgate::app::{AppState, StartupError};
use eventgate::auth::{NewKey, Role};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use eventgate::config::ServerConfig;

use crate::helpers::{PLATFORM_KEY, TestServer, config};

/// A bare `eventgate serve` configuration with `platform_key` as its start-up key.
fn with_platform_key(platform_key: &str) -> ServerConfig {
    ServerConfig::from_args([
        "eventgate",
        "--platform-key",
        platform_key,
        "--secrets-key",
        crate::helpers::SECRETS_KEY,
    ])
    .unwrap()
}

const NEW_PLATFORM_KEY: &str = "a-new-platform-key-0123456789abcdef";

#[sqlx::test]
async fn a_new_platform_key_at_start_up_revokes_the_previous_one(pool: PgPool) {
    let first = TestServer::start(pool.clone()).await;
    let made_with_the_cli = NewKey::generate().unwrap();
    let mut conn = pool.acquire().await.unwrap();
    eventgate::store::keys::insert(
        &mut conn,
        &made_with_the_cli.hash,
        Role::Platform.as_str(),
        None,
        None,
    )
    .await
    .unwrap();
    drop(conn);
    assert_eq!(
        first.get("/destinations", PLATFORM_KEY).await.status(),
        StatusCode::OK
    );
    drop(first);

    let restarted = TestServer::start_with(pool, with_platform_key(NEW_PLATFORM_KEY)).await;
    assert_eq!(
        restarted.get("/destinations", PLATFORM_KEY).await.status(),
        StatusCode::UNAUTHORIZED,
        "the old configured key is revoked"
    );
    assert_eq!(
        restarted
            .get("/destinations", NEW_PLATFORM_KEY)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        restarted
            .get("/destinations", &made_with_the_cli.secret)
            .await
            .status(),
        StatusCode::OK,
        "keys made with the CLI or the API are not touched"
    );
    let tenant = restarted
        .post(
            "/platform/tenants",
            NEW_PLATFORM_KEY,
            &json!({"id": "acme", "name": "Acme"}),
        )
        .await;
    assert_eq!(tenant.status(), StatusCode::CREATED);
}

#[sqlx::test]
async fn a_revoked_platform_key_stays_revoked_and_revokes_nothing(pool: PgPool) {
    let first = TestServer::start(pool.clone()).await;
    drop(first);
    sqlx::query("UPDATE api_keys SET revoked_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE api_keys SET revoked_at = NULL WHERE configured")
        .execute(&pool)
        .await
        .unwrap();
    // Start with a key that was revoked: refused, and the configured key is left alone.
    let revoked = NewKey::generate().unwrap();
    sqlx::query("INSERT INTO api_keys (id, key_hash, role, revoked_at) VALUES (gen_random_uuid(), $1, 'platform', now())")
        .bind(&revoked.hash)
        .execute(&pool)
        .await
        .unwrap();
    let refused = AppState::start(pool.clone(), with_platform_key(&revoked.secret)).await;
    assert!(matches!(refused, Err(StartupError::PlatformKeyRevoked)));
    let still_valid: bool =
        sqlx::query_scalar("SELECT revoked_at IS NULL FROM api_keys WHERE configured")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(still_valid, "a refused start changes nothing");
}

#[sqlx::test]
async fn a_database_whose_transaction_ids_went_back_is_refused(pool: PgPool) {
    // What a restore from pg_dump into a new cluster looks like: stored positions ahead of
    // every transaction id the cluster will hand out for a long time.
    sqlx::query("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO outbox (id, tenant_id, tx_id, event_type, entity, entity_id, change, created, envelope)
         VALUES (gen_random_uuid(), 'acme',
                 (pg_snapshot_xmax(pg_current_snapshot())::text::numeric + 5000000)::text::xid8,
                 'portfolios.creation', 'Portfolio', 'P1', 'Created', now(), '{}')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let started = AppState::start(pool, config(&[])).await;
    let Err(err) = started else {
        panic!("a rewound database was served");
    };
    assert!(
        matches!(err, StartupError::TransactionIdsRewound(_)),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("pg_resetwal -e 0 -x "), "{message}");
    assert!(message.contains("OPERATIONS.md"), "{message}");
}
