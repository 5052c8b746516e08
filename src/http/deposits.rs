//! Inbound deposits (client key): `POST /events/deposit/` with Idempotency-Key, and
//! `GET /deposits/{id}`. A deposit, its portfolio's funded total, its `portfolios.funding`
//! outbox event and its idempotency record are written in one transaction.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::ClientTenant;
use crate::catalogue::ids::EntityId;
use crate::catalogue::money::{Amount, Currency};
use crate::catalogue::payloads::{PortfolioFunding, PortfolioStatus, portfolio_lock_key};
use crate::catalogue::{EventData, EventType};
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::http::retry;
use crate::idempotency::{self, IdempotencyKeyHeader, Opened, Scope, StoredResponse};
use crate::publish::publish;
use crate::store::{deposits, read_model};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/events/deposit/", post(create_deposit))
        .route("/events/deposit", post(create_deposit))
        .route("/deposits/{id}", get(get_deposit))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DepositRequest {
    data: DepositData,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DepositData {
    amount: Amount,
    currency: Currency,
    portfolio: EntityId,
}

#[derive(Debug, Serialize)]
struct DepositView {
    id: Uuid,
    portfolio: String,
    /// A decimal string, as the request sends it.
    amount: String,
    currency: String,
    created: DateTime<Utc>,
}

/// Checks the amount against its currency: positive, no more decimals than the minor unit.
fn check_amount(amount: Amount, currency: Currency) -> Result<(), ApiError> {
    if amount.is_zero() {
        return Err(ApiError::invalid("data.amount", "must be greater than 0"));
    }
    let Some(digits) = currency.minor_unit_digits() else {
        return Err(ApiError::invalid(
            "data.currency",
            format!(
                "{} has no minor unit and cannot be deposited",
                currency.code()
            ),
        ));
    };
    if amount.0.normalize().scale() > digits {
        return Err(ApiError::invalid(
            "data.amount",
            format!("{} allows at most {digits} decimal places", currency.code()),
        ));
    }
    Ok(())
}

fn parse_deposit(body: Value) -> Result<DepositData, ApiError> {
    let request: DepositRequest = serde_path_to_error::deserialize(body)
        .map_err(|err| ApiError::invalid(err.path().to_string(), err.into_inner().to_string()))?;
    check_amount(request.data.amount, request.data.currency)?;
    Ok(request.data)
}

async fn create_deposit(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    if key.is_none() && state.config.require_idempotency_key {
        return Err(ApiError::bad_request(
            "this server requires an Idempotency-Key header on deposits",
        ));
    }
    let fingerprint = idempotency::fingerprint(&body);
    let deposit = parse_deposit(body)?;

    let lock_keys = [portfolio_lock_key(&tenant, &deposit.portfolio)];
    let request = idempotency::Request {
        lock_keys: &lock_keys,
        key,
        scope: Scope {
            owner: tenant.clone(),
            endpoint: "deposits",
        },
        fingerprint,
    };
    retry::on_contention(|| record(&state, &tenant, &deposit, request.clone())).await
}

/// The deposit's transaction: claim the key (or replay), check the portfolio, publish the
/// funding event, store the deposit and the answer.
async fn record(
    state: &AppState,
    tenant: &str,
    deposit: &DepositData,
    request: idempotency::Request<'_>,
) -> Result<Response, ApiError> {
    let (mut tx, claim) =
        match idempotency::open(&state.pool, &state.config, &state.metrics, request).await? {
            Opened::Replay(response) => {
                if response.status().is_success() {
                    state.metrics.deposit_replayed();
                }
                return Ok(response);
            }
            Opened::Proceed(tx, claim) => (tx, claim),
        };

    let portfolio = deposit.portfolio.as_str();
    match read_model::portfolio_status(&mut *tx, tenant, portfolio).await? {
        None => {
            return Err(ApiError::NotFound {
                resource: "portfolio",
            });
        }
        Some(Some(status)) if status == PortfolioStatus::Inactive.as_str() => {
            return Err(ApiError::conflict(format!(
                "portfolio '{portfolio}' is INACTIVE and accepts no deposits"
            )));
        }
        Some(_) => {}
    }
    let funding = EventData::PortfolioFunding(PortfolioFunding {
        id: deposit.portfolio.clone(),
        value: deposit.amount,
        currency: deposit.currency,
    });
    let published = publish(&mut tx, tenant, EventType::PortfoliosFunding, &funding).await?;
    let view = DepositView {
        id: Uuid::now_v7(),
        portfolio: portfolio.to_owned(),
        amount: deposit.amount.to_string(),
        currency: deposit.currency.code().to_owned(),
        created: Utc::now().trunc_subsecs(6),
    };
    deposits::insert(
        &mut tx,
        &deposits::NewDeposit {
            id: view.id,
            tenant,
            portfolio,
            amount: deposit.amount.0,
            currency: deposit.currency.code(),
            event_id: published.id,
            created: view.created,
        },
    )
    .await?;
    let response = StoredResponse::json(StatusCode::CREATED, &view)?
        .with_location(format!("/deposits/{}", view.id));
    let response = idempotency::finish(&mut tx, claim, response).await?;
    tx.commit().await?;
    state.metrics.deposit_created();
    Ok(response)
}

async fn get_deposit(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<DepositView>, ApiError> {
    let row = deposits::get(&state.pool, &tenant, id)
        .await?
        .ok_or(ApiError::NotFound {
            resource: "deposit",
        })?;
    Ok(Json(DepositView {
        id: row.id,
        portfolio: row.portfolio_id,
        amount: row.amount.to_string(),
        currency: row.currency,
        created: row.created,
    }))
}
