//! The `deposits` table.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::position::{Position, Xid8};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DepositRow {
    pub id: Uuid,
    pub portfolio_id: String,
    pub amount: Decimal,
    pub currency: String,
    pub created: DateTime<Utc>,
    /// Its `portfolios.funding` event.
    pub event_id: Uuid,
    /// That event's place in the feed, while the feed keeps it.
    event_tx: Option<Xid8>,
    event_seq: Option<i64>,
}

impl DepositRow {
    /// Where the funding event is in the feed; `None` once retention purged it.
    pub fn event_position(&self) -> Option<Position> {
        Some(Position::new(self.event_tx?, self.event_seq?))
    }
}

const SELECT: &str = "SELECT d.id, d.portfolio_id, d.amount, d.currency, d.created, d.event_id,
                             o.tx_id AS event_tx, o.seq AS event_seq
                      FROM deposits d
                      LEFT JOIN outbox o ON o.tenant_id = d.tenant_id AND o.id = d.event_id";

#[tracing::instrument(skip_all)]
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant: &str,
    id: Uuid,
) -> Result<Option<DepositRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE d.tenant_id = $1 AND d.id = $2"))
        .bind(tenant)
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The deposits made with `key`, newest first (a key may be used again once expired).
#[tracing::instrument(skip_all)]
pub async fn with_key(
    db: impl PgExecutor<'_>,
    tenant: &str,
    key: &str,
) -> Result<Vec<DepositRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE d.tenant_id = $1 AND d.idempotency_key = $2
         ORDER BY d.created DESC, d.id DESC LIMIT 100"
    ))
    .bind(tenant)
    .bind(key)
    .fetch_all(db)
    .await
}

/// One page of the tenant's deposits ordered by id (time-ordered UUIDs), after `after`.
#[tracing::instrument(skip_all)]
pub async fn list(
    db: impl PgExecutor<'_>,
    tenant: &str,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DepositRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE d.tenant_id = $1 AND ($2::uuid IS NULL OR d.id > $2)
         ORDER BY d.id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}
