//! `GET /openapi.yaml`: the HTTP contract, generated from this binary's routes.

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::http::{HeaderValue, header};

use crate::app::AppState;
use crate::http::openapi::{self, yaml_response};

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new().api_route(
        "/openapi.yaml",
        get_with(served, |op| {
            op.id("getOpenapi")
                .summary("This document")
                .tag("public")
                .with(|mut op| {
                    yaml_response(op.inner_mut());
                    op
                })
        }),
    )
}

async fn served() -> ([(header::HeaderName, HeaderValue); 1], &'static str) {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml"),
        )],
        openapi::yaml(),
    )
}
