//! Webhook-only operations on a destination: rotating the signing secret, listing delivery
//! attempts, and sending one event again. Same access rules as `/destinations`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::destination_view::view;
use super::destinations::find;
use crate::app::AppState;
use crate::auth::Principal;
use crate::delivery::destination::Kind;
use crate::delivery::webhook;
use crate::error::{ApiError, ApiPath, ApiQuery};
use crate::http::pagination;
use crate::store::destinations as store;
use crate::store::{webhook_attempts, webhooks};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/destinations/{id}/rotate-secret", post(rotate_secret))
        .route("/destinations/{id}/attempts", get(attempts))
        .route(
            "/destinations/{id}/deliveries/{event_id}/retry",
            post(retry_delivery),
        )
}

async fn rotate_secret(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let row = find(&state, &principal, id).await?;
    if row.kind != Kind::Webhook.as_str() {
        return Err(ApiError::UnprocessableBody {
            detail: "only webhook destinations have a signing secret".into(),
        });
    }
    let secret = webhook::signing::new_secret().map_err(ApiError::internal)?;
    let previous_until = Utc::now() + chrono::Duration::hours(24);
    let row = store::rotate_secret(&state.pool, id, &secret, previous_until)
        .await?
        .ok_or(ApiError::NotFound {
            resource: "destination",
        })?;
    let mut shown = view(&state, row).await?;
    if let Value::Object(map) = &mut shown {
        map.insert("secret".into(), Value::String(secret));
        map.insert("previous_secret_valid_until".into(), json!(previous_until));
    }
    Ok(Json(shown))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttemptParams {
    after: Option<String>,
    limit: Option<i64>,
    status: Option<String>,
}

async fn attempts(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<AttemptParams>,
) -> Result<Json<Value>, ApiError> {
    find(&state, &principal, id).await?;
    let limit = pagination::limit(params.limit)?;
    let after = params
        .after
        .as_deref()
        .map(|cursor| {
            pagination::decode_key_cursor(cursor)?
                .parse::<i64>()
                .map_err(|_| ApiError::bad_request("the cursor is not one this server issued"))
        })
        .transpose()?;
    if let Some(status) = params.status.as_deref()
        && !matches!(status, "succeeded" | "failed")
    {
        return Err(ApiError::bad_request("status must be succeeded or failed"));
    }
    let rows =
        webhook_attempts::attempts(&state.pool, id, after, params.status.as_deref(), limit).await?;
    let next_cursor = rows
        .last()
        .map(|r| pagination::encode_key_cursor(&r.id.to_string()))
        .or(params.after);
    Ok(Json(json!({ "data": rows, "next_cursor": next_cursor })))
}

async fn retry_delivery(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath((id, event_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    find(&state, &principal, id).await?;
    if webhooks::retry_now(&state.pool, id, event_id).await? {
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({"event_id": event_id, "status": "pending"})),
        ))
    } else {
        Err(ApiError::NotFoundDetail {
            detail: format!("no delivery of event {event_id} to this destination"),
        })
    }
}
