//! Platform administration: tenants and their API keys (platform key only).

use aide::axum::ApiRouter;
use aide::axum::routing::{delete_with, post_with};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{self, Action, Actor, Entry};
use crate::auth::{NewKey, Platform, Role};
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::http::openapi::{Problems, link};
use crate::http::tenant_id::TenantId;
use crate::store;

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/platform/tenants",
            post_with(create_tenant, |op| {
                op.id("createTenant")
                    .summary("Create a tenant (a b2b client)")
                    .tag("platform")
                    .response::<201, Json<store::tenants::Tenant>>()
                    .with(|mut op| {
                        link(
                            op.inner_mut(),
                            201,
                            "CreateKey",
                            "createKey",
                            &[("tenant", "$response.body#/id")],
                        );
                        op
                    })
                    .problems(&[409])
            }),
        )
        .api_route(
            "/platform/tenants/{tenant}/keys",
            post_with(create_key, |op| {
                op.id("createKey")
                    .summary("Create an API key for a tenant; the key is shown once")
                    .description(
                        "A `client` key acts for this tenant only; a `platform` key for all \
                         (it is not bound to the tenant in the path). An `expires_at` that is \
                         not in the future is 409.",
                    )
                    .tag("platform")
                    .response::<201, Json<CreatedKey>>()
                    .with(|mut op| {
                        link(
                            op.inner_mut(),
                            201,
                            "RevokeKey",
                            "revokeKey",
                            &[("id", "$response.body#/id")],
                        );
                        op
                    })
                    .problems(&[404, 409])
            }),
        )
        .api_route(
            "/platform/keys/{id}",
            delete_with(revoke_key, |op| {
                op.id("revokeKey")
                    .summary("Revoke an API key; it stops working at once")
                    .tag("platform")
                    .response::<204, ()>()
                    .problems(&[404])
            }),
        )
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    id: TenantId,
    /// 1-200 characters, not all blank (spaces at either end are dropped).
    #[schemars(length(min = 1, max = 200), regex(pattern = NAME_PATTERN))]
    name: String,
}

/// Some character that is not ASCII white space, and no NUL.
const NAME_PATTERN: &str = r"^[^\x00]*[^\x00 \t\n\r][^\x00]*$";

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct TenantPath {
    tenant: TenantId,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct KeyPath {
    id: Uuid,
}

async fn create_tenant(
    Platform(principal): Platform,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewTenant>,
) -> Result<(StatusCode, Json<store::tenants::Tenant>), ApiError> {
    let blank = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    let length = body.name.chars().count();
    if !(1..=200).contains(&length) || body.name.chars().all(blank) || body.name.contains('\0') {
        return Err(ApiError::invalid(
            "name",
            "must be 1-200 characters, not all blank, without NUL",
        ));
    }
    let name = body.name.trim_matches(blank);
    let mut tx = state.pool.begin().await?;
    let Some(tenant) = store::tenants::insert(&mut tx, body.id.as_str(), name).await? else {
        return Err(ApiError::conflict(format!(
            "tenant '{}' already exists",
            body.id.as_str()
        )));
    };
    let entry = Entry {
        tenant: Some(&tenant.id),
        action: Action::TenantCreated,
        target: Some(tenant.id.clone()),
        changes: serde_json::json!({"name": tenant.name}),
    };
    audit::record(&mut tx, &Actor::from(&principal), entry).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewKeyRequest {
    role: Role,
    /// When the key stops working (it is refused like a revoked one from then on); must
    /// be in the future (409 otherwise). Without it the key works until revoked.
    expires_at: Option<DateTime<Utc>>,
}

/// A new API key; `key` is the secret, shown only here.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct CreatedKey {
    id: Uuid,
    /// The secret, shown only in this response.
    key: String,
    role: Role,
    tenant: Option<String>,
    created: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
}

async fn create_key(
    Platform(principal): Platform,
    State(state): State<AppState>,
    ApiPath(TenantPath { tenant }): ApiPath<TenantPath>,
    ApiJson(body): ApiJson<NewKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let tenant = tenant.into_string();
    // Well-formed, but at odds with the clock rather than the schema: 409, like other
    // requests that fit the contract and not the server's present state.
    if body.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(ApiError::conflict(
            "expires_at is not in the future: the key would never work",
        ));
    }
    if !store::tenants::exists(&state.pool, &tenant).await? {
        return Err(ApiError::NotFound { resource: "tenant" });
    }
    // A platform key is not bound to a tenant, whatever path it was created under.
    let bound_tenant = (body.role == Role::Client).then_some(tenant.as_str());
    let new_key = NewKey::generate().map_err(ApiError::internal)?;
    let mut tx = state.pool.begin().await?;
    let stored = store::keys::insert(
        &mut tx,
        &new_key.hash,
        body.role.as_str(),
        bound_tenant,
        body.expires_at,
    )
    .await?;
    let entry = Entry {
        tenant: stored.tenant_id.as_deref(),
        action: Action::KeyCreated,
        target: Some(stored.id.to_string()),
        changes: serde_json::json!({"role": body.role, "expires_at": stored.expires_at}),
    };
    audit::record(&mut tx, &Actor::from(&principal), entry).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            id: stored.id,
            key: new_key.secret,
            role: body.role,
            tenant: stored.tenant_id,
            created: stored.created,
            expires_at: stored.expires_at,
        }),
    ))
}

async fn revoke_key(
    Platform(principal): Platform,
    State(state): State<AppState>,
    ApiPath(KeyPath { id }): ApiPath<KeyPath>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    let revoked = store::keys::revoke(&mut *tx, id)
        .await?
        .ok_or(ApiError::NotFound { resource: "key" })?;
    let entry = Entry {
        tenant: revoked.tenant_id.as_deref(),
        action: Action::KeyRevoked,
        target: Some(id.to_string()),
        changes: serde_json::json!({"role": revoked.role}),
    };
    audit::record(&mut tx, &Actor::from(&principal), entry).await?;
    tx.commit().await?;
    // This replica refuses it from the next request on; the others when the key's
    // notification arrives (key_cache.rs).
    state.key_cache.forget(id);
    Ok(StatusCode::NO_CONTENT)
}
