//! `GET /metrics`: the Prometheus text exposition, for platform keys only (it names
//! tenants and destinations).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;
use crate::auth::Platform;
use crate::metrics;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
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
