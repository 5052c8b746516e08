//! `GET /events/digest` (client key): the count and a hash of the event ids in a range of
//! the tenant's feed, the completeness evidence an auditor asks for. The hash is SHA-256
//! over each event id (lowercase, hyphenated) followed by a line feed, in feed order; a
//! client computes the same over the ids it stored (README).

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::ClientTenant;
use crate::error::{ApiError, ApiQuery};
use crate::feed::cursor::{Cursor, Position};
use crate::http::openapi::Problems;
use crate::http::pagination::CursorParam;
use crate::store::digest;

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new().api_route(
        "/events/digest",
        get_with(range_digest, |op| {
            op.id("getEventDigest")
                .summary("How many events, and which, lie between two feed cursors")
                .description(
                    "The tenant's events after `from` (the feed's start without it) up to and \
                     including `to`: their count, and the SHA-256 (hex) of their ids, each in \
                     lowercase hyphenated form followed by a line feed (`\\n`), in feed order. \
                     A client that stored the same events computes the same hash. `to` ahead of \
                     what the feed has served is 409 (the range is not final yet); `from` \
                     before the retained feed is 410.",
                )
                .tag("client")
                .problems(&[400, 409, 410])
        }),
    )
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DigestParams {
    /// Exclusive: a cursor the range starts after; the feed's start when absent.
    from: Option<CursorParam>,
    /// Inclusive: a cursor the feed gave, such as a page's `next_cursor`.
    to: CursorParam,
}

/// The digest of a range of the feed.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct EventDigest {
    #[schemars(with = "Option<Cursor>")]
    from: Option<String>,
    #[schemars(with = "Cursor")]
    to: String,
    /// How many events the range holds.
    count: i64,
    /// SHA-256, lowercase hex, of every event id in the range followed by `\n`, in feed
    /// order (of the empty text when there is none).
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    sha256: String,
}

async fn range_digest(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<DigestParams>,
) -> Result<Json<EventDigest>, ApiError> {
    let from = params.from.map_or(Position::START, |cursor| cursor.0);
    let to = params.to.0;
    let digest = digest::digest(&state.pool, &tenant, from, to).await?;
    if to > Position::horizon(digest.xmin.0) {
        return Err(ApiError::conflict(
            "`to` is ahead of what the feed has served: that range is not final yet",
        ));
    }
    // Without `from`, the range starts at the oldest retained event.
    if params.from.is_some() && digest.purged_through().is_some_and(|purged| from < purged) {
        return Err(ApiError::Gone {
            detail: "`from` is before the retained feed: events of that range may be purged".into(),
        });
    }
    Ok(Json(EventDigest {
        from: params.from.map(|cursor| cursor.0.encode()),
        to: to.encode(),
        count: digest.count,
        sha256: digest.sha256,
    }))
}
