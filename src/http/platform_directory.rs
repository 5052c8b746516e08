//! Platform key only: the tenants, and each tenant's API keys (never their secrets), a page
//! at a time.

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Platform;
use crate::error::{ApiError, ApiPath, ApiQuery};
use crate::http::openapi::Problems;
use crate::http::pagination::Limit;
use crate::http::tenant_id::TenantId;
use crate::store;
use crate::store::keys::ListedKey;
use crate::store::tenants::Tenant;

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/platform/tenants",
            get_with(list_tenants, |op| {
                op.id("listTenants")
                    .summary("Every tenant, by id, a page at a time")
                    .tag("platform")
            }),
        )
        .api_route(
            "/platform/tenants/{tenant}/keys",
            get_with(list_keys, |op| {
                op.id("listKeys")
                    .summary("A tenant's client keys, oldest first, revoked ones included")
                    .description(
                        "Never the secrets: only their hashes are stored. Platform keys are \
                         bound to no tenant and are not listed here.",
                    )
                    .tag("platform")
                    .problems(&[404])
            }),
        )
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct TenantListParams {
    /// The `next_cursor` of the previous page (a tenant id): the page starts after it.
    after: Option<TenantId>,
    limit: Option<Limit>,
}

/// One page of tenants, by id.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct TenantPage {
    data: Vec<Tenant>,
    /// Pass as `after` for the next page; null when there has been no page yet.
    next_cursor: Option<String>,
    has_more: bool,
}

async fn list_tenants(
    Platform(_): Platform,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<TenantListParams>,
) -> Result<Json<TenantPage>, ApiError> {
    let limit = Limit::or_default(params.limit);
    let after = params.after.map(TenantId::into_string);
    let mut data = store::tenants::list(&state.pool, after.as_deref(), limit + 1).await?;
    let has_more = data.len() as i64 > limit;
    data.truncate(limit as usize);
    let next_cursor = data.last().map(|t| t.id.clone()).or(after);
    Ok(Json(TenantPage {
        data,
        next_cursor,
        has_more,
    }))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct KeysPath {
    tenant: TenantId,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct KeyListParams {
    /// The `next_cursor` of the previous page (a key id): the page starts after it.
    after: Option<Uuid>,
    limit: Option<Limit>,
}

/// One page of a tenant's keys, oldest first.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct KeyPage {
    data: Vec<ListedKey>,
    /// Pass as `after` for the next page; null when there has been no page yet.
    next_cursor: Option<Uuid>,
    has_more: bool,
}

async fn list_keys(
    Platform(_): Platform,
    State(state): State<AppState>,
    ApiPath(KeysPath { tenant }): ApiPath<KeysPath>,
    ApiQuery(params): ApiQuery<KeyListParams>,
) -> Result<Json<KeyPage>, ApiError> {
    let tenant = tenant.into_string();
    if !store::tenants::exists(&state.pool, &tenant).await? {
        return Err(ApiError::NotFound { resource: "tenant" });
    }
    let limit = Limit::or_default(params.limit);
    let mut data =
        store::keys::list_for_tenant(&state.pool, &tenant, params.after, limit + 1).await?;
    let has_more = data.len() as i64 > limit;
    data.truncate(limit as usize);
    let next_cursor = data.last().map(|k| k.id).or(params.after);
    Ok(Json(KeyPage {
        data,
        next_cursor,
        has_more,
    }))
}
