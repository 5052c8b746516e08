//! The `deposits` table.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DepositRow {
    pub id: Uuid,
    pub portfolio_id: String,
    pub amount: Decimal,
    pub currency: String,
    pub created: DateTime<Utc>,
}

pub struct NewDeposit<'a> {
    pub id: Uuid,
    pub tenant: &'a str,
    pub portfolio: &'a str,
    pub amount: Decimal,
    pub currency: &'a str,
    pub event_id: Uuid,
    pub created: DateTime<Utc>,
}

#[tracing::instrument(skip_all)]
pub async fn insert(conn: &mut PgConnection, d: &NewDeposit<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO deposits (tenant_id, id, portfolio_id, amount, currency, event_id, created)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(d.tenant)
    .bind(d.id)
    .bind(d.portfolio)
    .bind(d.amount)
    .bind(d.currency)
    .bind(d.event_id)
    .bind(d.created)
    .execute(conn)
    .await?;
    Ok(())
}

#[tracing::instrument(skip_all)]
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant: &str,
    id: Uuid,
) -> Result<Option<DepositRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, portfolio_id, amount, currency, created FROM deposits
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(db)
    .await
}
