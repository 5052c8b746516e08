//! The read model the catalogue events describe: portfolios, their funding, optimizations.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgExecutor;

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
