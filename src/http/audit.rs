//! `GET /audit`: the audit trail. A platform key reads every tenant's entries (or one
//! tenant's with `?tenant=`) and the server's own; a client key reads its own tenant's
//! only. Pages follow each other with `after` like the feed's, and never skip an entry
//! that commits late.

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::Action;
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiQuery};
use crate::feed::cursor::{Cursor, Position};
use crate::http::openapi::Problems;
use crate::http::pagination::{CursorParam, Limit};
use crate::http::tenant_id::TenantId;
use crate::store::audit::{self as store, EntryRow, Filter};

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new().api_route(
        "/audit",
        get_with(list, |op| {
            op.id("listAudit")
                .summary(
                    "The audit trail of administrative actions, oldest first, a page at a time",
                )
                .description(
                    "Who created or revoked a key, created a tenant, or created, changed, \
                     enabled, disabled, replayed or deleted a destination, rotated its secret or \
                     retried a delivery: each entry is written in the transaction of the change. \
                     A client key sees its own tenant's entries; a platform key sees all. Pass \
                     each page's `next_cursor` back as `after`.",
                )
                .tag("audit")
                .problems(&[403])
        }),
    )
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    /// Platform key: only this tenant's entries. A client key may only name its own.
    tenant: Option<TenantId>,
    /// Only entries of this action.
    action: Option<Action>,
    /// Only entries recorded at or after this time.
    since: Option<DateTime<Utc>>,
    /// Only entries recorded before this time.
    until: Option<DateTime<Utc>>,
    /// The `next_cursor` of the previous page.
    after: Option<CursorParam>,
    limit: Option<Limit>,
}

/// Who acted.
#[derive(Debug, Serialize, JsonSchema)]
struct AuditActor {
    /// The API key; null for the operator's command line and the server itself.
    key_id: Option<Uuid>,
    /// `client`, `platform`, `operator` (the command line) or `system` (the server, e.g.
    /// the platform key configured at start-up).
    role: String,
}

/// One administrative action.
#[derive(Debug, Serialize, JsonSchema)]
struct AuditEntry {
    /// This entry's position: a cursor to read after it.
    #[schemars(with = "Cursor")]
    cursor: String,
    at: DateTime<Utc>,
    actor: AuditActor,
    /// The tenant concerned; null for actions on the platform's own keys.
    tenant: Option<String>,
    action: Action,
    /// The id of what was acted on (a tenant, key or destination).
    target: Option<String>,
    /// The `x-request-id` of the request that acted.
    request_id: Option<String>,
    /// What changed (URLs with their password and query redacted; secrets are never
    /// recorded).
    changes: Value,
}

impl AuditEntry {
    fn from_row(row: EntryRow) -> Option<Self> {
        Some(Self {
            cursor: row.position().encode(),
            at: row.at,
            actor: AuditActor {
                key_id: row.actor_key_id,
                role: row.actor_role,
            },
            tenant: row.tenant_id,
            action: serde_json::from_value(Value::String(row.action)).ok()?,
            target: row.target,
            request_id: row.request_id,
            changes: row.changes,
        })
    }
}

/// One page of entries.
#[derive(Debug, Serialize, JsonSchema)]
struct AuditPage {
    data: Vec<AuditEntry>,
    /// Pass as `after` for the next page; null while there is no entry to read after.
    #[schemars(with = "Option<Cursor>")]
    next_cursor: Option<String>,
}

async fn list(
    principal: Principal,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let named = params.tenant.as_ref().map(TenantId::as_str);
    let tenant = match (principal.role, principal.tenant.as_deref(), named) {
        // A client key is always bound to a tenant (a constraint of the table); one that
        // was not would see nothing rather than everything.
        (Role::Client, None, _) => return Err(ApiError::Forbidden { role: "client" }),
        (Role::Client, Some(own), Some(named)) if named != own => {
            return Err(ApiError::Forbidden { role: "client" });
        }
        (Role::Client, Some(own), _) => Some(own),
        (Role::Platform, _, named) => named,
    };
    let after = params.after.map(|cursor| cursor.0);
    let filter = Filter {
        tenant,
        action: params.action.map(Action::as_str),
        since: params.since,
        until: params.until,
        after,
    };
    let rows = store::list(&state.pool, &filter, Limit::or_default(params.limit)).await?;
    let next_cursor = rows
        .last()
        .map(EntryRow::position)
        .or(after)
        .map(Position::encode);
    // An action name this release does not know (written by a newer one) is left out.
    let data = rows.into_iter().filter_map(AuditEntry::from_row).collect();
    Ok(Json(AuditPage { data, next_cursor }))
}
