//! `GET /me` (any key): what the key a request is made with may do. The console asks it
//! at sign-in to know which pages to show; any client can use it to check its key.

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::Json;
use serde::Serialize;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Principal, Role};

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new().api_route(
        "/me",
        get_with(me, |op| {
            op.id("getMe")
                .summary("The key this request is made with: its id, role and tenant")
                .tag("public")
        }),
    )
}

/// The key a request is made with.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Me {
    key_id: Uuid,
    role: Role,
    /// The tenant a client key acts for; null for a platform key (it acts for all).
    tenant: Option<String>,
}

async fn me(principal: Principal) -> Json<Me> {
    Json(Me {
        key_id: principal.key_id,
        role: principal.role,
        tenant: principal.tenant,
    })
}
