//! The read model for clients (client key, own tenant): `GET /portfolios/{id}`,
//! `GET /portfolios`, `GET /optimizations/{id}` — the "additional REST call" the seed's
//! events point to. Amounts are exact JSON numbers, as in the events.

use std::collections::HashMap;

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize, Serializer};

use crate::app::AppState;
use crate::auth::ClientTenant;
use crate::catalogue::ids::EntityId;
use crate::catalogue::money::{Currency, serialize_number_literal};
use crate::catalogue::payloads::{OptimizationStatus, OwnerChoice, PortfolioStatus};
use crate::error::{ApiError, ApiPath, ApiQuery};
use crate::http::openapi::Problems;
use crate::http::pagination::Limit;
use crate::store::read_model::{self, FundingRow, OptimizationRow, PortfolioRow};

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/portfolios",
            get_with(list_portfolios, |op| {
                op.id("listPortfolios")
                    .summary("The tenant's portfolios, by id, a page at a time")
                    .tag("client")
            }),
        )
        .api_route(
            "/portfolios/{id}",
            get_with(get_portfolio, |op| {
                op.id("getPortfolio")
                    .summary("One portfolio: status, funded totals, divest amount")
                    .tag("client")
                    .problems(&[404])
            }),
        )
        .api_route(
            "/optimizations/{id}",
            get_with(get_optimization, |op| {
                op.id("getOptimization")
                    .summary("One optimization: status, recommendation, owner choice")
                    .tag("client")
                    .problems(&[404])
            }),
        )
}

/// An exact decimal, written as a JSON number literal.
fn exact_number(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "number"})
}

/// An exact decimal as a JSON number literal (1e100: everything), or null.
fn exact_number_or_null(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": ["number", "null"]})
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct IdPath {
    id: EntityId,
}

fn exact_decimal<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    serialize_number_literal(&value.to_string(), s)
}

fn exact_literal<S: Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(literal) => serialize_number_literal(literal, s),
        None => s.serialize_none(),
    }
}

/// Everything deposited into a portfolio in one currency.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct Funded {
    #[schemars(with = "Currency")]
    currency: String,
    #[serde(serialize_with = "exact_decimal")]
    #[schemars(schema_with = "exact_number")]
    total: Decimal,
}

/// A portfolio as the events so far made it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct PortfolioView {
    id: String,
    external_id: String,
    owned_by_user_id: String,
    /// Its latest status; null before the first status update.
    #[schemars(with = "Option<PortfolioStatus>")]
    status: Option<String>,
    /// The total requested for withdrawal (1e100: everything); null before any.
    #[serde(serialize_with = "exact_literal")]
    #[schemars(schema_with = "exact_number_or_null")]
    divest_amount: Option<String>,
    /// The currency of `divest_amount`.
    #[schemars(with = "Option<Currency>")]
    currency: Option<String>,
    funded: Vec<Funded>,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
}

impl PortfolioView {
    pub(super) fn new(row: PortfolioRow, funded: Vec<Funded>) -> Self {
        Self {
            id: row.id,
            external_id: row.external_id,
            owned_by_user_id: row.owned_by_user_id,
            status: row.status,
            divest_amount: row.divest_amount,
            currency: row.divest_currency,
            funded,
            created: row.created,
            updated: row.updated,
        }
    }
}

pub(super) fn group_funding(rows: Vec<FundingRow>) -> HashMap<String, Vec<Funded>> {
    let mut by_portfolio: HashMap<String, Vec<Funded>> = HashMap::new();
    for row in rows {
        by_portfolio
            .entry(row.portfolio_id)
            .or_default()
            .push(Funded {
                currency: row.currency,
                total: row.total,
            });
    }
    by_portfolio
}

async fn get_portfolio(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> Result<Json<PortfolioView>, ApiError> {
    let row = read_model::get_portfolio(&state.pool, &tenant, id.as_str())
        .await?
        .ok_or(ApiError::NotFound {
            resource: "portfolio",
        })?;
    let funding =
        read_model::funding_of(&state.pool, &tenant, std::slice::from_ref(&row.id)).await?;
    let funded = group_funding(funding).remove(&row.id).unwrap_or_default();
    Ok(Json(PortfolioView::new(row, funded)))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// The `next_cursor` of the previous page (a portfolio id): the page starts after it.
    after: Option<EntityId>,
    limit: Option<Limit>,
}

/// One page of portfolios, by id.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct PortfolioPage {
    data: Vec<PortfolioView>,
    /// Pass as `after` for the next page; null when there has been no page yet.
    next_cursor: Option<String>,
    has_more: bool,
}

async fn list_portfolios(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<PortfolioPage>, ApiError> {
    let limit = Limit::or_default(params.limit);
    let after = params.after.as_ref().map(EntityId::as_str);
    let mut rows = read_model::list_portfolios(&state.pool, &tenant, after, limit + 1).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut funding = group_funding(read_model::funding_of(&state.pool, &tenant, &ids).await?);
    let next_cursor = match rows.last() {
        Some(last) => Some(last.id.clone()),
        None => params.after.as_ref().map(|id| id.as_str().to_owned()),
    };
    let data = rows
        .into_iter()
        .map(|row| {
            let funded = funding.remove(&row.id).unwrap_or_default();
            PortfolioView::new(row, funded)
        })
        .collect();
    Ok(Json(PortfolioPage {
        data,
        next_cursor,
        has_more,
    }))
}

/// An optimization as the events so far made it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct OptimizationView {
    id: String,
    portfolio_id: String,
    external_id: String,
    #[schemars(with = "OptimizationStatus")]
    status: String,
    is_recommended: bool,
    /// Null until the owner chose.
    #[schemars(with = "Option<OwnerChoice>")]
    owner_choice: Option<String>,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
}

impl From<OptimizationRow> for OptimizationView {
    fn from(row: OptimizationRow) -> Self {
        Self {
            id: row.id,
            portfolio_id: row.portfolio_id,
            external_id: row.external_id,
            status: row.status,
            is_recommended: row.is_recommended,
            owner_choice: row.owner_choice,
            created: row.created,
            updated: row.updated,
        }
    }
}

async fn get_optimization(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> Result<Json<OptimizationView>, ApiError> {
    read_model::get_optimization(&state.pool, &tenant, id.as_str())
        .await?
        .map(|row| Json(row.into()))
        .ok_or(ApiError::NotFound {
            resource: "optimization",
        })
}
