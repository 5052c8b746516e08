//! The platform publish API: `POST /platform/events` and `/platform/events/batch` (platform
//! key). Events are validated against the catalogue and the current state and appended to
//! the outbox in one transaction; a batch is all or nothing.

use aide::axum::ApiRouter;
use aide::axum::routing::post_with;
use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use tracing::Instrument as _;

use crate::app::AppState;
use crate::auth::Platform;
use crate::catalogue::{EventData, EventType};
use crate::error::{ApiError, ApiJson};
use crate::http::openapi::{
    EnvelopeSchema, EventRequest, Problems, Unparsed, link, replayed_header,
};
use crate::http::retry;
use crate::idempotency::Answer;
use crate::idempotency::{self, IdempotencyKey, IdempotencyKeyHeader, PLATFORM_OWNER, Scope};
use crate::publish;
use crate::store::writes::{EventRow, Refusal};

pub const MAX_BATCH: usize = 500;
/// A full batch of 500 events is well over the default body limit; this route gets room
/// for it (an inner `DefaultBodyLimit` overrides the server-wide one).
pub const BATCH_BODY_LIMIT: usize = 2 * 1024 * 1024;

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/platform/events",
            post_with(publish_one, |op| {
                op.id("publishEvent")
                    .summary("Publish one catalogue event for a tenant")
                    .description(
                        "Checked against the catalogue and the tenant's current state, then \
                         applied to the read model and appended to the outbox in one \
                         transaction.",
                    )
                    .tag("platform")
                    .response::<201, Json<EnvelopeSchema>>()
                    .with(|mut op| {
                        replayed_header(op.inner_mut(), 201);
                        link(
                            op.inner_mut(),
                            201,
                            "GetEvent",
                            "getEvent",
                            &[("id", "$response.body#/id")],
                        );
                        op
                    })
                    .problems(&[404, 409])
            }),
        )
        .api_route(
            "/platform/events/batch",
            post_with(publish_batch, |op| {
                op.id("publishEvents")
                    .summary("Publish up to 500 events in one transaction: all or none")
                    .tag("platform")
                    .response::<201, Json<BatchResponseDoc>>()
                    .with(|mut op| {
                        replayed_header(op.inner_mut(), 201);
                        op
                    })
                    .problems(&[404, 409])
            })
            .layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT)),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    tenant: String,
    subject: String,
    action: String,
    data: Value,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    #[schemars(length(min = 1, max = 500))]
    events: Vec<Unparsed<EventRequest>>,
}

/// The events as appended, in the order sent.
#[derive(schemars::JsonSchema)]
#[schemars(rename = "BatchResponse")]
#[allow(dead_code)] // Documents the answer; the server writes the raw envelopes.
struct BatchResponseDoc {
    events: Vec<EnvelopeSchema>,
}

#[derive(Serialize)]
struct BatchResponse {
    events: Vec<Box<RawValue>>,
}

/// A request that passed every check that needs no database.
struct Checked {
    tenant: String,
    ty: EventType,
    data: EventData,
    /// The entity lock its write takes (`EventData::lock_key`).
    lock_key: String,
}

/// Prefixes a field path (`data.value` inside `events[3]`).
fn nest(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty()) {
        (true, _) => field.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) => format!("{prefix}.{field}"),
    }
}

fn parse_request(body: Value, prefix: &str, preview_enabled: bool) -> Result<Checked, ApiError> {
    let request: PublishRequest = serde_path_to_error::deserialize(body).map_err(|err| {
        let path = err.path().to_string();
        ApiError::invalid(
            nest(prefix, if path == "." { "" } else { &path }),
            err.into_inner().to_string(),
        )
    })?;
    // The write travels as JSON to the database, which refuses NUL in any text: caught
    // here, it is this request's 400 and never its batch's failure.
    if request.tenant.contains('\0') {
        return Err(ApiError::invalid(
            nest(prefix, "tenant"),
            "text values must not contain NUL (\\u0000) characters",
        ));
    }
    let ty = EventType::from_parts(&request.subject, &request.action).ok_or_else(|| {
        ApiError::invalid(
            nest(prefix, "action"),
            format!(
                "unknown event type '{}.{}'; GET /catalogue lists them",
                request.subject, request.action
            ),
        )
    })?;
    if ty.is_emitted() {
        return Err(ApiError::invalid(
            nest(prefix, "subject"),
            format!(
                "'{ty}' is emitted by eventgate itself when a destination's delivery changes; it cannot be published"
            ),
        ));
    }
    if ty.is_preview() && !preview_enabled {
        return Err(ApiError::invalid(
            nest(prefix, "action"),
            format!(
                "'{ty}' is a preview type; the server accepts it only with EVENTGATE_PREVIEW_EVENTS=true"
            ),
        ));
    }
    let data = EventData::parse(ty, request.data)
        .map_err(|err| ApiError::invalid(nest(prefix, &nest("data", &err.path)), err.message))?;
    Ok(Checked {
        lock_key: data.lock_key(&request.tenant),
        tenant: request.tenant,
        ty,
        data,
    })
}

async fn publish_one(
    _: Platform,
    State(state): State<AppState>,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    ApiJson(body): ApiJson<Unparsed<EventRequest>>,
) -> Result<Response, ApiError> {
    let fingerprint = idempotency::fingerprint(&body.value);
    let event = parse_request(body.value, "", state.config.preview_events)?;
    let span = tracing::info_span!("publish", event_type = %event.ty);
    let row = span.in_scope(|| publish::prepare(&event.tenant, true, event.ty, &event.data))?;
    // The answer is the envelope as stored.
    let answer = row.envelope.clone();
    let write = PublishWrite {
        key,
        endpoint: "platform-events",
        fingerprint,
        lock_keys: std::slice::from_ref(&event.lock_key),
        rows: std::slice::from_ref(&row),
        answer: &answer,
    };
    write.make(&state, refused).instrument(span).await
}

async fn publish_batch(
    _: Platform,
    State(state): State<AppState>,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    ApiJson(body): ApiJson<Unparsed<BatchRequest>>,
) -> Result<Response, ApiError> {
    let fingerprint = idempotency::fingerprint(&body.value);
    let batch: BatchRequest = serde_path_to_error::deserialize(body.value)
        .map_err(|err| ApiError::invalid(err.path().to_string(), err.into_inner().to_string()))?;
    if batch.events.is_empty() || batch.events.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "events",
            format!("must hold 1 to {MAX_BATCH} events"),
        ));
    }
    let events = batch
        .events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            parse_request(
                event.value,
                &format!("events[{i}]"),
                state.config.preview_events,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;

    let span = tracing::info_span!("publish", events = events.len());
    let rows = span.in_scope(|| {
        events
            .iter()
            .map(|e| publish::prepare(&e.tenant, true, e.ty, &e.data))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let lock_keys: Vec<String> = events.iter().map(|e| e.lock_key.clone()).collect();
    // Raw envelopes, not `Value`s: a `Value` would re-format `1e100`.
    let published = rows
        .iter()
        .map(|row| RawValue::from_string(row.envelope.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    let answer =
        serde_json::to_string(&BatchResponse { events: published }).map_err(ApiError::internal)?;
    let write = PublishWrite {
        key,
        endpoint: "platform-events-batch",
        fingerprint,
        lock_keys: &lock_keys,
        rows: &rows,
        answer: &answer,
    };
    write.make(&state, in_batch).instrument(span).await
}

/// A publish's write: its rows under their entity locks, answered 201 with the envelopes.
struct PublishWrite<'a> {
    key: Option<IdempotencyKey>,
    endpoint: &'static str,
    fingerprint: [u8; 32],
    lock_keys: &'a [String],
    rows: &'a [EventRow<'a>],
    answer: &'a str,
}

impl PublishWrite<'_> {
    async fn make(
        &self,
        state: &AppState,
        refused: fn(Refusal) -> ApiError,
    ) -> Result<Response, ApiError> {
        let request = || idempotency::Request {
            key: self.key.clone(),
            scope: Scope {
                owner: PLATFORM_OWNER.into(),
                endpoint: self.endpoint,
            },
            fingerprint: self.fingerprint,
            entity_locks: self.lock_keys,
            events: self.rows,
            deposit: None,
            answer: Answer {
                status: StatusCode::CREATED,
                head: self.answer,
                tail: None,
                location: None,
            },
        };
        let answered =
            retry::on_contention(|| idempotency::write(state, request(), refused)).await?;
        Ok(answered.response)
    }
}

/// What a state rule refused, as the problem of a single publish.
fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NotFound { detail, .. } => ApiError::NotFoundDetail { detail },
        Refusal::Conflict { detail, .. }
        | Refusal::KeyInFlight { detail }
        | Refusal::Busy { detail } => ApiError::conflict(detail),
    }
}

/// Says which event of a batch a refusal is about.
fn in_batch(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::NotFound { index, detail } => ApiError::NotFoundDetail {
            detail: format!("events[{index}]: {detail}"),
        },
        Refusal::Conflict { index, detail } => {
            ApiError::conflict(format!("events[{index}]: {detail}"))
        }
        Refusal::KeyInFlight { detail } | Refusal::Busy { detail } => ApiError::conflict(detail),
    }
}
