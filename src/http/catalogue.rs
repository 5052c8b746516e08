//! `GET /catalogue` (no auth): every event type with its entity mapping and the JSON Schema
//! of its `data`.

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::app::AppState;
use crate::catalogue::payloads::{data_schema, publish_schema};
use crate::catalogue::{ChangeRule, ENVELOPE_VERSION, EventType, example};
use crate::http::openapi::EnvelopeSchema;

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new().api_route(
        "/catalogue",
        get_with(catalogue, |op| {
            op.id("getCatalogue")
                .summary("Every event type, its entity mapping and the JSON Schema of its data")
                .tag("public")
        }),
    )
}

/// The event catalogue.
#[derive(Serialize, schemars::JsonSchema)]
struct Catalogue {
    version: &'static str,
    preview_enabled: bool,
    types: Vec<TypeEntry>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct TypeEntry {
    #[serde(rename = "type")]
    name: String,
    subject: &'static str,
    action: &'static str,
    preview: bool,
    /// Emitted by eventgate itself (delivery health); `POST /platform/events` refuses it.
    emitted: bool,
    entity: &'static str,
    /// `Created`, `Updated`, `Deleted`, or `CreatedThenUpdated` (first event creates).
    change: &'static str,
    /// The JSON Schema of `data` as events carry it (amounts are JSON numbers).
    schema: schemars::Schema,
    /// The JSON Schema of `data` as `POST /platform/events` takes it (amounts are decimal
    /// strings).
    publish_schema: schemars::Schema,
    /// An event of this type as the feed serves it: made from `publish_schema`'s examples
    /// and parsed like a publish.
    #[schemars(with = "EnvelopeSchema")]
    example: serde_json::Value,
}

async fn catalogue(State(state): State<AppState>) -> Json<Catalogue> {
    let types = EventType::all()
        .map(|ty| TypeEntry {
            name: ty.name(),
            subject: ty.subject(),
            action: ty.action(),
            preview: ty.is_preview(),
            emitted: ty.is_emitted(),
            entity: ty.entity().as_str(),
            change: match ty.change_rule() {
                ChangeRule::Always(change) => change.as_str(),
                ChangeRule::CreatedIfNew => "CreatedThenUpdated",
            },
            schema: data_schema(ty),
            publish_schema: publish_schema(ty),
            // Every type's example parses (a unit test proves it); null would only mean a
            // schema changed without its examples.
            example: example::envelope(ty).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Json(Catalogue {
        version: ENVELOPE_VERSION,
        preview_enabled: state.config.preview_events,
        types,
    })
}
