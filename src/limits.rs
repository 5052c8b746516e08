//! Limits on the request line and headers, checked before routing so that an oversized
//! request gets a problem that names the limit (body size is `DefaultBodyLimit`'s job).
//!
//! Hyper refuses far larger requests on its own (more than 100 headers, or about 400 KiB
//! of head) with a bare 431; these limits sit well below that.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_uri_bytes: usize,
    pub max_header_bytes: usize,
}

pub async fn enforce(
    State(limits): State<RequestLimits>,
    request: Request,
    next: Next,
) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > limits.max_uri_bytes {
        return ApiError::UriTooLong {
            limit: limits.max_uri_bytes,
        }
        .into_response();
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > limits.max_header_bytes {
        return ApiError::HeadersTooLarge {
            limit: limits.max_header_bytes,
        }
        .into_response();
    }
    next.run(request).await
}
