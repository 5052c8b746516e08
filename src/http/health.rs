//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the database does;
//! a held-back feed horizon is reported there as a warning).

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::horizon::Holder;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let probe = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool);
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        // Ready either way: taking replicas out of service would not release the horizon.
        Ok(Ok(_)) => Ok(Json(match state.horizon.held_back() {
            None => json!({"status": "ready"}),
            Some(held) => json!({
                "status": "ready",
                "warnings": [format!(
                    "the feed's horizon has not moved for {:.0} s while events wait: {}",
                    held.seconds,
                    describe(held.holder.as_ref())
                )],
                "horizon_held_back": held,
            }),
        })),
        Ok(Err(err)) => Err(ApiError::DatabaseUnavailable(err)),
        Err(_) => Err(ApiError::DatabaseUnavailable(sqlx::Error::PoolTimedOut)),
    }
}

/// One line naming the transaction that holds the horizon.
pub fn describe(holder: Option<&Holder>) -> String {
    match holder {
        None => "no open transaction is visible to eventgate (grant it pg_monitor to see other roles' sessions)".into(),
        Some(h) => format!(
            "held by {} in database {} (application '{}', {}, transaction open for {:.0} s)",
            h.pid.map_or_else(|| format!("prepared transaction {}", h.prepared_gid.as_deref().unwrap_or("?")), |pid| format!("pid {pid}")),
            h.database.as_deref().unwrap_or("?"),
            h.application_name.as_deref().unwrap_or(""),
            h.state.as_deref().unwrap_or("state unknown"),
            h.transaction_age_secs.unwrap_or_default()
        ),
    }
}
