//! A new outbox gets its first statistics from eventgate as soon as it holds enough events,
//! not up to a minute later from autovacuum: until then PostgreSQL reads a page through the
//! tenant's whole history (`store::first_statistics`). Autovacuum is turned off for the
//! outbox in these tests, so only eventgate can have analyzed it.

use std::time::{Duration, Instant};

use eventgate::store::first_statistics::{ENOUGH_EVENTS, ensure_outbox_statistics};
use sqlx::PgPool;

use crate::helpers::TestServer;
use crate::outbox_rows::{acme_without_autovacuum, append_acme_events as append_events};

/// `reltuples` is -1 until the table is first analyzed or vacuumed.
async fn outbox_reltuples(pool: &PgPool) -> f32 {
    sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'outbox'::regclass")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn the_outbox_is_analyzed_once_it_holds_enough_events_and_not_before(pool: PgPool) {
    acme_without_autovacuum(&pool).await;
    append_events(&pool, ENOUGH_EVENTS - 1).await;
    assert!(!ensure_outbox_statistics(&pool).await.unwrap());
    assert!(outbox_reltuples(&pool).await < 0.0, "analyzed too early");

    append_events(&pool, 1).await;
    assert!(ensure_outbox_statistics(&pool).await.unwrap());
    assert_eq!(outbox_reltuples(&pool).await, ENOUGH_EVENTS as f32);

    // Once it has statistics, that is all: no second ANALYZE on the first's word.
    append_events(&pool, 10).await;
    assert!(ensure_outbox_statistics(&pool).await.unwrap());
    assert_eq!(outbox_reltuples(&pool).await, ENOUGH_EVENTS as f32);
}

#[sqlx::test]
async fn a_running_server_analyzes_a_new_outbox_by_itself(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    acme_without_autovacuum(&pool).await;
    append_events(&pool, ENOUGH_EVENTS).await;
    // The server looks every second; bounded, so a server that never does fails here.
    let deadline = Instant::now() + Duration::from_secs(30);
    while outbox_reltuples(&pool).await < 0.0 {
        assert!(
            Instant::now() < deadline,
            "the server did not analyze a new outbox of {ENOUGH_EVENTS} events in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(outbox_reltuples(&pool).await, ENOUGH_EVENTS as f32);
    drop(server);
}
