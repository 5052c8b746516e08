//! Inbound deposits (client key): `POST /events/deposit/` with Idempotency-Key, and
//! `GET /deposits/{id}`. A deposit, its portfolio's funded total, its `portfolios.funding`
//! outbox event and its idempotency record are written in one transaction.

use std::borrow::Cow;

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use aide::transform::TransformOperation;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, SubsecRound, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::ClientTenant;
use crate::catalogue::ids::EntityId;
use crate::catalogue::money::{
    Amount, Currency, check_deposit_amount, deposit_amount_pattern, deposit_currencies,
};
use crate::catalogue::payloads::{PortfolioFunding, PortfolioStatus, portfolio_lock_key};
use crate::catalogue::{EventData, EventType};
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::http::openapi::inputs::require_parameter;
use crate::http::openapi::{Problems, Unparsed, link, replayed_header, response_header};
use crate::http::retry;
use crate::idempotency::{self, IdempotencyKeyHeader, Opened, Scope, StoredResponse};
use crate::publish::publish;
use crate::store::{deposits, read_model};

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/events/deposit/",
            post_with(create_deposit, |op| deposit_docs(op).id("createDeposit")),
        )
        .api_route(
            "/events/deposit",
            post_with(create_deposit, |op| {
                deposit_docs(op)
                    .id("createDepositWithoutSlash")
                    .summary("Same as /events/deposit/")
            }),
        )
        .api_route(
            "/deposits/{id}",
            get_with(get_deposit, |op| {
                op.id("getDeposit")
                    .summary("One deposit")
                    .tag("client")
                    .problems(&[404])
            }),
        )
}

fn deposit_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.summary("Deposit into a portfolio (client key)")
        .description(
            "Creates the deposit and, in the same transaction, the outbound \
             `portfolios.funding` event. The Idempotency-Key is required by default \
             (EVENTGATE_REQUIRE_IDEMPOTENCY_KEY=false makes it optional): a retry with it \
             never deposits twice. An unknown portfolio is 404, an INACTIVE one 409.",
        )
        .tag("client")
        .response::<201, Json<DepositView>>()
        .with(|mut op| {
            let operation = op.inner_mut();
            require_parameter(operation, "Idempotency-Key");
            replayed_header(operation, 201);
            link(
                operation,
                201,
                "GetDeposit",
                "getDeposit",
                &[("id", "$response.body#/id")],
            );
            response_header(
                operation,
                201,
                "Location",
                true,
                "The deposit: `/deposits/{id}`.",
                json_schema!({"type": "string"}),
            );
            op
        })
        .problems(&[404, 409])
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DepositRequest {
    data: DepositData,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DepositData {
    /// A decimal string (not a JSON number).
    amount: String,
    currency: Currency,
    portfolio: EntityId,
}

/// `POST /events/deposit/`: `{"data": {"amount", "currency", "portfolio"}}`, the amount's
/// decimals limited by its currency's minor unit.
struct DepositRequestDoc;

impl JsonSchema for DepositRequestDoc {
    fn schema_name() -> Cow<'static, str> {
        "DepositRequest".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let portfolio = generator.subschema_for::<EntityId>();
        let by_currency: Vec<Value> = deposit_currencies()
            .into_iter()
            .map(|(digits, codes)| {
                let name = format!("DepositWith{digits}Decimals");
                let variant = serde_json::json!({
                    "type": "object",
                    "description": format!("A deposit in a currency whose minor unit has {digits} decimals."),
                    "additionalProperties": false,
                    "required": ["amount", "currency", "portfolio"],
                    "properties": {
                        "amount": {
                            "type": "string",
                            "description": "A decimal string greater than 0.",
                            "pattern": deposit_amount_pattern(digits),
                            "examples": ["1000"]
                        },
                        "currency": {"type": "string", "enum": codes},
                        "portfolio": portfolio,
                    }
                });
                generator.definitions_mut().insert(name.clone(), variant);
                serde_json::json!({"$ref": format!("#/components/schemas/{name}")})
            })
            .collect();
        json_schema!({
            "type": "object",
            "additionalProperties": false,
            "required": ["data"],
            "properties": {"data": {"oneOf": by_currency}},
            "examples": [{"data": {"amount": "1000", "currency": "USD", "portfolio": "P01F8ZSNV0J45R9DFZ3D7D8C26F"}}]
        })
    }
}

/// A deposit.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Deposit")]
struct DepositView {
    id: Uuid,
    portfolio: String,
    /// A decimal string, as the request sent it.
    amount: String,
    #[schemars(with = "Currency")]
    currency: String,
    created: DateTime<Utc>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DepositPath {
    id: Uuid,
}

/// The deposit a body asks for: its amount checked against its currency's rule.
struct Deposit {
    amount: Amount,
    currency: Currency,
    portfolio: EntityId,
}

fn parse_deposit(body: Value) -> Result<Deposit, ApiError> {
    let request: DepositRequest = serde_path_to_error::deserialize(body)
        .map_err(|err| ApiError::invalid(err.path().to_string(), err.into_inner().to_string()))?;
    let DepositData {
        amount,
        currency,
        portfolio,
    } = request.data;
    let amount = check_deposit_amount(&amount, currency)
        .map_err(|why| ApiError::invalid("data.amount", why))?;
    Ok(Deposit {
        amount,
        currency,
        portfolio,
    })
}

async fn create_deposit(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    ApiJson(body): ApiJson<Unparsed<DepositRequestDoc>>,
) -> Result<Response, ApiError> {
    let body = body.value;
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
    deposit: &Deposit,
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
    ApiPath(DepositPath { id }): ApiPath<DepositPath>,
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
