//! Appending to the outbox, and its size for monitoring. Reading it in feed order lives in
//! `store::feed`.

use sqlx::{PgConnection, PgExecutor};

use super::position::{Position, Xid8};
use crate::catalogue::{Change, Entity, Envelope, EventType};
use crate::telemetry::trace_context::TraceContext;

/// An event as appended: the stored envelope text and its place in the feed.
#[derive(Debug, Clone)]
pub struct Appended {
    pub envelope: String,
    pub position: Position,
}

/// Appends one event in the caller's transaction, with the trace context it carries to
/// its deliveries.
#[tracing::instrument(skip_all, fields(event_type = %ty))]
pub async fn append(
    conn: &mut PgConnection,
    tenant: &str,
    ty: EventType,
    entity: Entity,
    change: Change,
    envelope: &Envelope<'_>,
    trace: Option<&TraceContext>,
) -> Result<Appended, sqlx::Error> {
    #[cfg(debug_assertions)]
    assert_writing(conn, tenant).await?;
    let json = envelope
        .to_json()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let (tx_id, seq): (Xid8, i64) = sqlx::query_as(
        "INSERT INTO outbox (id, tenant_id, event_type, entity, entity_id, change, created, envelope,
                             trace_parent, trace_state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         RETURNING tx_id, seq",
    )
    .bind(envelope.id)
    .bind(tenant)
    .bind(ty.name())
    .bind(entity.as_str())
    .bind(envelope.data.entity_id().as_str())
    .bind(change.as_str())
    .bind(envelope.created)
    .bind(&json)
    .bind(trace.map(|t| t.traceparent.as_str()))
    .bind(trace.and_then(|t| t.tracestate.as_deref()))
    .fetch_one(conn)
    .await?;
    Ok(Appended {
        envelope: json,
        position: Position::new(tx_id, seq),
    })
}

/// The advisory lock key of `tenant`'s outbox writers: every transaction that may append
/// to a tenant's outbox holds it shared from before its first write; a snapshot
/// (`store::snapshots`) takes it exclusively for an instant, so that no writer of the
/// tenant is in progress when its snapshot is taken (see `crate::snapshots`).
pub fn writers_key(tenant: &str) -> String {
    format!("eventgate/outbox-writers/{tenant}")
}

/// Opens a write that appends to `tenant`'s outbox without entity locks (eventgate's own
/// delivery health events): the writers' lock, shared, before the first write.
#[tracing::instrument(skip_all)]
pub async fn begin_writing(conn: &mut PgConnection, tenant: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))")
        .bind(writers_key(tenant))
        .execute(conn)
        .await?;
    Ok(())
}

/// Debug builds check every append holds its tenant's writers' lock: a writer that forgot
/// it could slip an event under a snapshot's cursor.
#[cfg(debug_assertions)]
async fn assert_writing(conn: &mut PgConnection, tenant: &str) -> Result<(), sqlx::Error> {
    let held: bool = sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM pg_locks
             WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND mode = 'ShareLock'
               AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0))",
    )
    .bind(writers_key(tenant))
    .fetch_one(conn)
    .await?;
    assert!(
        held,
        "an outbox append for '{tenant}' without its writers' lock"
    );
    Ok(())
}

/// How much the outbox holds, for monitoring.
#[derive(Debug, sqlx::FromRow)]
pub struct Summary {
    /// Events held: exact below [`EXACT_COUNT_BELOW`], estimated above it.
    pub events: i64,
    /// Seconds since the oldest held event was created; `None` when the outbox is empty.
    pub oldest_age_secs: Option<f64>,
}

/// Up to this many rows (by the table's last statistics) the outbox is counted; above,
/// its size is estimated as PostgreSQL's planner estimates it, from the rows per page of
/// the last statistics and the table's pages now. Counting is a scan of the whole table:
/// at every scrape of a million-row outbox it took over a second (docs/BENCHMARKS.md,
/// twenty-first section). Rows deleted by a purge still count until VACUUM frees their
/// pages, which autovacuum does after a purge.
pub const EXACT_COUNT_BELOW: f32 = 100_000.0;

/// The outbox's size and age, in two index or catalogue look-ups once it is large.
#[tracing::instrument(skip_all)]
pub async fn summary(db: impl PgExecutor<'_>) -> Result<Summary, sqlx::Error> {
    // The count is an InitPlan, run only if the CASE reaches it.
    sqlx::query_as(
        "SELECT CASE WHEN c.relpages > 0 AND c.reltuples >= $1
                     THEN (c.reltuples / c.relpages
                           * (pg_relation_size(c.oid) / current_setting('block_size')::int8))::int8
                     ELSE (SELECT count(*) FROM outbox) END AS events,
                (SELECT extract(epoch FROM now() - created)::float8
                   FROM outbox ORDER BY tx_id, seq LIMIT 1) AS oldest_age_secs
           FROM pg_class c
          WHERE c.oid = 'outbox'::regclass",
    )
    .bind(EXACT_COUNT_BELOW)
    .fetch_one(db)
    .await
}
