//! The HTTP resources, one module each with its own `router()`, merged here with the
//! problem+json fallbacks for unknown routes and methods. The routes also build the
//! OpenAPI document ([`openapi`]).

use aide::axum::ApiRouter;
use aide::openapi::OpenApi;
use axum::Router;
use axum::extract::OriginalUri;
use axum::http::Method;

use crate::app::AppState;
use crate::error::ApiError;

mod audit;
mod catalogue;
mod contract;
mod delivery_events;
mod deposits;
mod destination_docs;
mod destination_replay;
mod destination_view;
mod destinations;
mod digest;
mod event_deliveries;
mod feed;
mod feed_recent;
mod health;
mod me;
mod metrics;
pub mod openapi;
mod pagination;
mod platform_admin;
mod platform_directory;
mod platform_events;
mod read_model;
mod retry;
mod snapshots;
pub mod tenant_id;
mod webhook_admin;

/// The router, and the OpenAPI document its routes describe.
pub fn build() -> (Router<AppState>, OpenApi) {
    let mut api = openapi::frame();
    let router = routes()
        .finish_api_with(&mut api, openapi::finish)
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed);
    (router, api)
}

pub fn router() -> Router<AppState> {
    build().0
}

fn routes() -> ApiRouter<AppState> {
    ApiRouter::new()
        .merge(health::router())
        .merge(me::router())
        .merge(metrics::router())
        .merge(platform_admin::router())
        .merge(platform_directory::router())
        .merge(platform_events::router())
        .merge(delivery_events::router())
        .merge(digest::router())
        .merge(snapshots::router())
        .merge(catalogue::router())
        .merge(read_model::router())
        .merge(deposits::router())
        .merge(feed::router())
        .merge(feed_recent::router())
        .merge(event_deliveries::router())
        .merge(destinations::router())
        .merge(destination_replay::router())
        .merge(webhook_admin::router())
        .merge(audit::router())
        .merge(contract::router())
}

async fn no_route(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::NoRoute {
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
