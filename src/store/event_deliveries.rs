//! Where one event went: its place in the feed, and what each webhook destination did with
//! it (its delivery and attempts). The bus destinations need no rows: their position says.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::position::{Position, Xid8};
use super::webhook_attempts::AttemptRow;

/// An event's place in its tenant's feed and its type.
#[derive(Debug)]
pub struct PlacedEvent {
    pub position: Position,
    pub event_type: String,
}

#[tracing::instrument(skip_all)]
pub async fn place(
    db: impl PgExecutor<'_>,
    tenant: &str,
    id: Uuid,
) -> Result<Option<PlacedEvent>, sqlx::Error> {
    let row: Option<(Xid8, i64, String)> = sqlx::query_as(
        "SELECT tx_id, seq, event_type FROM outbox WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(tx_id, seq, event_type)| PlacedEvent {
        position: Position::new(tx_id, seq),
        event_type,
    }))
}

/// One webhook destination's delivery of a message.
#[derive(Debug, sqlx::FromRow)]
pub struct WebhookDelivery {
    pub destination_id: Uuid,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
}

/// The deliveries of `message_id` at each of `destinations` that has one.
#[tracing::instrument(skip_all)]
pub async fn webhook_deliveries(
    db: impl PgExecutor<'_>,
    destinations: &[Uuid],
    message_id: &str,
) -> Result<Vec<WebhookDelivery>, sqlx::Error> {
    sqlx::query_as(
        "SELECT destination_id, status, attempts, next_attempt_at FROM webhook_deliveries
         WHERE destination_id = ANY ($1) AND message_id = $2",
    )
    .bind(destinations)
    .bind(message_id)
    .fetch_all(db)
    .await
}

/// An attempt and the destination it was made at.
#[derive(Debug, sqlx::FromRow)]
pub struct DestinationAttempt {
    pub destination_id: Uuid,
    #[sqlx(flatten)]
    pub attempt: AttemptRow,
}

/// The latest `limit` attempts of `message_id` at `destinations`, oldest first.
#[tracing::instrument(skip_all)]
pub async fn webhook_attempts(
    db: impl PgExecutor<'_>,
    destinations: &[Uuid],
    message_id: &str,
    limit: i64,
) -> Result<Vec<DestinationAttempt>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM (
             SELECT destination_id, id, message_id, attempted_at, status, response_status,
                    duration_ms, error, response_excerpt, request_headers
             FROM webhook_attempts
             WHERE destination_id = ANY ($1) AND message_id = $2
             ORDER BY id DESC LIMIT $3
         ) latest ORDER BY id",
    )
    .bind(destinations)
    .bind(message_id)
    .bind(limit)
    .fetch_all(db)
    .await
}
