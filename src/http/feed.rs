//! `GET /events/` (client key): the tenant's outbound feed, cursor-paginated, with
//! long-polling; and `GET /events/{id}`. See `crate::feed` for the ordering guarantee.

use std::fmt::Write as _;
use std::time::Duration;

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use aide::transform::TransformOperation;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use schemars::json_schema;
use serde::Deserialize;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::ClientTenant;
use crate::catalogue::TypePattern;
use crate::error::{ApiError, ApiPath, ApiQuery};
use crate::feed::cursor::{Cursor, Position};
use crate::feed::{self, AnsweredLink, FeedError, PageRequest, Rendered};
use crate::http::destination_docs::TypeFilter;
use crate::http::openapi::{EnvelopeSchema, Problems, response_header};
use crate::http::pagination;
use crate::http::pagination::Limit;
use crate::store;

pub const MAX_WAIT_SECS: u64 = 30;
/// Present when the tenant has committed events after this page that an open transaction
/// in the cluster holds back; its value is how long the horizon has not moved, in seconds.
pub const HELD_BACK_HEADER: &str = "eventgate-held-back";
pub(super) const MAX_TYPE_FILTERS: usize = 20;

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/events/",
            get_with(list_events, |op| feed_docs(op).id("listEvents")),
        )
        .api_route(
            "/events",
            get_with(list_events, |op| {
                feed_docs(op)
                    .id("listEventsWithoutSlash")
                    .summary("Same as /events/")
            }),
        )
        .api_route(
            "/events/{id}",
            get_with(get_event, |op| {
                op.id("getEvent")
                    .summary("One event of the tenant's feed, as stored")
                    .tag("client")
                    .response::<200, Json<EnvelopeSchema>>()
                    .problems(&[404])
            }),
        )
}

fn feed_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.summary("The tenant's outbound feed, a page at a time, gap-free")
        .description(
            "Pass each page's `next_cursor` back as `after`, forever: every committed event \
             comes exactly once, in one final order. `wait` (up to 30 s) holds an empty page \
             until an event commits, so a client's timeout must be above 30 s. A cursor \
             before the retained feed is 410. A tenant may have \
             EVENTGATE_MAX_LONG_POLLS_PER_TENANT long-polls waiting (429 beyond).",
        )
        .tag("client")
        .input::<ApiQuery<FeedQuery>>()
        .response::<200, Json<FeedPageDoc>>()
        .with(|mut op| {
            let operation = op.inner_mut();
            response_header(
                operation,
                200,
                "Link",
                false,
                "The next page (`rel=\"next\"`), with the same filters.",
                json_schema!({"type": "string"}),
            );
            response_header(
                operation,
                200,
                "Eventgate-Held-Back",
                false,
                "Present when the tenant has committed events after this page that an open \
                 transaction in the PostgreSQL cluster holds back (\"not yet\", not \"nothing \
                 new\"): how long, in seconds, the feed's horizon has not moved.",
                json_schema!({"type": "integer", "minimum": 0}),
            );
            op
        })
        .problems(&[400, 409, 410])
}

/// The feed's query (read by hand: `type` repeats, and unknown or repeated parameters are
/// refused).
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct FeedQuery {
    /// The previous page's `next_cursor`; without it (and without `since`), the feed
    /// starts at the oldest retained event.
    after: Option<Cursor>,
    /// Instead of `after`: start just before the first event (in feed order) created at
    /// or after this time; when there is none yet, at the events still to come. Follow on
    /// with `after`.
    since: Option<DateTime<Utc>>,
    limit: Option<Limit>,
    /// Keep only these event types (`subject.action` or `subject.*`); repeat to keep more.
    #[serde(rename = "type")]
    #[schemars(length(max = 20))]
    types: Option<Vec<TypeFilter>>,
    /// Seconds to hold an empty page waiting for an event (long-poll).
    #[schemars(range(min = 0, max = 30))]
    wait: Option<u64>,
}

/// One page of the feed.
#[derive(schemars::JsonSchema)]
#[schemars(rename = "FeedPage")]
#[allow(dead_code)] // Documents the page; the server joins the stored envelopes itself.
struct FeedPageDoc {
    data: Vec<EnvelopeSchema>,
    /// Pass as `after`; always present (the same cursor when the page is empty).
    next_cursor: Cursor,
    /// More events are ready now: ask again at once.
    has_more: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct EventPath {
    id: Uuid,
}

#[derive(Debug, Default)]
pub(super) struct FeedParams {
    pub(super) after: Option<Position>,
    after_raw: Option<String>,
    pub(super) before: Option<Position>,
    since: Option<DateTime<Utc>>,
    pub(super) limit: i64,
    pub(super) types: Vec<String>,
    type_raw: Vec<String>,
    wait: u64,
}

/// Which listing the parameters are for: each takes its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listing {
    /// `GET /events/`: `after` or `since`, `limit`, `type`, `wait`.
    Follow,
    /// `GET /events/recent`: `before`, `limit`, `type`.
    Recent,
}

pub(super) fn parse_params(query: Option<&str>, listing: Listing) -> Result<FeedParams, ApiError> {
    let mut params = FeedParams::default();
    let mut limit = None;
    let follow = listing == Listing::Follow;
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "before" if !follow && params.before.is_none() => {
                params.before = Some(Position::decode(&value).ok_or_else(|| {
                    ApiError::bad_request("before: not a cursor this server issued")
                })?);
            }
            "since" if follow && params.since.is_none() && params.after_raw.is_none() => {
                params.since = Some(
                    DateTime::parse_from_rfc3339(&value)
                        .map_err(|_| {
                            ApiError::bad_request(
                                "since: not an RFC 3339 date-time (e.g. 2026-12-01T09:30:00Z)",
                            )
                        })?
                        .with_timezone(&Utc),
                );
            }
            "after" if follow && params.after_raw.is_none() && params.since.is_none() => {
                params.after = Some(Position::decode(&value).ok_or_else(|| {
                    ApiError::bad_request("after: not a cursor this server issued")
                })?);
                params.after_raw = Some(value.into_owned());
            }
            "limit" if limit.is_none() => {
                limit = Some(value.parse::<i64>().map_err(|_| {
                    ApiError::bad_request("limit must be an integer between 1 and 1000")
                })?);
            }
            "type" => {
                let pattern = TypePattern::parse(&value).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "type: unknown event type '{value}' (use subject.action or subject.*; GET /catalogue lists them)"
                    ))
                })?;
                if params.type_raw.len() == MAX_TYPE_FILTERS {
                    return Err(ApiError::bad_request(format!(
                        "at most {MAX_TYPE_FILTERS} type filters"
                    )));
                }
                params.types.extend(pattern.names());
                params.type_raw.push(value.into_owned());
            }
            "wait" if follow && params.wait == 0 => {
                params.wait = value
                    .parse::<u64>()
                    .ok()
                    .filter(|w| *w <= MAX_WAIT_SECS)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "wait must be a whole number of seconds from 0 to {MAX_WAIT_SECS}"
                        ))
                    })?;
            }
            // Each is valid alone (the contract cannot say "one of"): a conflict, not a
            // malformed request.
            "after" | "since"
                if follow
                    && (name == "after" && params.since.is_some()
                        || name == "since" && params.after_raw.is_some()) =>
            {
                return Err(ApiError::conflict(
                    "give `after` or `since`, not both: the feed starts at one place",
                ));
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown or repeated query parameter '{other}'"
                )));
            }
        }
    }
    params.limit = pagination::limit(limit)?;
    params.types.sort();
    params.types.dedup();
    Ok(params)
}

/// The `Link` to the next page, written into one buffer: it goes out with every page, and
/// as a chain of `to_string`s and a serializer it took five allocations an answer, now two
/// (of about eighteen a long-poll's answer makes, measured with 5,000 waiting).
fn next_link(params: &FeedParams, next_cursor: &str) -> Option<HeaderValue> {
    use form_urlencoded::byte_serialize as encoded;
    // Room for the longest encoding (every byte as %XX), so the buffer never grows.
    let types: usize = params.type_raw.iter().map(|t| 6 + 3 * t.len()).sum();
    let mut link = String::with_capacity(80 + 3 * next_cursor.len() + types);
    link.push_str("</events/?after=");
    link.extend(encoded(next_cursor.as_bytes()));
    // Integers need no encoding; written in place (a String's `write_fmt` cannot fail).
    let _ = write!(link, "&limit={}", params.limit);
    for pattern in &params.type_raw {
        link.push_str("&type=");
        link.extend(encoded(pattern.as_bytes()));
    }
    if params.wait > 0 {
        let _ = write!(link, "&wait={}", params.wait);
    }
    link.push_str(">; rel=\"next\"");
    // The buffer becomes the header value's bytes, not copied.
    HeaderValue::from_maybe_shared(Bytes::from(link)).ok()
}

/// The `Link` of a page with events: made once, by the first request answered with the
/// page, and shared by every later one that asked alike. The long-polls one commit wakes
/// on one page ask alike; writing the link for each of them was about 1,400 instructions
/// of the 18,000 an answer cost the server's own code (callgrind, docs/BENCHMARKS.md,
/// twenty-seventh section).
fn answered_link(params: &FeedParams, rendered: &Rendered) -> Option<HeaderValue> {
    let alike = |link: &AnsweredLink| link.wait == params.wait && link.type_raw == params.type_raw;
    if let Some(link) = rendered.link.get().filter(|link| alike(link)) {
        return Some(link.value.clone());
    }
    let value = next_link(params, &rendered.next_cursor)?;
    // Taken by the first; a request that asked otherwise keeps its own.
    let _ = rendered.link.set(AnsweredLink {
        wait: params.wait,
        type_raw: params.type_raw.clone(),
        value: value.clone(),
    });
    Some(value)
}

impl From<FeedError> for ApiError {
    fn from(err: FeedError) -> Self {
        match err {
            FeedError::Gone => ApiError::Gone {
                detail: "this cursor points before the retained feed; restart without `after`"
                    .into(),
            },
            FeedError::Database(err) => err.into(),
        }
    }
}

async fn list_events(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = parse_params(query.as_deref(), Listing::Follow)?;
    let after = match params.since {
        Some(since) => Some(store::feed::start_at(&state.pool, &tenant, since).await?),
        None => params.after,
    };
    let request = PageRequest {
        tenant,
        after,
        types: (!params.types.is_empty()).then(|| params.types.clone()),
        limit: params.limit,
    };
    let page = if params.wait == 0 {
        state.read_ahead.read(&state.pool, &request).await?
    } else {
        // Held until the answer: the place is this request's while it waits.
        let _place = state.long_polls.try_start(&request.tenant).ok_or_else(|| {
            ApiError::TooManyRequests {
                detail: format!(
                    "this tenant already has {} long-polls waiting; poll with wait=0 or retry later",
                    state.long_polls.per_tenant()
                ),
                retry_after_secs: 1,
            }
        })?;
        feed::wait_for_page(
            &state.pool,
            &state.notifier,
            &state.read_ahead,
            &state.waiting,
            state.shutdown.clone(),
            &request,
            Duration::from_secs(params.wait),
        )
        .await?
    };
    let (body, link) = match (&params.after_raw, page.count == 0) {
        // An empty page answers the very cursor it was given.
        (Some(raw), true) => (page.body(raw), next_link(&params, raw)),
        (None, true) => {
            let next_cursor = page.next.encode();
            (page.body(&next_cursor), next_link(&params, &next_cursor))
        }
        (_, false) => {
            let rendered = page.rendered();
            (rendered.body.clone(), answered_link(&params, rendered))
        }
    };
    let mut response = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Some(link) = link {
        response.headers_mut().insert(header::LINK, link);
    }
    if page.held_back {
        // "Not yet", not "nothing new": committed events wait behind an open transaction.
        let seconds = state.horizon.held_seconds().floor() as u64;
        response
            .headers_mut()
            .insert(HELD_BACK_HEADER, HeaderValue::from(seconds));
    }
    Ok(response)
}

async fn get_event(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
    ApiPath(EventPath { id }): ApiPath<EventPath>,
) -> Result<Response, ApiError> {
    let envelope = store::feed::get_event(&state.pool, &tenant, id)
        .await?
        .ok_or(ApiError::NotFound { resource: "event" })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        envelope,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The link as a form serializer writes it, the way `next_link` wrote it before it
    /// wrote into one buffer.
    fn serialized(params: &FeedParams, next_cursor: &str) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("after", next_cursor);
        query.append_pair("limit", &params.limit.to_string());
        for pattern in &params.type_raw {
            query.append_pair("type", pattern);
        }
        if params.wait > 0 {
            query.append_pair("wait", &params.wait.to_string());
        }
        format!("</events/?{}>; rel=\"next\"", query.finish())
    }

    proptest! {
        #[test]
        fn the_next_link_is_the_form_serializers(
            cursor in "\\PC{0,40}",
            type_raw in proptest::collection::vec("\\PC{0,20}", 0..4),
            limit in 1i64..=1000,
            wait in 0u64..=30,
        ) {
            let params = FeedParams { limit, type_raw, wait, ..FeedParams::default() };
            let link = next_link(&params, &cursor).expect("a valid header value");
            prop_assert_eq!(link.to_str().expect("visible ASCII"), serialized(&params, &cursor));
        }
    }

    #[test]
    fn the_next_link_carries_every_filter() {
        let params = FeedParams {
            limit: 50,
            type_raw: vec!["portfolios.*".into(), "fundings.created".into()],
            wait: 30,
            ..FeedParams::default()
        };
        assert_eq!(
            next_link(&params, "c+/=").expect("a valid header value"),
            "</events/?after=c%2B%2F%3D&limit=50&type=portfolios.*&type=fundings.created&wait=30>; rel=\"next\""
        );
    }
}
