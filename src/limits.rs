//! Limits on the request line and headers, checked first (`crate::request_guard`) so that
//! an oversized request gets a problem that names the limit (body size is
//! `DefaultBodyLimit`'s job).
//!
//! Hyper refuses far larger requests on its own (more than 100 headers, or about 400 KiB
//! of head) with a bare 431; these limits sit well below that.

use axum::extract::Request;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_uri_bytes: usize,
    pub max_header_bytes: usize,
}

impl RequestLimits {
    /// The problem an oversized request line or header block gets, if this one is.
    pub fn refusal(&self, request: &Request) -> Option<ApiError> {
        let target = request
            .uri()
            .path_and_query()
            .map_or(0, |target| target.as_str().len());
        if target > self.max_uri_bytes {
            return Some(ApiError::UriTooLong {
                limit: self.max_uri_bytes,
            });
        }
        let headers: usize = request
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        (headers > self.max_header_bytes).then_some(ApiError::HeadersTooLarge {
            limit: self.max_header_bytes,
        })
    }
}
