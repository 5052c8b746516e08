//! Webhook deliveries (a queue with retry state) and attempts.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::feed::cursor::Position;

/// An outbox event with what the entity format needs.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    pub position: Position,
    pub id: Uuid,
    pub entity: String,
    pub entity_id: String,
    pub change: String,
    pub created: DateTime<Utc>,
    pub envelope: String,
}

type EventRow = (
    String,
    i64,
    Uuid,
    String,
    String,
    String,
    DateTime<Utc>,
    String,
);

/// The tenant's events after `after`, under the feed's rule: only transactions below the
/// snapshot's xmin, so the order is final (see `crate::feed`).
#[tracing::instrument(skip_all)]
pub async fn read_events(
    db: impl PgExecutor<'_>,
    tenant: &str,
    after: Position,
    types: Option<&[String]>,
    limit: i64,
) -> Result<Vec<WebhookEvent>, sqlx::Error> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT tx_id::text, seq, id, entity, entity_id, change, created, envelope FROM outbox
         WHERE tenant_id = $1 AND (tx_id, seq) > ($2::text::xid8, $3)
           AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
           AND ($4::text[] IS NULL OR event_type = ANY ($4))
         ORDER BY tx_id, seq LIMIT $5",
    )
    .bind(tenant)
    .bind(after.tx_id.to_string())
    .bind(after.seq)
    .bind(types)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(
            |(tx, seq, id, entity, entity_id, change, created, envelope)| {
                let tx_id = tx
                    .parse()
                    .map_err(|e: std::num::ParseIntError| sqlx::Error::Decode(Box::new(e)))?;
                Ok(WebhookEvent {
                    position: Position { tx_id, seq },
                    id,
                    entity,
                    entity_id,
                    change,
                    created,
                    envelope,
                })
            },
        )
        .collect()
}

/// A message to queue for one destination.
pub struct NewDelivery<'a> {
    pub message_id: &'a str,
    pub event_id: Option<Uuid>,
    pub entity: Option<&'a str>,
    pub entity_id: Option<&'a str>,
    pub change: Option<&'a str>,
    pub payload: &'a str,
    /// Replace a not-yet-delivered `Updated` of the same entity (entity format only).
    pub coalesce: bool,
}

/// Queues one message (a re-queued message starts over).
#[tracing::instrument(skip_all)]
pub async fn queue(
    conn: &mut PgConnection,
    destination: Uuid,
    d: &NewDelivery<'_>,
) -> Result<(), sqlx::Error> {
    if d.coalesce {
        sqlx::query(
            "DELETE FROM webhook_deliveries
             WHERE destination_id = $1 AND status = 'pending' AND change = 'Updated'
               AND entity = $2 AND entity_id = $3",
        )
        .bind(destination)
        .bind(d.entity)
        .bind(d.entity_id)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "INSERT INTO webhook_deliveries (destination_id, message_id, event_id, entity, entity_id, change, payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (destination_id, message_id) DO UPDATE
             SET status = 'pending', attempts = 0, next_attempt_at = now(),
                 payload = EXCLUDED.payload, updated = now()",
    )
    .bind(destination)
    .bind(d.message_id)
    .bind(d.event_id)
    .bind(d.entity)
    .bind(d.entity_id)
    .bind(d.change)
    .bind(d.payload)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the destination's feed position (only), `false` if it changed meanwhile.
#[tracing::instrument(skip_all)]
pub async fn advance(
    conn: &mut PgConnection,
    destination: Uuid,
    from: Position,
    to: Position,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE destinations SET delivered_tx = $4::text::xid8, delivered_seq = $5
         WHERE id = $1 AND delivered_tx = $2::text::xid8 AND delivered_seq = $3",
    )
    .bind(destination)
    .bind(from.tx_id.to_string())
    .bind(from.seq)
    .bind(to.tx_id.to_string())
    .bind(to.seq)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub id: i64,
    pub message_id: String,
    pub payload: String,
    pub attempts: i32,
}

/// Pending deliveries whose time has come, oldest first, skipping those in flight.
#[tracing::instrument(skip_all)]
pub async fn due(
    db: impl PgExecutor<'_>,
    destination: Uuid,
    in_flight: &[i64],
    lifecycle_only: bool,
    limit: i64,
) -> Result<Vec<DueDelivery>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, message_id, payload, attempts FROM webhook_deliveries
         WHERE destination_id = $1 AND status = 'pending' AND next_attempt_at <= now()
           AND NOT (id = ANY ($2)) AND (NOT $3 OR event_id IS NULL)
         ORDER BY next_attempt_at, id LIMIT $4",
    )
    .bind(destination)
    .bind(in_flight)
    .bind(lifecycle_only)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The outcome of one attempt, to record.
pub struct AttemptRecord<'a> {
    pub destination: Uuid,
    pub delivery: i64,
    pub message_id: &'a str,
    pub succeeded: bool,
    pub response_status: Option<i32>,
    pub duration_ms: i32,
    pub error: Option<&'a str>,
    pub excerpt: Option<&'a str>,
    /// `None`: no further attempt (delivered, or failed for good).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Records the attempt and moves the delivery on, in one transaction.
#[tracing::instrument(skip_all)]
pub async fn record_attempt(pool: &sqlx::PgPool, a: &AttemptRecord<'_>) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO webhook_attempts (destination_id, message_id, status, response_status, duration_ms, error, response_excerpt)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(a.destination)
    .bind(a.message_id)
    .bind(if a.succeeded { "succeeded" } else { "failed" })
    .bind(a.response_status)
    .bind(a.duration_ms)
    .bind(a.error)
    .bind(a.excerpt)
    .execute(&mut *tx)
    .await?;
    let status = match (a.succeeded, a.next_attempt_at) {
        (true, _) => "delivered",
        (false, Some(_)) => "pending",
        (false, None) => "failed",
    };
    sqlx::query(
        "UPDATE webhook_deliveries
         SET status = $2, attempts = attempts + 1, next_attempt_at = coalesce($3, next_attempt_at), updated = now()
         WHERE id = $1",
    )
    .bind(a.delivery)
    .bind(status)
    .bind(a.next_attempt_at)
    .execute(&mut *tx)
    .await?;
    if a.succeeded {
        sqlx::query(
            "UPDATE destinations SET last_success_at = now(), last_error = NULL, failing_since = NULL
             WHERE id = $1",
        )
        .bind(a.destination)
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(
            "UPDATE destinations SET last_error = $2, last_error_at = now(),
                    failing_since = coalesce(failing_since, now())
             WHERE id = $1",
        )
        .bind(a.destination)
        .bind(a.error)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Disables a destination with the reason shown in its status.
#[tracing::instrument(skip_all)]
pub async fn disable(
    db: impl PgExecutor<'_>,
    destination: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE destinations SET enabled = false, disabled_reason = $2, updated = now() WHERE id = $1")
        .bind(destination)
        .bind(reason)
        .execute(db)
        .await?;
    Ok(())
}

/// Marks a heartbeat as queued now; `false` if another was queued within `interval`.
#[tracing::instrument(skip_all)]
pub async fn claim_heartbeat(
    conn: &mut PgConnection,
    destination: Uuid,
    interval_secs: f64,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE destinations SET last_heartbeat_at = now()
         WHERE id = $1 AND (last_heartbeat_at IS NULL
                            OR last_heartbeat_at <= now() - make_interval(secs => $2))",
    )
    .bind(destination)
    .bind(interval_secs)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Puts one event's delivery back in the queue for an immediate attempt.
#[tracing::instrument(skip_all)]
pub async fn retry_now(
    db: impl PgExecutor<'_>,
    destination: Uuid,
    event_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), updated = now()
         WHERE destination_id = $1 AND event_id = $2",
    )
    .bind(destination)
    .bind(event_id)
    .execute(db)
    .await?;
    Ok(result.rows_affected() > 0)
}

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct AttemptRow {
    pub id: i64,
    pub message_id: String,
    pub attempted_at: DateTime<Utc>,
    pub status: String,
    pub response_status: Option<i32>,
    pub duration_ms: i32,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn attempts(
    db: impl PgExecutor<'_>,
    destination: Uuid,
    after: Option<i64>,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<AttemptRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, message_id, attempted_at, status, response_status, duration_ms, error, response_excerpt
         FROM webhook_attempts
         WHERE destination_id = $1 AND ($2::bigint IS NULL OR id > $2) AND ($3::text IS NULL OR status = $3)
         ORDER BY id LIMIT $4",
    )
    .bind(destination)
    .bind(after)
    .bind(status)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Pending and failed deliveries of a destination.
#[tracing::instrument(skip_all)]
pub async fn counts(db: impl PgExecutor<'_>, destination: Uuid) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'failed')
         FROM webhook_deliveries WHERE destination_id = $1",
    )
    .bind(destination)
    .fetch_one(db)
    .await
}
