//! The `snapshots` and `snapshot_items` tables: a tenant's read models as one database
//! snapshot saw them, kept for a while, read a page at a time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::position::Xid8;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SnapshotRow {
    pub id: Uuid,
    pub cursor_tx: Xid8,
    pub portfolios: i64,
    pub optimizations: i64,
    pub deposits: i64,
    pub created: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Counts per model.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub portfolios: i64,
    pub optimizations: i64,
    pub deposits: i64,
}

/// Reserves a place for a new snapshot of `tenant` (its row, incomplete until
/// [`complete`]) unless the tenant already holds `limit` unexpired ones; `false` then.
/// Serialized per tenant, so concurrent requests cannot pass the limit together.
#[tracing::instrument(skip_all)]
pub async fn reserve(
    pool: &PgPool,
    id: Uuid,
    tenant: &str,
    limit: u32,
    expires_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("eventgate/snapshots/{tenant}"))
        .execute(&mut *tx)
        .await?;
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM snapshots WHERE tenant_id = $1 AND expires_at > now()",
    )
    .bind(tenant)
    .fetch_one(&mut *tx)
    .await?;
    if open >= i64::from(limit) {
        return Ok(false);
    }
    sqlx::query("INSERT INTO snapshots (id, tenant_id, expires_at) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(tenant)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Gives back the place of a snapshot that could not be taken (its items go with it).
#[tracing::instrument(skip_all)]
pub async fn release(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM snapshots WHERE id = $1 AND NOT complete")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Marks a snapshot complete with its cursor and counts.
#[tracing::instrument(skip_all)]
pub async fn complete(
    db: impl PgExecutor<'_>,
    id: Uuid,
    cursor_tx: Xid8,
    counts: Counts,
) -> Result<SnapshotRow, sqlx::Error> {
    sqlx::query_as(
        "UPDATE snapshots SET cursor_tx = $2, portfolios = $3, optimizations = $4, deposits = $5,
                complete = true
         WHERE id = $1
         RETURNING id, cursor_tx, portfolios, optimizations, deposits, created, expires_at",
    )
    .bind(id)
    .bind(cursor_tx)
    .bind(counts.portfolios)
    .bind(counts.optimizations)
    .bind(counts.deposits)
    .fetch_one(db)
    .await
}

/// Writes a batch of one model's items (key, body) of the started snapshot `id`.
#[tracing::instrument(skip_all, fields(items = items.len()))]
pub async fn insert_items(
    db: impl PgExecutor<'_>,
    id: Uuid,
    model: &str,
    items: &[(String, String)],
) -> Result<(), sqlx::Error> {
    let (keys, bodies): (Vec<&str>, Vec<&str>) =
        items.iter().map(|(k, b)| (k.as_str(), b.as_str())).unzip();
    sqlx::query(
        "INSERT INTO snapshot_items (snapshot_id, model, key, body)
         SELECT $1, $2, * FROM UNNEST($3::text[], $4::text[])",
    )
    .bind(id)
    .bind(model)
    .bind(&keys)
    .bind(&bodies)
    .execute(db)
    .await?;
    Ok(())
}

/// One of `tenant`'s snapshots, expired or not.
#[tracing::instrument(skip_all)]
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant: &str,
    id: Uuid,
) -> Result<Option<SnapshotRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, cursor_tx, portfolios, optimizations, deposits, created, expires_at
         FROM snapshots WHERE tenant_id = $1 AND id = $2 AND complete",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Up to `limit` items of one model of snapshot `id`, by key, after `after`.
#[tracing::instrument(skip_all)]
pub async fn items(
    db: impl PgExecutor<'_>,
    id: Uuid,
    model: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT key, body FROM snapshot_items
         WHERE snapshot_id = $1 AND model = $2 AND ($3::text IS NULL OR key > $3)
         ORDER BY key LIMIT $4",
    )
    .bind(id)
    .bind(model)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Deletes up to `limit` expired snapshots, complete or not (their items go with them); how
/// many went.
#[tracing::instrument(skip_all)]
pub async fn purge_expired(db: impl PgExecutor<'_>, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM snapshots WHERE id IN (
             SELECT id FROM snapshots WHERE expires_at < now() ORDER BY expires_at LIMIT $1)",
    )
    .bind(limit)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Opens a read-only REPEATABLE READ transaction whose snapshot no writer of `tenant`'s
/// outbox is in the middle of, and returns it with the snapshot's xmax. Writers hold the
/// tenant's writers' lock shared from before their first write (`store::writes`,
/// `outbox::begin_writing`); taking it exclusively waits for those under way (at most
/// `wait`) and holds new ones back only until the snapshot is taken. So every event the
/// snapshot sees has a transaction id below its xmax, and every event it does not see, one
/// at or above it: `Position::horizon(xmax)` is a plain feed cursor that follows the
/// snapshot exactly.
#[tracing::instrument(skip_all)]
pub async fn pin(
    pool: &PgPool,
    tenant: &str,
    wait: Duration,
) -> Result<(Transaction<'static, Postgres>, Xid8), sqlx::Error> {
    let mut gate = pool.begin().await?;
    super::idempotency::set_lock_timeout(&mut gate, wait).await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(super::outbox::writers_key(tenant))
        .execute(&mut *gate)
        .await?;
    let mut reader = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *reader)
        .await?;
    // The transaction's snapshot is taken by its first query, this one.
    let xmax: Xid8 = sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())")
        .fetch_one(&mut *reader)
        .await?;
    gate.commit().await?;
    Ok((reader, xmax))
}
