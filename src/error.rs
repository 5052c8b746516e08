//! The one error type of the HTTP surface and its RFC 9457 `application/problem+json` form.
//!
//! Policy: every error a client can cause maps to a 4xx problem whose `detail` says what to
//! fix. Database outages become 503 (retryable). Anything else is an opaque 500 whose cause
//! is logged here, never sent to the client.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing, malformed or unknown API key")]
    Unauthorized,
    #[error("this API key's role ({role}) may not use this endpoint")]
    Forbidden { role: &'static str },
    #[error("{resource} not found")]
    NotFound { resource: &'static str },
    #[error("{detail}")]
    NotFoundDetail { detail: String },
    #[error("no route for {path}")]
    NoRoute { path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("{detail}")]
    BadRequest { detail: String },
    #[error("invalid {field}: {detail}")]
    Invalid { field: String, detail: String },
    #[error("{detail}")]
    Conflict { detail: String },
    #[error("{detail}")]
    Gone { detail: String },
    #[error("{detail}")]
    UnprocessableBody { detail: String },
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after_secs: u64,
    },
    #[error("request body is larger than the limit")]
    PayloadTooLarge,
    #[error("the request target (path and query) is longer than {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("the request headers are larger than {limit} bytes in all")]
    HeadersTooLarge { limit: usize },
    #[error("{detail}")]
    UnsupportedMediaType { detail: String },
    #[error("the request took longer than the server's limit")]
    Timeout,
    #[error("the database is unavailable; retry later")]
    DatabaseUnavailable(#[source] sqlx::Error),
    #[error("the request collided with concurrent work on the same data; retry")]
    Contention(#[source] sqlx::Error),
    #[error("internal server error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
        }
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict {
            detail: detail.into(),
        }
    }

    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } | Self::NotFoundDetail { .. } | Self::NoRoute { .. } => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Invalid { .. } | Self::UnprocessableBody { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Gone { .. } => StatusCode::GONE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Timeout | Self::DatabaseUnavailable(_) | Self::Contention(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, documented problem type slug (`/problems/{slug}`).
    fn slug(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound { .. } | Self::NotFoundDetail { .. } | Self::NoRoute { .. } => {
                "not-found"
            }
            Self::MethodNotAllowed { .. } => "method-not-allowed",
            Self::BadRequest { .. } => "bad-request",
            Self::Invalid { .. } | Self::UnprocessableBody { .. } => "validation",
            Self::Conflict { .. } => "conflict",
            Self::Gone { .. } => "gone",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UriTooLong { .. } => "uri-too-long",
            Self::HeadersTooLarge { .. } => "headers-too-large",
            Self::TooManyRequests { .. } => "too-many-requests",
            Self::UnsupportedMediaType { .. } => "unsupported-media-type",
            Self::Timeout => "timeout",
            Self::DatabaseUnavailable(_) => "unavailable",
            Self::Contention(_) => "contention",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if crate::store::is_unavailable(&err) {
            Self::DatabaseUnavailable(err)
        } else if crate::store::is_unstorable_text(&err) {
            Self::bad_request("text values must not contain NUL (\\u0000) characters")
        } else if crate::store::is_transient_conflict(&err) {
            Self::Contention(err)
        } else if crate::store::is_lock_timeout(&err) {
            Self::conflict(
                "another request with the same Idempotency-Key or for the same entity is still in progress; retry",
            )
        } else {
            Self::internal(err)
        }
    }
}

/// An RFC 9457 problem, as every error is answered.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Problem<'a> {
    /// `/problems/{slug}`, stable per kind of error.
    #[serde(rename = "type")]
    #[schemars(regex(pattern = r"^/problems/[a-z-]+$"))]
    kind: String,
    /// The status's reason phrase.
    title: &'a str,
    #[schemars(range(min = 400, max = 599))]
    status: u16,
    /// What went wrong and what to fix, for a person.
    detail: String,
    /// The request field at fault, for validation errors (`data.amount`).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Internal(cause) => tracing::error!(error = %cause, "internal error"),
            Self::DatabaseUnavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable")
            }
            _ => {}
        }
        let field = match &self {
            Self::Invalid { field, .. } => Some(field.as_str()),
            _ => None,
        };
        let problem = Problem {
            kind: format!("/problems/{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.to_string(),
            field,
        };
        let mut response = (status, Json(problem)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        let retry_after = match &self {
            Self::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Self::Contention(_) => Some(1),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let detail = rejection.body_text();
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType {
                detail: "expected Content-Type: application/json".into(),
            },
            StatusCode::UNPROCESSABLE_ENTITY => Self::UnprocessableBody { detail },
            _ => Self::BadRequest { detail },
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::BadRequest {
            detail: rejection.body_text(),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::BadRequest {
            detail: rejection.body_text(),
        }
    }
}

/// `Json<T>` whose rejections are problems.
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `Query<T>` whose rejections are problems.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `Path<T>` whose rejections are problems.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);
