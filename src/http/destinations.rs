//! `/destinations`: where a tenant's events are pushed. A client key manages its own
//! tenant's; a platform key may manage any tenant's (naming it with `tenant` on create).
//! Broker credentials are never returned: URLs come back with the password replaced.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::destination_view::{kind_of, take_object, view, views};
use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::delivery::destination::{Kind, SinkConfig, expand_types};
use crate::delivery::webhook;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::feed::cursor::Position;
use crate::store::destinations::{self as store, DestinationRow, NewDestination};
use crate::store::{feed, tenants};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/destinations", post(create).get(list))
        .route("/destinations/{id}", get(read).patch(update).delete(remove))
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
    let types = take_types(&mut map)?.unwrap_or_default();
    let enabled = take_enabled(&mut map)?.unwrap_or(true);
    let config = SinkConfig::parse(kind, Value::Object(map))?;
    guard_webhook(&state, &config).await?;
    let secret = match &config {
        SinkConfig::Webhook(_) => Some(webhook::signing::new_secret().map_err(ApiError::internal)?),
        _ => None,
    };
    let mut tx = state.pool.begin().await?;
    // Locking the tenant serializes its creates, so concurrent ones cannot pass the cap.
    if !tenants::lock(&mut *tx, &tenant).await? {
        return Err(ApiError::NotFoundDetail {
            detail: format!("no tenant '{tenant}'"),
        });
    }
    let limit = state.config.max_destinations_per_tenant;
    if store::count_for_tenant(&mut *tx, &tenant).await? >= i64::from(limit) {
        return Err(ApiError::conflict(format!(
            "tenant '{tenant}' already has the maximum of {limit} destinations; delete one first"
        )));
    }
    // It delivers what commits from now on (replay reaches further back).
    let start = Position::horizon(feed::horizon(&mut *tx).await?.xmin);
    let row = store::insert(
        &mut *tx,
        &NewDestination {
            tenant: &tenant,
            kind: kind.as_str(),
            config: &config.to_json(),
            types: &types,
            enabled,
            start,
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
    let data = views(&state, store::list(&state.pool, tenant).await?).await?;
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
    let kind = kind_of(&row)?;
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
