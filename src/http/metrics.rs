//! `GET /metrics`: the Prometheus text exposition, for platform keys only (it names
//! tenants and destinations).

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::auth::Platform;
use crate::http::openapi::text_response;
use crate::metrics;

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new().api_route(
        "/metrics",
        get_with(scrape, |op| {
            op.id("getMetrics")
                .summary("Prometheus metrics (platform key)")
                .description(
                    "Text exposition format. Counters are per process; the database gauges \
                     (outbox, lag, pending webhooks, the held-back horizon) are the same on \
                     every replica.",
                )
                .tag("platform")
                .with(|mut op| {
                    text_response(op.inner_mut(), 200, metrics::CONTENT_TYPE, "The metrics.");
                    op
                })
        }),
    )
}

async fn scrape(_: Platform, State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .render(
            &state.pool,
            metrics::ProcessGauges {
                feed_waiters: state.long_polls.waiting_total(),
                horizon_held_secs: state.horizon.held_seconds(),
            },
        )
        .await;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
}
