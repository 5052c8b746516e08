//! `GET /openapi.yaml`: the HTTP contract, as built into this binary.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::get;

use crate::app::AppState;

pub const OPENAPI: &str = include_str!("../../openapi.yaml");

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.yaml", get(openapi))
}

async fn openapi() -> ([(header::HeaderName, HeaderValue); 1], &'static str) {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml"),
        )],
        OPENAPI,
    )
}
