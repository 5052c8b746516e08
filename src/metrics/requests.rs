//! Counting and timing every HTTP request by its matched route (`crate::request_guard`
//! does it for every route).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;

use super::Metrics;

/// Times one request from the guard's start to its answer, under its route template (never
/// the raw path, which carries ids and would give every portfolio its own time series).
pub struct RequestTimer {
    started: Instant,
    method: Method,
    route: String,
}

impl RequestTimer {
    pub fn start(request: &Request) -> Self {
        Self {
            started: Instant::now(),
            method: request.method().clone(),
            route: request
                .extensions()
                .get::<MatchedPath>()
                .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned()),
        }
    }

    /// Records the answer's status and the time taken.
    pub fn answered(self, metrics: &Metrics, response: &Response) {
        metrics.request_answered(
            self.method.as_str(),
            self.route,
            response.status().as_u16(),
            self.started.elapsed(),
        );
    }
}
