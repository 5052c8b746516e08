//! Appending to the outbox, and its size for monitoring. Reading it in feed order lives in
//! `store::feed`.

use sqlx::{PgConnection, PgExecutor};

use super::position::{Position, Xid8};
use crate::catalogue::{Change, Entity, Envelope, EventType};

/// An event as appended: the stored envelope text and its place in the feed.
#[derive(Debug, Clone)]
pub struct Appended {
    pub envelope: String,
    pub position: Position,
}

/// Appends one event in the caller's transaction.
#[tracing::instrument(skip_all, fields(event_type = %ty))]
pub async fn append(
    conn: &mut PgConnection,
    tenant: &str,
    ty: EventType,
    entity: Entity,
    change: Change,
    envelope: &Envelope<'_>,
) -> Result<Appended, sqlx::Error> {
    let json = envelope
        .to_json()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let (tx_id, seq): (Xid8, i64) = sqlx::query_as(
        "INSERT INTO outbox (id, tenant_id, event_type, entity, entity_id, change, created, envelope)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
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
    .fetch_one(conn)
    .await?;
    Ok(Appended {
        envelope: json,
        position: Position::new(tx_id, seq),
    })
}

/// Serializes writers that touch the same state: takes transaction-scoped advisory locks on
/// `keys` (each `tenant/entity-key`; sorted, so two writers never wait on each other in a cycle). Taken before any
/// write, they also make a later writer get a later transaction id, so per-entity feed order
/// is commit order.
#[tracing::instrument(skip_all)]
pub async fn lock_entities(conn: &mut PgConnection, keys: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(k)
         FROM (SELECT DISTINCT hashtextextended(key, 0) AS k
               FROM unnest($1::text[]) AS key ORDER BY 1) AS locks",
    )
    .bind(keys)
    .execute(conn)
    .await?;
    Ok(())
}

/// How much the outbox holds, for monitoring.
#[derive(Debug, sqlx::FromRow)]
pub struct Summary {
    pub events: i64,
    /// Seconds since the oldest held event was created; `None` when the outbox is empty.
    pub oldest_age_secs: Option<f64>,
}

/// Counts the outbox (a scan: meant for a scrape every few seconds, not per request).
#[tracing::instrument(skip_all)]
pub async fn summary(db: impl PgExecutor<'_>) -> Result<Summary, sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM outbox) AS events,
                (SELECT extract(epoch FROM now() - created)::float8
                   FROM outbox ORDER BY tx_id, seq LIMIT 1) AS oldest_age_secs",
    )
    .fetch_one(db)
    .await
}
