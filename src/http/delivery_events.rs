//! `GET /platform/delivery-events` (platform key): every tenant's delivery health events
//! (`destinations.failing`, `destinations.recovered`, `destinations.disabled`) in one
//! feed, so an operator learns of a broken destination from eventgate itself. Same order
//! and cursors as a tenant's feed, gap-free; each event comes with its tenant.

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::app::AppState;
use crate::auth::Platform;
use crate::error::{ApiError, ApiQuery};
use crate::feed::cursor::{Cursor, Position};
use crate::http::openapi::{EnvelopeSchema, Problems};
use crate::http::pagination::{CursorParam, Limit};
use crate::store::delivery_health;

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new().api_route(
        "/platform/delivery-events",
        get_with(list, |op| {
            op.id("listDeliveryEvents")
                .summary("Every tenant's delivery health events, oldest first, a page at a time")
                .description(
                    "The `destinations.*` events of every tenant (a destination failing for \
                     EVENTGATE_DESTINATION_FAILING_AFTER_SECS, recovering, or disabled), \
                     each with its tenant, in the feed's gap-free order. Pass each page's \
                     `next_cursor` back as `after`. The events are also in each tenant's own \
                     feed and pushed to its destinations; they are purged with the tenant's \
                     feed.",
                )
                .tag("platform")
                .problems(&[403])
        }),
    )
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Params {
    /// The `next_cursor` of the previous page; without it, from the oldest kept event.
    after: Option<CursorParam>,
    limit: Option<Limit>,
}

/// One tenant's delivery health event.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct DeliveryEvent {
    tenant: String,
    /// The event as the tenant's feed serves it.
    #[schemars(with = "EnvelopeSchema")]
    event: Box<RawValue>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct DeliveryEventPage {
    data: Vec<DeliveryEvent>,
    /// Pass as `after`; always present (the same cursor when the page is empty).
    #[schemars(with = "Cursor")]
    next_cursor: String,
}

async fn list(
    _: Platform,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<Params>,
) -> Result<Json<DeliveryEventPage>, ApiError> {
    let after = params.after.map_or(Position::START, |cursor| cursor.0);
    let page =
        delivery_health::read_events(&state.pool, after, Limit::or_default(params.limit)).await?;
    let next = match (page.events.last(), params.after) {
        (Some(last), _) => last.position(),
        (None, Some(given)) => given.0,
        // Nothing yet: everything below the horizon was looked at.
        (None, None) => Position::horizon(page.xmin),
    };
    let data = page
        .events
        .into_iter()
        .map(|event| {
            let envelope = RawValue::from_string(event.envelope).map_err(ApiError::internal)?;
            Ok(DeliveryEvent {
                tenant: event.tenant_id,
                event: envelope,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(DeliveryEventPage {
        data,
        next_cursor: next.encode(),
    }))
}
