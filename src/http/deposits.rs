//! Inbound deposits (client key): `POST /events/deposit/` with Idempotency-Key, and
//! `GET /deposits/{id}`. A deposit, its portfolio's funded total, its `portfolios.funding`
//! outbox event and its idempotency record are written in one transaction.

use std::borrow::Cow;
use tracing::Instrument as _;

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use aide::transform::TransformOperation;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
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
use crate::catalogue::payloads::{PortfolioFunding, portfolio_lock_key};
use crate::catalogue::{EventData, EventType};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::feed::cursor::{Cursor, Position};
use crate::http::openapi::inputs::{IDEMPOTENCY_KEY_PATTERN, require_parameter};
use crate::http::openapi::{Problems, Unparsed, link, replayed_header, response_header};
use crate::http::retry;
use crate::idempotency::Answer;
use crate::idempotency::{self, IdempotencyKeyHeader, Scope};
use crate::publish;
use crate::store::deposits;
use crate::store::writes::{DepositRow, Refusal};

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
        .api_route(
            "/deposits",
            get_with(find_deposits, |op| {
                op.id("findDeposits")
                    .summary("The deposits made with an Idempotency-Key, newest first")
                    .description(
                        "For a client that lost the answer to a deposit: the deposits made \
                         with this key (as in the header, quoted or bare), with their \
                         `portfolios.funding` event, whether or not the key's replay window \
                         is over. Empty when there is none. Deposits made before this \
                         release are not found by key.",
                    )
                    .tag("client")
                    .problems(&[400])
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
pub(super) struct DepositView {
    id: Uuid,
    portfolio: String,
    /// A decimal string, as the request sent it.
    amount: String,
    #[schemars(with = "Currency")]
    currency: String,
    created: DateTime<Utc>,
    /// The `portfolios.funding` event the deposit made, in the same transaction.
    funding_event: FundingEvent,
}

/// A deposit's `portfolios.funding` event: `GET /events/{id}` reads it, and
/// `GET /events/?after=<cursor>` continues the feed right after it.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct FundingEvent {
    id: Uuid,
    /// The event's place in the feed; null once the feed's retention purged it.
    #[schemars(with = "Option<Cursor>")]
    cursor: Option<String>,
}

impl From<deposits::DepositRow> for DepositView {
    fn from(row: deposits::DepositRow) -> Self {
        let cursor = row.event_position().map(Position::encode);
        Self {
            id: row.id,
            portfolio: row.portfolio_id,
            amount: row.amount.to_string(),
            currency: row.currency,
            created: row.created,
            funding_event: FundingEvent {
                id: row.event_id,
                cursor,
            },
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FindParams {
    /// The Idempotency-Key the deposit was made with.
    idempotency_key: KeyParam,
}

/// An Idempotency-Key in a query: the same rules as the header.
#[derive(Debug)]
struct KeyParam(idempotency::IdempotencyKey);

impl<'de> Deserialize<'de> for KeyParam {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        // A header's surrounding spaces are not part of it; a query's are (and refused).
        let padded = text.trim() != text;
        idempotency::IdempotencyKey::parse(text.as_bytes())
            .ok()
            .filter(|_| !padded)
            .map(Self)
            .ok_or_else(|| {
                serde::de::Error::custom(
                    "idempotency_key: 1-255 printable ASCII characters, bare or as a quoted string",
                )
            })
    }
}

impl JsonSchema for KeyParam {
    fn schema_name() -> Cow<'static, str> {
        "IdempotencyKeyParam".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "As sent in the Idempotency-Key header: 1-255 printable ASCII characters, bare or as a quoted string.",
            "pattern": IDEMPOTENCY_KEY_PATTERN
        })
    }
}

/// The deposits made with one key.
#[derive(Debug, Serialize, JsonSchema)]
struct DepositList {
    data: Vec<DepositView>,
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
    let funding = EventData::PortfolioFunding(PortfolioFunding {
        id: deposit.portfolio.clone(),
        value: deposit.amount,
        currency: deposit.currency,
    });
    let span = tracing::info_span!("publish", event_type = %EventType::PortfoliosFunding);
    let event =
        span.in_scope(|| publish::prepare(&tenant, false, EventType::PortfoliosFunding, &funding))?;
    let portfolio = deposit.portfolio.as_str();
    let created = Utc::now().trunc_subsecs(6);
    let view = DepositView {
        id: Uuid::now_v7(),
        portfolio: portfolio.to_owned(),
        amount: deposit.amount.to_string(),
        currency: deposit.currency.code().to_owned(),
        created,
        funding_event: FundingEvent {
            id: event.id,
            cursor: Some(CursorSlot::mark()),
        },
    };
    let answer = CursorSlot::around(&view)?;
    let location = format!("/deposits/{}", view.id);
    let row = DepositRow {
        tenant: &tenant,
        id: view.id,
        portfolio,
        amount: deposit.amount.0.to_string(),
        currency: deposit.currency.code(),
        event_id: event.id,
        created: created.to_rfc3339_opts(SecondsFormat::Micros, true),
        idempotency_key: key.as_ref().map(|key| key.as_str()),
    };
    let lock_keys = [portfolio_lock_key(&tenant, &deposit.portfolio)];
    let request = || idempotency::Request {
        key: key.clone(),
        scope: Scope {
            owner: tenant.clone(),
            endpoint: "deposits",
        },
        fingerprint,
        entity_locks: &lock_keys,
        events: std::slice::from_ref(&event),
        deposit: Some(&row),
        answer: Answer {
            status: StatusCode::CREATED,
            head: &answer.head,
            tail: Some(&answer.tail),
            location: Some(&location),
        },
    };
    let answered = retry::on_contention(|| idempotency::write(&state, request(), refused))
        .instrument(span.clone())
        .await?;
    if answered.replayed {
        if answered.response.status().is_success() {
            state.metrics.deposit_replayed();
        }
    } else {
        state.metrics.deposit_created();
    }
    Ok(answered.response)
}

/// What the deposit's rules refused, as its problem.
fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NotFound { .. } => ApiError::NotFound {
            resource: "portfolio",
        },
        Refusal::Conflict { detail, .. }
        | Refusal::KeyInFlight { detail }
        | Refusal::Busy { detail } => ApiError::conflict(detail),
    }
}

/// A deposit's answer as JSON, split where its event's cursor goes: only the database
/// knows the cursor (the committing transaction's id), and it stores the whole answer.
struct CursorSlot {
    head: String,
    tail: String,
}

impl CursorSlot {
    /// A random mark no request can contain (it is made after the request), put where
    /// the cursor goes.
    fn mark() -> String {
        Uuid::new_v4().simple().to_string()
    }

    fn around(view: &DepositView) -> Result<Self, ApiError> {
        let mark = view.funding_event.cursor.as_deref().unwrap_or_default();
        let text = serde_json::to_string(view).map_err(ApiError::internal)?;
        let (head, tail) = text
            .split_once(mark)
            .filter(|_| !mark.is_empty())
            .ok_or_else(|| {
                ApiError::internal(std::io::Error::other(
                    "the cursor mark is not in the answer",
                ))
            })?;
        Ok(Self {
            head: head.to_owned(),
            tail: tail.to_owned(),
        })
    }
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
    Ok(Json(row.into()))
}

async fn find_deposits(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<FindParams>,
) -> Result<Json<DepositList>, ApiError> {
    let rows = deposits::with_key(&state.pool, &tenant, params.idempotency_key.0.as_str()).await?;
    Ok(Json(DepositList {
        data: rows.into_iter().map(DepositView::from).collect(),
    }))
}
