//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the database does;
//! a held-back feed horizon is reported there as a warning).

use std::time::Duration;

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::app::AppState;
use crate::error::ApiError;
use crate::feed::horizon::HeldBack;
use crate::store::horizon::Holder;

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/healthz",
            get_with(healthz, |op| {
                op.id("getHealth")
                    .summary("Liveness: the process answers")
                    .tag("public")
            }),
        )
        .api_route(
            "/readyz",
            get_with(readyz, |op| {
                op.id("getReadiness")
                    .summary("Readiness: the database answers")
                    .description(
                        "Also 200 while an open transaction in the PostgreSQL cluster holds \
                         back the feed (taking replicas out would not help): `warnings` names it.",
                    )
                    .tag("public")
            }),
        )
}

#[derive(Serialize, schemars::JsonSchema)]
struct Health {
    /// `ok`
    status: &'static str,
}

async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Serialize, schemars::JsonSchema)]
struct Readiness {
    /// `ready`
    status: &'static str,
    /// What an operator should know, such as an open transaction holding back every feed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    /// The held-back horizon and the transaction holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    horizon_held_back: Option<HeldBack>,
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let probe = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool);
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        // Ready either way: taking replicas out of service would not release the horizon.
        Ok(Ok(_)) => {
            let held = state.horizon.held_back();
            let warnings = held
                .iter()
                .map(|held| {
                    format!(
                        "the feed's horizon has not moved for {:.0} s while events wait: {}",
                        held.seconds,
                        describe(held.holder.as_ref())
                    )
                })
                .collect();
            Ok(Json(Readiness {
                status: "ready",
                warnings,
                horizon_held_back: held,
            }))
        }
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
