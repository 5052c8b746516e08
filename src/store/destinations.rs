//! The `destinations` table: settings, and delivery progress in feed order.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::feed::cursor::Position;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DestinationRow {
    pub id: Uuid,
    pub tenant_id: String,
    pub kind: String,
    pub config: Value,
    pub types: Vec<String>,
    pub enabled: bool,
    pub delivered_tx: String,
    pub delivered_seq: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub secret: Option<String>,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
}

impl DestinationRow {
    pub fn delivered(&self) -> Result<Position, sqlx::Error> {
        let tx_id = self
            .delivered_tx
            .parse()
            .map_err(|e: std::num::ParseIntError| sqlx::Error::Decode(Box::new(e)))?;
        Ok(Position {
            tx_id,
            seq: self.delivered_seq,
        })
    }
}

const COLUMNS: &str =
    "id, tenant_id, kind, config, types, enabled, delivered_tx::text AS delivered_tx,
    delivered_seq, last_error, last_error_at, failing_since, last_success_at, created, updated,
    secret, previous_secret, previous_secret_until, disabled_reason";

pub struct NewDestination<'a> {
    pub tenant: &'a str,
    pub kind: &'a str,
    pub config: &'a Value,
    pub types: &'a [String],
    pub enabled: bool,
    /// Webhooks only: the signing secret.
    pub secret: Option<&'a str>,
}

/// Inserts a destination that starts at the feed's current horizon: it delivers what
/// commits from now on (use replay for older events).
#[tracing::instrument(skip_all)]
pub async fn insert(
    db: impl PgExecutor<'_>,
    d: &NewDestination<'_>,
) -> Result<DestinationRow, sqlx::Error> {
    // The first heartbeat is due one interval after creation, not at once.
    sqlx::query_as(&format!(
        "INSERT INTO destinations (id, tenant_id, kind, config, types, enabled, delivered_tx, delivered_seq,
                                   secret, last_heartbeat_at)
         VALUES ($1, $2, $3, $4, $5, $6,
                 (pg_snapshot_xmin(pg_current_snapshot())::text::numeric - 1)::text::xid8,
                 9223372036854775807, $7, now())
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(d.tenant)
    .bind(d.kind)
    .bind(d.config)
    .bind(d.types)
    .bind(d.enabled)
    .bind(d.secret)
    .fetch_one(db)
    .await
}

/// One destination; `tenant` `None` means any tenant (platform).
#[tracing::instrument(skip_all)]
pub async fn get(
    db: impl PgExecutor<'_>,
    id: Uuid,
    tenant: Option<&str>,
) -> Result<Option<DestinationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM destinations WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(db)
    .await
}

#[tracing::instrument(skip_all)]
pub async fn list(
    db: impl PgExecutor<'_>,
    tenant: Option<&str>,
) -> Result<Vec<DestinationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM destinations WHERE ($1::text IS NULL OR tenant_id = $1)
         ORDER BY created, id LIMIT 1000"
    ))
    .bind(tenant)
    .fetch_all(db)
    .await
}

/// Ids of destinations with work, for the relay supervisor: the enabled ones, and disabled
/// webhooks that still have lifecycle messages (`Deactivated`) to send.
#[tracing::instrument(skip_all)]
pub async fn enabled_ids(db: impl PgExecutor<'_>) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM destinations d
         WHERE enabled OR EXISTS (SELECT 1 FROM webhook_deliveries w
                                  WHERE w.destination_id = d.id AND w.status = 'pending'
                                    AND w.event_id IS NULL)
         ORDER BY id",
    )
    .fetch_all(db)
    .await
}

/// Replaces the signing secret; the old one keeps signing until `previous_until`.
#[tracing::instrument(skip_all)]
pub async fn rotate_secret(
    db: impl PgExecutor<'_>,
    id: Uuid,
    secret: &str,
    previous_until: DateTime<Utc>,
) -> Result<Option<DestinationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE destinations SET previous_secret = secret, previous_secret_until = $3, secret = $2,
                updated = now()
         WHERE id = $1 AND kind = 'webhook' RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(secret)
    .bind(previous_until)
    .fetch_optional(db)
    .await
}

#[tracing::instrument(skip_all)]
pub async fn update_settings(
    db: impl PgExecutor<'_>,
    id: Uuid,
    config: &Value,
    types: &[String],
    enabled: bool,
) -> Result<Option<DestinationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE destinations SET config = $2, types = $3, enabled = $4, updated = now(),
                disabled_reason = CASE WHEN $4 THEN NULL ELSE disabled_reason END,
                failing_since = CASE WHEN $4 AND NOT enabled THEN NULL ELSE failing_since END
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(config)
    .bind(types)
    .bind(enabled)
    .fetch_optional(db)
    .await
}

#[tracing::instrument(skip_all)]
pub async fn delete(
    db: impl PgExecutor<'_>,
    id: Uuid,
    tenant: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "DELETE FROM destinations WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)",
    )
    .bind(id)
    .bind(tenant)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Moves the delivered position from `from` to `to` and records the success; `false` when
/// the position was changed meanwhile (a replay), so the caller re-reads it.
#[tracing::instrument(skip_all)]
pub async fn advance(
    db: impl PgExecutor<'_>,
    id: Uuid,
    from: Position,
    to: Position,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE destinations
         SET delivered_tx = $4::text::xid8, delivered_seq = $5, last_success_at = now(),
             last_error = NULL, failing_since = NULL
         WHERE id = $1 AND delivered_tx = $2::text::xid8 AND delivered_seq = $3",
    )
    .bind(id)
    .bind(from.tx_id.to_string())
    .bind(from.seq)
    .bind(to.tx_id.to_string())
    .bind(to.seq)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Records a delivery failure (the message only: URLs are never put in errors).
#[tracing::instrument(skip_all)]
pub async fn record_error(
    db: impl PgExecutor<'_>,
    id: Uuid,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE destinations SET last_error = $2, last_error_at = now(),
                failing_since = coalesce(failing_since, now())
         WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}

/// Sets the delivered position (replay).
#[tracing::instrument(skip_all)]
pub async fn set_position(
    db: impl PgExecutor<'_>,
    id: Uuid,
    to: Position,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE destinations SET delivered_tx = $2::text::xid8, delivered_seq = $3, updated = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(to.tx_id.to_string())
    .bind(to.seq)
    .execute(db)
    .await?;
    Ok(())
}

/// The position just before the tenant's first event created at or after `since`, or
/// `None` when there is no such event.
#[tracing::instrument(skip_all)]
pub async fn position_before(
    db: impl PgExecutor<'_>,
    tenant: &str,
    since: DateTime<Utc>,
) -> Result<Option<Position>, sqlx::Error> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT tx_id::text, seq FROM outbox WHERE tenant_id = $1 AND created >= $2
         ORDER BY outbox.tx_id, outbox.seq LIMIT 1",
    )
    .bind(tenant)
    .bind(since)
    .fetch_optional(db)
    .await?;
    row.map(|(tx, seq)| {
        let tx_id: u64 = tx
            .parse()
            .map_err(|e: std::num::ParseIntError| sqlx::Error::Decode(Box::new(e)))?;
        Ok(Position {
            tx_id,
            seq: seq - 1,
        })
    })
    .transpose()
}

/// How many of the tenant's events (of `types`, all when empty) lie after `after`.
#[tracing::instrument(skip_all)]
pub async fn lag(
    db: impl PgExecutor<'_>,
    tenant: &str,
    after: Position,
    types: &[String],
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM outbox
         WHERE tenant_id = $1 AND (tx_id, seq) > ($2::text::xid8, $3)
           AND (cardinality($4::text[]) = 0 OR event_type = ANY ($4))",
    )
    .bind(tenant)
    .bind(after.tx_id.to_string())
    .bind(after.seq)
    .bind(types)
    .fetch_one(db)
    .await
}
