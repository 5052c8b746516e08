//! `GET /catalogue` (no auth): every event type with its entity mapping and the JSON Schema
//! of its `data`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::app::AppState;
use crate::catalogue::payloads::data_schema;
use crate::catalogue::{ChangeRule, ENVELOPE_VERSION, EventType};

pub fn router() -> Router<AppState> {
    Router::new().route("/catalogue", get(catalogue))
}

#[derive(Serialize)]
struct Catalogue {
    version: &'static str,
    preview_enabled: bool,
    types: Vec<TypeEntry>,
}

#[derive(Serialize)]
struct TypeEntry {
    #[serde(rename = "type")]
    name: String,
    subject: &'static str,
    action: &'static str,
    preview: bool,
    entity: &'static str,
    /// `Created`, `Updated`, `Deleted`, or `CreatedThenUpdated` (first event creates).
    change: &'static str,
    schema: schemars::Schema,
}

async fn catalogue(State(state): State<AppState>) -> Json<Catalogue> {
    let types = EventType::all()
        .map(|ty| TypeEntry {
            name: ty.name(),
            subject: ty.subject(),
            action: ty.action(),
            preview: ty.is_preview(),
            entity: ty.entity().as_str(),
            change: match ty.change_rule() {
                ChangeRule::Always(change) => change.as_str(),
                ChangeRule::CreatedIfNew => "CreatedThenUpdated",
            },
            schema: data_schema(ty),
        })
        .collect();
    Json(Catalogue {
        version: ENVELOPE_VERSION,
        preview_enabled: state.config.preview_events,
        types,
    })
}
