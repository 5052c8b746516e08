//! `POST /destinations/{id}/replay`: moves a destination's position, to deliver again from
//! a feed cursor or a time, from the oldest event still kept (after a gap left by
//! retention), or from now (skipping a backlog).

use aide::axum::ApiRouter;
use aide::axum::routing::post_with;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::destination_view::{DestinationView, view};
use super::destinations::{DestinationPath, find};
use crate::app::AppState;
use crate::audit::{self, Action, Actor, Entry};
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::feed::cursor::{Cursor, Position};
use crate::http::openapi::Problems;
use crate::store::{destinations as store, feed, retention};

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new().api_route(
        "/destinations/{id}/replay",
        post_with(replay, |op| {
            op.id("replayDestination")
                .summary("Move the position: to a feed cursor, a time, the oldest kept event or now")
                .description(
                    "Also how a client resolves a gap left by retention (`{\"from\": \"oldest\"}`). \
                     A cursor into the tenant's purged range is 410; one ahead of the feed, 409.",
                )
                .tag("destinations")
                .problems(&[404, 409, 410])
        }),
    )
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum ReplayFrom {
    /// The oldest event still kept: acknowledges a gap and delivers what is left.
    Oldest,
    /// Skip everything committed so far.
    Now,
}

/// Exactly one of: `after` (a feed cursor), `since` (a time: the first event created at or
/// after it), `from` (`oldest` or `now`).
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
enum ReplayRequest {
    After {
        #[schemars(with = "Cursor")]
        after: String,
    },
    Since {
        since: DateTime<Utc>,
    },
    From {
        from: ReplayFrom,
    },
}

async fn replay(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath(DestinationPath { id }): ApiPath<DestinationPath>,
    ApiJson(body): ApiJson<ReplayRequest>,
) -> Result<Json<DestinationView>, ApiError> {
    let row = find(&state, &principal, id).await?;
    let tenant = row.tenant_id.as_str();
    let horizon = feed::horizon(&state.pool).await?;
    let oldest = retention::watermark(&state.pool, tenant).await?;
    let requested = serde_json::to_value(&body).unwrap_or_default();
    let position = match body {
        ReplayRequest::After { after } => {
            let position = Position::decode(&after)
                .ok_or_else(|| ApiError::invalid("after", "not a cursor this server issued"))?;
            if position.tx_id >= horizon.next {
                return Err(ApiError::conflict(
                    "this cursor is ahead of the feed: no such position has been served yet",
                ));
            }
            if oldest.is_some_and(|oldest| position < oldest) {
                return Err(ApiError::Gone {
                    detail: "events after this cursor were purged; replay with {\"from\": \"oldest\"} or a later cursor or time".into(),
                });
            }
            position
        }
        ReplayRequest::Since { since } => feed::position_before(&state.pool, tenant, since)
            .await?
            // Nothing created since then: deliver what commits from now on.
            .unwrap_or(Position::horizon(horizon.xmin)),
        ReplayRequest::From {
            from: ReplayFrom::Oldest,
        } => oldest.unwrap_or(Position::START),
        ReplayRequest::From {
            from: ReplayFrom::Now,
        } => Position::horizon(horizon.xmin),
    };
    let mut tx = state.pool.begin().await?;
    store::set_position(&mut *tx, id, position).await?;
    let entry = Entry {
        tenant: Some(tenant),
        action: Action::DestinationReplayed,
        target: Some(id.to_string()),
        changes: serde_json::json!({"requested": requested, "position": position.encode()}),
    };
    audit::record(&mut tx, &Actor::from(&principal), entry).await?;
    tx.commit().await?;
    let row = find(&state, &principal, id).await?;
    Ok(Json(view(&state, row).await?))
}
