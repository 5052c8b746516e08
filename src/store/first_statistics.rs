//! The outbox's first statistics, taken as soon as it holds enough events to need them.
//!
//! PostgreSQL plans the feed's and the relay's reads from the table's statistics. On an
//! outbox that has never been analyzed its defaults make reading the tenant's rows through
//! `outbox_tenant_created` and sorting them look cheaper than walking
//! `outbox_tenant_position` from the cursor, so every read of a page reads the tenant's
//! whole history (10,000 events: 7.5 ms a read against 0.29 ms; docs/BENCHMARKS.md, ninth
//! section). Autovacuum's first `ANALYZE` ends that, but only up to a minute after the
//! first events; a new installation should not pay for that minute.
//!
//! Since `outbox_tenant_created` became a partial index that only statements bounding
//! `created` can use (tenth section), that plan is gone; the reads' other choices still
//! rest on the table's size and the tenant's share, which only statistics give.

use sqlx::PgPool;

/// Events the outbox holds before it is worth analyzing: below this a read of the
/// tenant's whole history costs little whatever the plan.
pub const ENOUGH_EVENTS: i64 = 1000;

/// Whether the outbox has statistics now: analyzes it when it never has been (nor
/// vacuumed, `reltuples` is then -1) and holds at least [`ENOUGH_EVENTS`] events.
/// `false` while it is still too small to need them.
#[tracing::instrument(skip_all)]
pub async fn ensure_outbox_statistics(pool: &PgPool) -> Result<bool, sqlx::Error> {
    // A count of at most ENOUGH_EVENTS rows, not pg_stat's live-tuple counter, which
    // other sessions report only every second or so.
    let (never_analyzed, events): (bool, i64) = sqlx::query_as(
        "SELECT c.reltuples < 0,
                (SELECT count(*) FROM (SELECT FROM outbox LIMIT $1) AS first_events)
           FROM pg_class c
          WHERE c.oid = 'outbox'::regclass",
    )
    .bind(ENOUGH_EVENTS)
    .fetch_one(pool)
    .await?;
    if !never_analyzed {
        return Ok(true);
    }
    if events < ENOUGH_EVENTS {
        return Ok(false);
    }
    sqlx::query("ANALYZE outbox").execute(pool).await?;
    tracing::info!("analyzed the outbox for the first time");
    Ok(true)
}
