//! What may be purged: per tenant, the outbox up to a bound, below a watermark that
//! readers check; and webhook history past its retention.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::position::{Position, Xid8};

/// How far one tenant's feed may be purged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantBound {
    pub tenant: String,
    pub through: Position,
}

#[derive(sqlx::FromRow)]
struct BoundRow {
    tenant: String,
    xmin: Xid8,
    aged_tx: Xid8,
    aged_seq: i64,
    slowest_tx: Option<Xid8>,
    slowest_seq: Option<i64>,
}

/// For each tenant with events created before `cutoff`: the position of its most recently
/// created such event, but never past what one of its enabled destinations has yet to
/// confirm, and only among finished transactions. Another tenant's destinations never
/// matter. A destination down for longer than the retention keeps its tenant's events.
#[tracing::instrument(skip_all)]
pub async fn bounds(
    db: impl PgExecutor<'_>,
    cutoff: DateTime<Utc>,
) -> Result<Vec<TenantBound>, sqlx::Error> {
    // `outbox_tenant_created` makes the aged probe one index step per tenant.
    let rows: Vec<BoundRow> = sqlx::query_as(
        "SELECT t.id AS tenant, pg_snapshot_xmin(pg_current_snapshot()) AS xmin,
                aged.tx_id AS aged_tx, aged.seq AS aged_seq,
                slowest.delivered_tx AS slowest_tx, slowest.delivered_seq AS slowest_seq
         FROM tenants t
         CROSS JOIN LATERAL (
             SELECT tx_id, seq FROM outbox o
             WHERE o.tenant_id = t.id AND o.created < $1
             ORDER BY o.created DESC LIMIT 1
         ) aged
         LEFT JOIN LATERAL (
             SELECT delivered_tx, delivered_seq FROM destinations d
             WHERE d.tenant_id = t.id AND d.enabled
             ORDER BY d.delivered_tx, d.delivered_seq LIMIT 1
         ) slowest ON true",
    )
    .bind(cutoff)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|row| row.aged_tx < row.xmin)
        .map(|row| {
            let aged = Position::new(row.aged_tx, row.aged_seq);
            let slowest = row
                .slowest_tx
                .zip(row.slowest_seq)
                .map(|(tx, seq)| Position::new(tx, seq));
            TenantBound {
                tenant: row.tenant,
                through: slowest.map_or(aged, |slowest| slowest.min(aged)),
            }
        })
        .collect())
}

/// Raises `tenant`'s purge watermark to `through` (never lowers it).
#[tracing::instrument(skip_all)]
pub async fn raise_watermark(
    db: impl PgExecutor<'_>,
    tenant: &str,
    through: Position,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox_watermarks (tenant_id, tx_id, seq) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET tx_id = EXCLUDED.tx_id, seq = EXCLUDED.seq
         WHERE (outbox_watermarks.tx_id, outbox_watermarks.seq) < (EXCLUDED.tx_id, EXCLUDED.seq)",
    )
    .bind(tenant)
    .bind(through.xid())
    .bind(through.seq)
    .execute(db)
    .await?;
    Ok(())
}

/// `tenant`'s purge watermark, if anything was ever purged.
#[tracing::instrument(skip_all)]
pub async fn watermark(
    db: impl PgExecutor<'_>,
    tenant: &str,
) -> Result<Option<Position>, sqlx::Error> {
    let row: Option<(Xid8, i64)> =
        sqlx::query_as("SELECT tx_id, seq FROM outbox_watermarks WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(tx, seq)| Position::new(tx, seq)))
}

/// Deletes up to `batch` of `tenant`'s events at or before `through`; returns how many.
#[tracing::instrument(skip_all)]
pub async fn purge_through(
    db: impl PgExecutor<'_>,
    tenant: &str,
    through: Position,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "DELETE FROM outbox WHERE ctid = ANY (ARRAY(
             SELECT ctid FROM outbox
             WHERE tenant_id = $1 AND (tx_id, seq) <= ($2, $3) LIMIT $4))",
    )
    .bind(tenant)
    .bind(through.xid())
    .bind(through.seq)
    .bind(batch)
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}

/// Deletes up to `batch` webhook attempts made before `cutoff`; returns how many.
#[tracing::instrument(skip_all)]
pub async fn purge_webhook_attempts(
    db: impl PgExecutor<'_>,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "DELETE FROM webhook_attempts WHERE id = ANY (ARRAY(
             SELECT id FROM webhook_attempts WHERE attempted_at < $1
             ORDER BY attempted_at LIMIT $2))",
    )
    .bind(cutoff)
    .bind(batch)
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}

/// Deletes up to `batch` webhook deliveries that finished (delivered, or failed for good)
/// before `cutoff`, payload and all; pending ones are never touched. Returns how many.
#[tracing::instrument(skip_all)]
pub async fn purge_webhook_deliveries(
    db: impl PgExecutor<'_>,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "DELETE FROM webhook_deliveries WHERE id = ANY (ARRAY(
             SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND updated < $1
             ORDER BY updated LIMIT $2))",
    )
    .bind(cutoff)
    .bind(batch)
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}
