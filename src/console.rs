//! The console (`/console/`): a web page for integrators and operators, built into the
//! binary. It is static files that call the JSON API with the key a person pastes in, so
//! it adds no endpoint and no second way to sign in; its routes are not in the API
//! document (`crate::http` holds only documented routes).
//!
//! The page refers to its scripts and styles under `/console/v/<version>/`, where the
//! version is a hash of every file: they are cached for a year, and a new build changes
//! the path. The page itself is never cached. Every answer carries a strict
//! Content-Security-Policy (no inline script or style, nothing from another origin).

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::Embed;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::ApiError;

#[derive(Embed)]
#[folder = "console/"]
struct Files;

const PAGE: &str = "index.html";
/// Where the page names its files' versioned directory.
const VERSION_PLACEHOLDER: &str = "%VERSION%";

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// A hash of every file's name and content: the versioned directory's name.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut names: Vec<_> = Files::iter().collect();
    names.sort();
    let mut hasher = Sha256::new();
    for name in names {
        if let Some(file) = Files::get(&name) {
            hasher.update(name.as_bytes());
            hasher.update(file.metadata.sha256_hash());
        }
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
});

/// The page, pointing at this build's files.
static PAGE_HTML: LazyLock<String> = LazyLock::new(|| {
    let page = Files::get(PAGE).map(|f| f.data).unwrap_or_default();
    String::from_utf8_lossy(&page).replace(VERSION_PLACEHOLDER, &VERSION)
});

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(page))
        .route("/console/v/{version}/{*file}", get(file))
}

/// The version of this build's files (tests ask for them by it).
pub fn version() -> &'static str {
    &VERSION
}

async fn page() -> Response {
    let mut response = PAGE_HTML.clone().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    protect(headers);
    response
}

async fn file(Path((version, name)): Path<(String, String)>) -> Response {
    let found = Files::get(&name).filter(|_| version == *VERSION && name != PAGE);
    let Some(found) = found else {
        let mut response = ApiError::NotFound {
            resource: "console file",
        }
        .into_response();
        protect(response.headers_mut());
        return response;
    };
    let content_type = match found.metadata.mimetype() {
        // mime_guess names JavaScript `text/javascript`; say the charset for text.
        text if text.starts_with("text/") => format!("{text}; charset=utf-8"),
        other => other.to_owned(),
    };
    let mut response = (StatusCode::OK, found.data.into_owned()).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    protect(headers);
    response
}

/// The headers every console answer carries.
fn protect(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
}
