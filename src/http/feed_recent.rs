//! `GET /events/recent` (client key): the tenant's newest events, newest first, for a
//! person looking back (the console); and the cursor from which `GET /events/` follows
//! what commits next, without a gap.

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::feed::{Listing, MAX_TYPE_FILTERS, parse_params};
use crate::app::AppState;
use crate::auth::ClientTenant;
use crate::error::{ApiError, ApiQuery};
use crate::feed::cursor::{Cursor, Position};
use crate::http::destination_docs::TypeFilter;
use crate::http::openapi::{EnvelopeSchema, Problems};
use crate::http::pagination::Limit;
use crate::store;

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new().api_route(
        "/events/recent",
        get_with(recent_events, |op| {
            op.id("listRecentEvents")
                .summary("The tenant's newest events, newest first, a page at a time")
                .description(
                    "For looking back, not for following: pass `next_cursor` as `before` for \
                     older events. `follow_cursor`, passed as `after` to `GET /events/`, gives \
                     every event that commits after this page was read, none missed.",
                )
                .tag("client")
                .input::<ApiQuery<RecentQuery>>()
                .response::<200, Json<RecentPage>>()
                .problems(&[400])
        }),
    )
}

/// The query (read by hand with the feed's: `type` repeats).
#[derive(schemars::JsonSchema)]
#[allow(dead_code)] // Documents the query; `parse_params` reads it.
struct RecentQuery {
    /// The previous page's `next_cursor`: only events before it.
    before: Option<Cursor>,
    limit: Option<Limit>,
    /// Keep only these event types (`subject.action` or `subject.*`); repeat to keep more.
    #[serde(rename = "type")]
    #[schemars(length(max = MAX_TYPE_FILTERS))]
    types: Option<Vec<TypeFilter>>,
}

/// The newest events, newest first.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)] // Documents the page; the server joins the stored envelopes itself.
struct RecentPage {
    data: Vec<EnvelopeSchema>,
    /// Pass as `before` for older events (the oldest event of this page; `before` itself
    /// when the page is empty; absent when there has been no event).
    next_cursor: Option<Cursor>,
    /// Older events are there.
    has_more: bool,
    /// Pass as `after` to `GET /events/` to follow every event committed after this read.
    follow_cursor: Cursor,
}

async fn recent_events(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = parse_params(query.as_deref(), Listing::Recent)?;
    let types = (!params.types.is_empty()).then_some(params.types.as_slice());
    let (xmin, mut events) =
        store::feed::recent(&state.pool, &tenant, params.before, types, params.limit + 1).await?;
    let has_more = events.len() as i64 > params.limit;
    events.truncate(params.limit as usize);
    let next_cursor = events
        .last()
        .map(|(position, _)| *position)
        .or(params.before)
        .map(|position| serde_json::Value::String(position.encode()));
    let follow = serde_json::Value::String(Position::horizon(xmin).encode());
    let data: Vec<&str> = events
        .iter()
        .map(|(_, envelope)| envelope.as_str())
        .collect();
    // The envelopes are already JSON; the page is assembled around them.
    let body = format!(
        r#"{{"data":[{}],"next_cursor":{},"has_more":{has_more},"follow_cursor":{follow}}}"#,
        data.join(","),
        next_cursor.unwrap_or(serde_json::Value::Null),
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}
