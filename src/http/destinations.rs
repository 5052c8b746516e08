//! `/destinations`: where a tenant's events are pushed. A client key manages its own
//! tenant's; a platform key may manage any tenant's (naming it with `tenant` on create).
//! Broker credentials are never returned: URLs come back with the password replaced.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::delivery::destination::{Kind, SinkConfig, expand_types};
use crate::delivery::webhook;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::feed::cursor::Position;
use crate::store::destinations::{self as store, DestinationRow, NewDestination};
use crate::store::{tenants, webhooks};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/destinations", post(create).get(list))
        .route("/destinations/{id}", get(read).patch(update).delete(remove))
        .route("/destinations/{id}/replay", post(replay))
}

/// Refuses webhook URLs that point into internal networks (unless the server allows it).
async fn guard_webhook(state: &AppState, config: &SinkConfig) -> Result<(), ApiError> {
    if let SinkConfig::Webhook(webhook) = config {
        webhook::guard::check_url(&webhook.url, state.config.allow_private_destinations)
            .await
            .map_err(|err| {
                ApiError::invalid(
                    "url",
                    format!("{err} (EVENTGATE_ALLOW_PRIVATE_DESTINATIONS=true allows it)"),
                )
            })?;
    }
    Ok(())
}

/// The tenant a client key is bound to; `None` (every tenant) for the platform.
fn scope(principal: &Principal) -> Option<&str> {
    match principal.role {
        Role::Client => principal.tenant.as_deref(),
        Role::Platform => None,
    }
}

fn take_object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::UnprocessableBody {
            detail: "the body must be a JSON object".into(),
        }),
    }
}

fn take_types(map: &mut Map<String, Value>) -> Result<Option<Vec<String>>, ApiError> {
    match map.remove("types") {
        None => Ok(None),
        Some(value) => {
            let types: Vec<String> = serde_json::from_value(value)
                .map_err(|_| ApiError::invalid("types", "must be an array of strings"))?;
            if types.len() > 50 {
                return Err(ApiError::invalid("types", "at most 50 patterns"));
            }
            expand_types(&types)?;
            Ok(Some(types))
        }
    }
}

fn take_enabled(map: &mut Map<String, Value>) -> Result<Option<bool>, ApiError> {
    match map.remove("enabled") {
        None => Ok(None),
        Some(Value::Bool(enabled)) => Ok(Some(enabled)),
        Some(_) => Err(ApiError::invalid("enabled", "must be true or false")),
    }
}

/// The client's view: settings (URL redacted) and delivery status.
pub(super) async fn view(state: &AppState, row: DestinationRow) -> Result<Value, ApiError> {
    let kind =
        Kind::parse(&row.kind).ok_or_else(|| ApiError::internal(UnknownKind(row.kind.clone())))?;
    let config = SinkConfig::parse(kind, row.config.clone())?;
    let delivered = row.delivered()?;
    let types = expand_types(&row.types)?;
    let lag = store::lag(&state.pool, &row.tenant_id, delivered, &types).await?;
    let mut shown = take_object(config.redacted())?;
    shown.insert("id".into(), json!(row.id));
    shown.insert("tenant".into(), json!(row.tenant_id));
    shown.insert("kind".into(), json!(row.kind));
    shown.insert("types".into(), json!(row.types));
    shown.insert("enabled".into(), json!(row.enabled));
    shown.insert("created".into(), json!(row.created));
    shown.insert("updated".into(), json!(row.updated));
    let mut status = json!({
        "delivered_through": delivered.encode(),
        "lag": lag,
        "last_error": row.last_error,
        "last_error_at": row.last_error_at,
        "failing_since": row.failing_since,
        "last_success_at": row.last_success_at,
    });
    if kind == Kind::Webhook {
        let (pending, failed) = webhooks::counts(&state.pool, row.id).await?;
        status["pending_deliveries"] = json!(pending);
        status["failed_deliveries"] = json!(failed);
        status["disabled_reason"] = json!(row.disabled_reason);
    }
    shown.insert("status".into(), status);
    Ok(Value::Object(shown))
}

#[derive(Debug, thiserror::Error)]
#[error("stored destination has unknown kind '{0}'")]
struct UnknownKind(String);

async fn create(
    principal: Principal,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut map = take_object(body)?;
    let kind = match map.remove("kind") {
        Some(Value::String(kind)) => Kind::parse(&kind)
            .ok_or_else(|| ApiError::invalid("kind", "must be one of: amqp, mqtt, webhook"))?,
        _ => {
            return Err(ApiError::invalid(
                "kind",
                "is required: amqp, mqtt or webhook",
            ));
        }
    };
    let named = match map.remove("tenant") {
        None => None,
        Some(Value::String(tenant)) => Some(tenant),
        Some(_) => return Err(ApiError::invalid("tenant", "must be a string")),
    };
    let tenant = match (principal.role, principal.tenant, named) {
        (Role::Client, Some(own), None) => own,
        (Role::Client, Some(own), Some(named)) if named == own => own,
        (Role::Client, _, Some(_)) => {
            return Err(ApiError::invalid(
                "tenant",
                "a client key creates destinations for its own tenant only",
            ));
        }
        (Role::Platform, _, Some(named)) => named,
        (_, _, None) => {
            return Err(ApiError::invalid(
                "tenant",
                "is required with a platform key",
            ));
        }
    };
    if !tenants::exists(&state.pool, &tenant).await? {
        return Err(ApiError::NotFoundDetail {
            detail: format!("no tenant '{tenant}'"),
        });
    }
    let types = take_types(&mut map)?.unwrap_or_default();
    let enabled = take_enabled(&mut map)?.unwrap_or(true);
    let config = SinkConfig::parse(kind, Value::Object(map))?;
    guard_webhook(&state, &config).await?;
    let secret = match &config {
        SinkConfig::Webhook(_) => Some(webhook::signing::new_secret().map_err(ApiError::internal)?),
        _ => None,
    };
    let mut tx = state.pool.begin().await?;
    let row = store::insert(
        &mut *tx,
        &NewDestination {
            tenant: &tenant,
            kind: kind.as_str(),
            config: &config.to_json(),
            types: &types,
            enabled,
            secret: secret.as_deref(),
        },
    )
    .await?;
    if let (SinkConfig::Webhook(webhook_config), true) = (&config, enabled) {
        webhook::queue_lifecycle(&mut tx, row.id, webhook_config, "Activated").await?;
    }
    tx.commit().await?;
    let mut shown = view(&state, row).await?;
    if let (Some(secret), Value::Object(map)) = (secret, &mut shown) {
        // The only time the secret is shown, besides a rotation.
        map.insert("secret".into(), Value::String(secret));
    }
    Ok((StatusCode::CREATED, Json(shown)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    tenant: Option<String>,
}

async fn list(
    principal: Principal,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let tenant = match (scope(&principal), params.tenant.as_deref()) {
        (Some(own), Some(named)) if named != own => {
            return Err(ApiError::Forbidden { role: "client" });
        }
        (Some(own), _) => Some(own),
        (None, named) => named,
    };
    let mut data = Vec::new();
    for row in store::list(&state.pool, tenant).await? {
        data.push(view(&state, row).await?);
    }
    Ok(Json(json!({ "data": data })))
}

/// The destination `id` if the caller may see it (404 otherwise).
pub(super) async fn find(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<DestinationRow, ApiError> {
    store::get(&state.pool, id, scope(principal))
        .await?
        .ok_or(ApiError::NotFound {
            resource: "destination",
        })
}

async fn read(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let row = find(&state, &principal, id).await?;
    Ok(Json(view(&state, row).await?))
}

async fn update(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let row = find(&state, &principal, id).await?;
    let mut patch = take_object(body)?;
    for fixed in ["kind", "tenant", "id"] {
        if patch.remove(fixed).is_some() {
            return Err(ApiError::invalid(
                fixed,
                "cannot be changed; create a new destination",
            ));
        }
    }
    let types = take_types(&mut patch)?.unwrap_or(row.types.clone());
    let enabled = take_enabled(&mut patch)?.unwrap_or(row.enabled);
    let kind =
        Kind::parse(&row.kind).ok_or_else(|| ApiError::internal(UnknownKind(row.kind.clone())))?;
    let mut config = take_object(row.config.clone())?;
    config.extend(patch);
    let config = SinkConfig::parse(kind, Value::Object(config))?;
    guard_webhook(&state, &config).await?;
    let mut tx = state.pool.begin().await?;
    let updated = store::update_settings(&mut *tx, id, &config.to_json(), &types, enabled)
        .await?
        .ok_or(ApiError::NotFound {
            resource: "destination",
        })?;
    if let SinkConfig::Webhook(webhook_config) = &config
        && enabled != row.enabled
    {
        let event = if enabled { "Activated" } else { "Deactivated" };
        webhook::queue_lifecycle(&mut tx, id, webhook_config, event).await?;
    }
    tx.commit().await?;
    Ok(Json(view(&state, updated).await?))
}

async fn remove(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    if store::delete(&state.pool, id, scope(&principal)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound {
            resource: "destination",
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    after: Option<String>,
    since: Option<DateTime<Utc>>,
}

async fn replay(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ReplayRequest>,
) -> Result<Json<Value>, ApiError> {
    let row = find(&state, &principal, id).await?;
    let position = match (body.after, body.since) {
        (Some(cursor), None) => Position::decode(&cursor)
            .ok_or_else(|| ApiError::invalid("after", "not a cursor this server issued"))?,
        (None, Some(since)) => {
            match store::position_before(&state.pool, &row.tenant_id, since).await? {
                Some(position) => position,
                // Nothing that recent: everything already delivered stays delivered.
                None => row.delivered()?,
            }
        }
        _ => {
            return Err(ApiError::UnprocessableBody {
                detail: "send exactly one of `after` (a feed cursor) or `since` (an RFC 3339 time)"
                    .into(),
            });
        }
    };
    store::set_position(&state.pool, id, position).await?;
    let row = find(&state, &principal, id).await?;
    Ok(Json(view(&state, row).await?))
}
