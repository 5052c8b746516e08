//! The read model for clients (client key, own tenant): `GET /portfolios/{id}`,
//! `GET /portfolios`, `GET /optimizations/{id}` — the "additional REST call" the seed's
//! events point to. Amounts are exact JSON numbers, as in the events.

use std::collections::HashMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize, Serializer};

use crate::app::AppState;
use crate::auth::ClientTenant;
use crate::catalogue::money::serialize_number_literal;
use crate::error::{ApiError, ApiPath, ApiQuery};
use crate::http::pagination;
use crate::store::read_model::{self, FundingRow, OptimizationRow, PortfolioRow};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/portfolios", get(list_portfolios))
        .route("/portfolios/{id}", get(get_portfolio))
        .route("/optimizations/{id}", get(get_optimization))
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

#[derive(Debug, Serialize)]
struct Funded {
    currency: String,
    #[serde(serialize_with = "exact_decimal")]
    total: Decimal,
}

#[derive(Debug, Serialize)]
struct PortfolioView {
    id: String,
    external_id: String,
    owned_by_user_id: String,
    status: Option<String>,
    #[serde(serialize_with = "exact_literal")]
    divest_amount: Option<String>,
    currency: Option<String>,
    funded: Vec<Funded>,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
}

impl PortfolioView {
    fn new(row: PortfolioRow, funded: Vec<Funded>) -> Self {
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

fn group_funding(rows: Vec<FundingRow>) -> HashMap<String, Vec<Funded>> {
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
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PortfolioView>, ApiError> {
    let row = read_model::get_portfolio(&state.pool, &tenant, &id)
        .await?
        .ok_or(ApiError::NotFound {
            resource: "portfolio",
        })?;
    let funding =
        read_model::funding_of(&state.pool, &tenant, std::slice::from_ref(&row.id)).await?;
    let funded = group_funding(funding).remove(&row.id).unwrap_or_default();
    Ok(Json(PortfolioView::new(row, funded)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    after: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
struct PortfolioPage {
    data: Vec<PortfolioView>,
    next_cursor: Option<String>,
    has_more: bool,
}

async fn list_portfolios(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<PortfolioPage>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    let after = params
        .after
        .as_deref()
        .map(pagination::decode_key_cursor)
        .transpose()?;
    let mut rows =
        read_model::list_portfolios(&state.pool, &tenant, after.as_deref(), limit + 1).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut funding = group_funding(read_model::funding_of(&state.pool, &tenant, &ids).await?);
    let next_cursor = match rows.last() {
        Some(last) => Some(pagination::encode_key_cursor(&last.id)),
        None => params.after.clone(),
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

#[derive(Debug, Serialize)]
struct OptimizationView {
    id: String,
    portfolio_id: String,
    external_id: String,
    status: String,
    is_recommended: bool,
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
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OptimizationView>, ApiError> {
    read_model::get_optimization(&state.pool, &tenant, &id)
        .await?
        .map(|row| Json(row.into()))
        .ok_or(ApiError::NotFound {
            resource: "optimization",
        })
}
