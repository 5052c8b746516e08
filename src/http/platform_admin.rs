//! Platform administration: tenants and their API keys (platform key only).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{NewKey, Platform, Role};
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::store;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/platform/tenants", post(create_tenant))
        .route("/platform/tenants/{tenant}/keys", post(create_key))
        .route("/platform/keys/{id}", delete(revoke_key))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    id: String,
    name: String,
}

/// Tenant ids appear in topics, URLs and logs, so they are kept to a safe alphabet.
pub fn validate_tenant_id(id: &str) -> Result<(), ApiError> {
    let mut chars = id.chars();
    let valid = id.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "id",
            "must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit",
        ))
    }
}

async fn create_tenant(
    _: Platform,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewTenant>,
) -> Result<(StatusCode, Json<store::tenants::Tenant>), ApiError> {
    validate_tenant_id(&body.id)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1-200 characters"));
    }
    let mut conn = state.pool.acquire().await?;
    match store::tenants::insert(&mut conn, &body.id, name).await? {
        Some(tenant) => Ok((StatusCode::CREATED, Json(tenant))),
        None => Err(ApiError::conflict(format!(
            "tenant '{}' already exists",
            body.id
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyRequest {
    role: Role,
}

#[derive(Debug, Serialize)]
struct CreatedKey {
    id: Uuid,
    /// The secret, shown only in this response.
    key: String,
    role: Role,
    tenant: Option<String>,
    created: DateTime<Utc>,
}

async fn create_key(
    _: Platform,
    State(state): State<AppState>,
    ApiPath(tenant): ApiPath<String>,
    ApiJson(body): ApiJson<NewKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    if !store::tenants::exists(&state.pool, &tenant).await? {
        return Err(ApiError::NotFound { resource: "tenant" });
    }
    // A platform key is not bound to a tenant, whatever path it was created under.
    let bound_tenant = (body.role == Role::Client).then_some(tenant.as_str());
    let new_key = NewKey::generate().map_err(ApiError::internal)?;
    let mut conn = state.pool.acquire().await?;
    let stored =
        store::keys::insert(&mut conn, &new_key.hash, body.role.as_str(), bound_tenant).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            id: stored.id,
            key: new_key.secret,
            role: body.role,
            tenant: stored.tenant_id,
            created: stored.created,
        }),
    ))
}

async fn revoke_key(
    _: Platform,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    if store::keys::revoke(&state.pool, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound { resource: "key" })
    }
}
