//! The read model the catalogue events describe: portfolios, their funding, optimizations.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgExecutor};

use crate::catalogue::payloads::{
    OptimizationOwnerChoiceUpdate, OptimizationStatusUpdate, PortfolioCreation,
    PortfolioDivestAmountUpdate,
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PortfolioRow {
    pub id: String,
    pub external_id: String,
    pub owned_by_user_id: String,
    pub status: Option<String>,
    pub divest_amount: Option<String>,
    pub divest_currency: Option<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FundingRow {
    pub portfolio_id: String,
    pub currency: String,
    pub total: Decimal,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OptimizationRow {
    pub id: String,
    pub portfolio_id: String,
    pub external_id: String,
    pub status: String,
    pub is_recommended: bool,
    pub owner_choice: Option<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

/// Inserts a portfolio; `false` when it already exists.
#[tracing::instrument(skip_all)]
pub async fn insert_portfolio(
    conn: &mut PgConnection,
    tenant: &str,
    p: &PortfolioCreation,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO portfolios (tenant_id, id, external_id, owned_by_user_id)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(p.id.as_str())
    .bind(p.external_id.as_str())
    .bind(p.owned_by_user_id.as_str())
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The portfolio's status (`Some(None)` when it has none yet); `None` when there is no such
/// portfolio.
#[tracing::instrument(skip_all)]
pub async fn portfolio_status(
    db: impl PgExecutor<'_>,
    tenant: &str,
    id: &str,
) -> Result<Option<Option<String>>, sqlx::Error> {
    sqlx::query_scalar("SELECT status FROM portfolios WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Sets status and external id; `false` when there is no such portfolio.
#[tracing::instrument(skip_all)]
pub async fn set_portfolio_status(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
    external_id: &str,
    status: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE portfolios SET status = $3, external_id = $4, updated = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(status)
    .bind(external_id)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Sets the divest amount (its exact literal); `false` when there is no such portfolio.
#[tracing::instrument(skip_all)]
pub async fn set_divest_amount(
    conn: &mut PgConnection,
    tenant: &str,
    d: &PortfolioDivestAmountUpdate,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE portfolios SET divest_amount = $3, divest_currency = $4, external_id = $5,
                updated = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(d.id.as_str())
    .bind(d.divest_amount.as_literal())
    .bind(d.currency.code())
    .bind(d.external_id.as_str())
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Adds to the portfolio's funded total in `currency` (the portfolio must exist).
#[tracing::instrument(skip_all)]
pub async fn add_funding(
    conn: &mut PgConnection,
    tenant: &str,
    portfolio: &str,
    currency: &str,
    amount: Decimal,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO portfolio_funding (tenant_id, portfolio_id, currency, total)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, portfolio_id, currency)
         DO UPDATE SET total = portfolio_funding.total + EXCLUDED.total",
    )
    .bind(tenant)
    .bind(portfolio)
    .bind(currency)
    .bind(amount)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE portfolios SET updated = now() WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(portfolio)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes a portfolio with its funding and optimizations; `false` when there is none.
#[tracing::instrument(skip_all)]
pub async fn delete_portfolio(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM portfolios WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// The portfolio an optimization belongs to, if the optimization exists.
#[tracing::instrument(skip_all)]
pub async fn optimization_portfolio(
    db: impl PgExecutor<'_>,
    tenant: &str,
    id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT portfolio_id FROM optimizations WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Creates the optimization or updates its status; returns whether it was created.
#[tracing::instrument(skip_all)]
pub async fn upsert_optimization_status(
    conn: &mut PgConnection,
    tenant: &str,
    o: &OptimizationStatusUpdate,
    status: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO optimizations (tenant_id, id, portfolio_id, external_id, status, is_recommended)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, id) DO UPDATE
             SET status = EXCLUDED.status, is_recommended = EXCLUDED.is_recommended,
                 external_id = EXCLUDED.external_id, updated = now()
         RETURNING (xmax = 0)",
    )
    .bind(tenant)
    .bind(o.id.as_str())
    .bind(o.portfolio_id.as_str())
    .bind(o.external_id.as_str())
    .bind(status)
    .bind(o.is_recommended)
    .fetch_one(conn)
    .await
}

#[tracing::instrument(skip_all)]
pub async fn set_owner_choice(
    conn: &mut PgConnection,
    tenant: &str,
    o: &OptimizationOwnerChoiceUpdate,
    choice: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE optimizations SET owner_choice = $3, external_id = $4, updated = now()
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(o.id.as_str())
    .bind(choice)
    .bind(o.external_id.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

#[tracing::instrument(skip_all)]
pub async fn get_portfolio(
    db: impl PgExecutor<'_>,
    tenant: &str,
    id: &str,
) -> Result<Option<PortfolioRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, external_id, owned_by_user_id, status, divest_amount, divest_currency,
                created, updated
         FROM portfolios WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(db)
    .await
}

/// One page of the tenant's portfolios ordered by id, after `after`.
#[tracing::instrument(skip_all)]
pub async fn list_portfolios(
    db: impl PgExecutor<'_>,
    tenant: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<PortfolioRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, external_id, owned_by_user_id, status, divest_amount, divest_currency,
                created, updated
         FROM portfolios WHERE tenant_id = $1 AND ($2::text IS NULL OR id > $2)
         ORDER BY id LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Funding totals of the given portfolios.
#[tracing::instrument(skip_all)]
pub async fn funding_of(
    db: impl PgExecutor<'_>,
    tenant: &str,
    portfolios: &[String],
) -> Result<Vec<FundingRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT portfolio_id, currency, total FROM portfolio_funding
         WHERE tenant_id = $1 AND portfolio_id = ANY($2) ORDER BY portfolio_id, currency",
    )
    .bind(tenant)
    .bind(portfolios)
    .fetch_all(db)
    .await
}

/// The columns of an [`OptimizationRow`].
const OPTIMIZATION_COLUMNS: &str =
    "id, portfolio_id, external_id, status, is_recommended, owner_choice, created, updated";

#[tracing::instrument(skip_all)]
pub async fn get_optimization(
    db: impl PgExecutor<'_>,
    tenant: &str,
    id: &str,
) -> Result<Option<OptimizationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {OPTIMIZATION_COLUMNS} FROM optimizations WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(db)
    .await
}

/// One page of the tenant's optimizations ordered by id, after `after`.
#[tracing::instrument(skip_all)]
pub async fn list_optimizations(
    db: impl PgExecutor<'_>,
    tenant: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<OptimizationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {OPTIMIZATION_COLUMNS} FROM optimizations
         WHERE tenant_id = $1 AND ($2::text IS NULL OR id > $2)
         ORDER BY id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}
