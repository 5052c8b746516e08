//! The outbox's size for `GET /metrics`: counted while the table is small, estimated from
//! PostgreSQL's statistics and the table's pages once it is large, so that a scrape never
//! scans a large outbox. Autovacuum is off for the outbox here, so the statistics and the
//! pages are only what each test makes them.

use eventgate::store::outbox::{EXACT_COUNT_BELOW, summary};
use sqlx::PgPool;

use crate::outbox_rows::{acme_without_autovacuum, append_acme_events as append_events};

async fn execute(pool: &PgPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap();
}

#[sqlx::test]
async fn a_small_outbox_is_counted_exactly_even_past_its_statistics(pool: PgPool) {
    acme_without_autovacuum(&pool).await;
    append_events(&pool, 10).await;
    execute(&pool, "ANALYZE outbox").await;
    append_events(&pool, 990).await;
    assert_eq!(summary(&pool).await.unwrap().events, 1000);
    execute(&pool, "DELETE FROM outbox WHERE entity_id <> 'P1'").await;
    assert_eq!(
        summary(&pool).await.unwrap().events,
        2,
        "deleted rows are not counted"
    );
}

#[sqlx::test]
async fn a_large_outbox_is_estimated_from_its_statistics_and_pages(pool: PgPool) {
    acme_without_autovacuum(&pool).await;
    let analyzed = EXACT_COUNT_BELOW as i64 + 20_000;
    append_events(&pool, analyzed).await;
    execute(&pool, "ANALYZE outbox").await;
    // Grown by a quarter since the statistics: the estimate follows the table's pages.
    let held = analyzed + analyzed / 4;
    append_events(&pool, held - analyzed).await;
    let estimated = summary(&pool).await.unwrap().events;
    let off = (estimated - held).abs() as f64 / held as f64;
    assert!(off < 0.05, "estimated {estimated} for {held} events");

    // Proof that it is not a count: deleted rows keep their pages until VACUUM, and so
    // keep counting; after VACUUM (and its new statistics) they no longer do.
    execute(&pool, "DELETE FROM outbox").await;
    let after_delete = summary(&pool).await.unwrap().events;
    assert!(
        after_delete > analyzed,
        "estimated {after_delete} after deleting every row"
    );
    execute(&pool, "VACUUM ANALYZE outbox").await;
    assert_eq!(summary(&pool).await.unwrap().events, 0);
}
