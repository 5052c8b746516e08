//! Webhook-only operations on a destination: rotating the signing key, sending a test
//! event, listing delivery attempts, and sending one event again. Same access rules as
//! `/destinations`.

use std::collections::BTreeMap;

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::destination_view::{DestinationView, kind_of, view};
use super::destinations::{DestinationPath, find};
use crate::app::AppState;
use crate::audit::{self, Action, Actor, Entry};
use crate::auth::Principal;
use crate::delivery::destination::SinkConfig;
use crate::delivery::webhook;
use crate::error::{ApiError, ApiPath, ApiQuery};
use crate::http::openapi::Problems;
use crate::http::pagination::Limit;
use crate::store::destinations as store;
use crate::store::webhook_attempts::AttemptRow;
use crate::store::{webhook_attempts, webhooks};
use crate::telemetry::trace_context::TraceContext;

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/destinations/{id}/rotate-secret",
            post_with(rotate_secret, |op| {
                op.id("rotateSecret")
                    .summary("Webhooks: a new signing key (an HMAC secret is shown once)")
                    .description(
                        "A new key of the destination's signature scheme. The old key keeps \
                         signing beside the new one for 24 h. An HMAC secret is in `secret`, \
                         this once; for ed25519 the new key's public half is in \
                         `public_key`, the old one's in `previous_public_key`. A destination \
                         that is not a webhook has no signing key: 409.",
                    )
                    .tag("destinations")
                    .response::<200, Json<DestinationView>>()
                    .problems(&[404, 409])
            }),
        )
        .api_route(
            "/destinations/{id}/test",
            post_with(send_test, |op| {
                op.id("testDestination")
                    .summary("Webhooks: send a signed test event now, and see the attempt")
                    .description(
                        "Sends one test message through the destination's real path (its TLS \
                         and client certificate, OAuth2 token, static headers, the egress \
                         proxy, the signature) and answers with what happened. Nothing is \
                         queued or retried, and its lifecycle and status do not change. The \
                         body is an envelope of type `destinations.test` (entity format: a \
                         `Test` lifecycle message). Not a webhook: 409.",
                    )
                    .tag("destinations")
                    .response::<200, Json<TestAttempt>>()
                    .problems(&[404, 409])
            }),
        )
        .api_route(
            "/destinations/{id}/attempts",
            get_with(attempts, |op| {
                op.id("listAttempts")
                    .summary("Webhooks: the delivery attempts, oldest first, a page at a time")
                    .tag("destinations")
                    .problems(&[404])
            }),
        )
        .api_route(
            "/destinations/{id}/deliveries/{event_id}/retry",
            post_with(retry_delivery, |op| {
                op.id("retryDelivery")
                    .summary("Webhooks: send one event again now")
                    .tag("destinations")
                    .response::<202, Json<Retried>>()
                    .problems(&[404])
            }),
        )
}

async fn rotate_secret(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath(DestinationPath { id }): ApiPath<DestinationPath>,
) -> Result<Json<DestinationView>, ApiError> {
    let row = find(&state, &principal, id).await?;
    let SinkConfig::Webhook(config) = SinkConfig::stored(kind_of(&row)?, row.config.clone())?
    else {
        return Err(ApiError::conflict(format!(
            "this is an {} destination: only webhook destinations have a signing secret",
            row.kind
        )));
    };
    let secret = webhook::signing::new_key(config.signature).map_err(ApiError::internal)?;
    let previous_until = Utc::now() + chrono::Duration::hours(24);
    let mut tx = state.pool.begin().await?;
    let row = store::rotate_secret(&mut *tx, &state.keyring, id, &secret, previous_until)
        .await?
        .ok_or(ApiError::NotFound {
            resource: "destination",
        })?;
    let entry = Entry {
        tenant: Some(&row.tenant_id),
        action: Action::SecretRotated,
        target: Some(id.to_string()),
        changes: serde_json::json!({"previous_secret_valid_until": previous_until}),
    };
    audit::record(&mut tx, &Actor::from(&principal), entry).await?;
    tx.commit().await?;
    let mut shown = view(&state, row).await?;
    // An ed25519 private key is never shown: its new public key is in the view.
    shown.secret = Some(secret).filter(|key| key.starts_with(webhook::signing::SECRET_PREFIX));
    shown.previous_secret_valid_until = Some(previous_until);
    Ok(Json(shown))
}

/// What came of a test send.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct TestAttempt {
    /// The `webhook-id` the test message was sent with.
    message_id: String,
    /// The endpoint answered 2xx.
    succeeded: bool,
    /// The endpoint's HTTP status; null when no answer came.
    response_status: Option<u16>,
    /// From the start of the attempt to the end of the answer, token fetch included.
    duration_ms: u64,
    /// Why it failed: the answer's status, a TLS or connection error, an address the
    /// policy refuses, an OAuth2 token that could not be had.
    error: Option<String>,
    /// The first 512 bytes of the response body.
    response_excerpt: Option<String>,
    /// The headers the request was sent with, the signature included; static header
    /// values and bearer tokens as `***`. Null when nothing was sent.
    request_headers: Option<BTreeMap<String, String>>,
}

async fn send_test(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath(DestinationPath { id }): ApiPath<DestinationPath>,
) -> Result<Json<TestAttempt>, ApiError> {
    let row = find(&state, &principal, id).await?;
    let SinkConfig::Webhook(config) = SinkConfig::stored(kind_of(&row)?, row.config.clone())?
    else {
        return Err(ApiError::conflict(format!(
            "this is an {} destination: only webhook destinations take a test event",
            row.kind
        )));
    };
    let settings = webhook::WebhookSettings::from(state.config.as_ref());
    let endpoint = webhook::endpoint::Endpoint::new(&config, &settings)
        .map_err(|err| ApiError::conflict(format!("the destination cannot send: {err}")))?;
    let message_id = Uuid::now_v7().to_string();
    let payload = webhook::payload::test_message(&message_id, id, &config, Utc::now());
    let keys = row.signing_keys();
    let trace = TraceContext::current();
    let message = webhook::send::Message {
        destination: id,
        id: &message_id,
        payload: &payload,
        keys: &keys,
        // The test send joins the trace of the request that asked for it.
        trace: trace.as_ref(),
    };
    let outcome = webhook::send::attempt(&endpoint, &message).await;
    Ok(Json(TestAttempt {
        message_id,
        succeeded: outcome.succeeded(),
        response_status: outcome.status,
        duration_ms: outcome.duration.as_millis().min(u128::from(u64::MAX)) as u64,
        error: outcome.error,
        response_excerpt: outcome.excerpt,
        request_headers: outcome.request_headers,
    }))
}

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum AttemptStatus {
    Succeeded,
    Failed,
}

impl AttemptStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct AttemptParams {
    /// The `next_cursor` of the previous page.
    #[schemars(range(min = 0))]
    after: Option<AttemptCursor>,
    limit: Option<Limit>,
    /// Only attempts with this outcome.
    status: Option<AttemptStatus>,
}

/// An attempt's id: the page starts after it.
#[derive(Debug, Clone, Copy, schemars::JsonSchema)]
#[schemars(transparent)]
struct AttemptCursor(#[schemars(range(min = 0))] i64);

impl<'de> Deserialize<'de> for AttemptCursor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = i64::deserialize(deserializer)?;
        if id < 0 {
            return Err(serde::de::Error::custom(
                "after: not a cursor this server issued",
            ));
        }
        Ok(Self(id))
    }
}

/// One page of attempts.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct AttemptPage {
    data: Vec<AttemptRow>,
    /// Pass as `after` for the next page; null when there has been no attempt yet.
    next_cursor: Option<i64>,
}

async fn attempts(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath(DestinationPath { id }): ApiPath<DestinationPath>,
    ApiQuery(params): ApiQuery<AttemptParams>,
) -> Result<Json<AttemptPage>, ApiError> {
    find(&state, &principal, id).await?;
    let limit = Limit::or_default(params.limit);
    let after = params.after.map(|cursor| cursor.0);
    let status = params.status.map(AttemptStatus::as_str);
    let rows = webhook_attempts::attempts(&state.pool, id, after, status, limit).await?;
    let next_cursor = rows.last().map(|r| r.id).or(after);
    Ok(Json(AttemptPage {
        data: rows,
        next_cursor,
    }))
}

/// The delivery is queued for an attempt now.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Retried {
    event_id: Uuid,
    /// `pending`
    status: &'static str,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DeliveryPath {
    id: Uuid,
    event_id: Uuid,
}

async fn retry_delivery(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath(DeliveryPath { id, event_id }): ApiPath<DeliveryPath>,
) -> Result<(StatusCode, Json<Retried>), ApiError> {
    let row = find(&state, &principal, id).await?;
    let mut tx = state.pool.begin().await?;
    if !webhooks::retry_now(&mut *tx, id, event_id).await? {
        return Err(ApiError::NotFoundDetail {
            detail: format!("no delivery of event {event_id} to this destination"),
        });
    }
    let entry = Entry {
        tenant: Some(&row.tenant_id),
        action: Action::DeliveryRetried,
        target: Some(id.to_string()),
        changes: serde_json::json!({"event_id": event_id}),
    };
    audit::record(&mut tx, &Actor::from(&principal), entry).await?;
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Retried {
            event_id,
            status: "pending",
        }),
    ))
}
