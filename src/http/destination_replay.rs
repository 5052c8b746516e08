//! `POST /destinations/{id}/replay`: moves a destination's position, to deliver again from
//! a feed cursor or a time, from the oldest event still kept (after a gap left by
//! retention), or from now (skipping a backlog).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::destination_view::view;
use super::destinations::find;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::feed::cursor::Position;
use crate::store::{destinations as store, feed, retention};

pub fn router() -> Router<AppState> {
    Router::new().route("/destinations/{id}/replay", post(replay))
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ReplayFrom {
    /// The oldest event still kept: acknowledges a gap and delivers what is left.
    Oldest,
    /// Skip everything committed so far.
    Now,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    after: Option<String>,
    since: Option<DateTime<Utc>>,
    from: Option<ReplayFrom>,
}

async fn replay(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ReplayRequest>,
) -> Result<Json<Value>, ApiError> {
    let row = find(&state, &principal, id).await?;
    let tenant = row.tenant_id.as_str();
    let horizon = feed::horizon(&state.pool).await?;
    let oldest = retention::watermark(&state.pool, tenant).await?;
    let position = match (body.after, body.since, body.from) {
        (Some(cursor), None, None) => {
            let position = Position::decode(&cursor)
                .filter(|position| position.tx_id < horizon.next)
                .ok_or_else(|| ApiError::invalid("after", "not a cursor this server issued"))?;
            if oldest.is_some_and(|oldest| position < oldest) {
                return Err(ApiError::Gone {
                    detail: "events after this cursor were purged; replay with {\"from\": \"oldest\"} or a later cursor or time".into(),
                });
            }
            position
        }
        (None, Some(since), None) => feed::position_before(&state.pool, tenant, since)
            .await?
            // Nothing created since then: deliver what commits from now on.
            .unwrap_or(Position::horizon(horizon.xmin)),
        (None, None, Some(ReplayFrom::Oldest)) => oldest.unwrap_or(Position::START),
        (None, None, Some(ReplayFrom::Now)) => Position::horizon(horizon.xmin),
        _ => {
            return Err(ApiError::UnprocessableBody {
                detail: "send exactly one of `after` (a feed cursor), `since` (an RFC 3339 time) or `from` (\"oldest\" or \"now\")"
                    .into(),
            });
        }
    };
    store::set_position(&state.pool, id, position).await?;
    let row = find(&state, &principal, id).await?;
    Ok(Json(view(&state, row).await?))
}
