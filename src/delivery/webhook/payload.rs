//! The entity-change wire format of the second seed:
//! `{"event_id", "entity", "entity_id", "event", "updated_at", "url", "custom_config"}`.
//! Ids are our string ids (the seed shows integers; ours are not numbers).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::delivery::destination::{WebhookConfig, WebhookFormat};

/// A destination's `custom_config`: names to values.
pub type CustomConfig = serde_json::Map<String, Value>;

#[derive(Serialize)]
struct EntityChange<'a> {
    event_id: &'a str,
    entity: &'a str,
    entity_id: Value,
    event: &'a str,
    updated_at: String,
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_config: Option<&'a CustomConfig>,
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// One catalogue event as an entity change.
pub fn entity_change(
    event_id: &str,
    entity: &str,
    entity_id: &str,
    change: &str,
    updated_at: DateTime<Utc>,
    resource_url: Option<String>,
    custom_config: Option<&CustomConfig>,
) -> String {
    serialize(&EntityChange {
        event_id,
        entity,
        entity_id: Value::String(entity_id.to_owned()),
        event: change,
        updated_at: timestamp(updated_at),
        url: resource_url,
        custom_config,
    })
}

/// A lifecycle message: `Activated`/`Deactivated` (entity `Plugin`) or `DailyHeartBeat`
/// (entity `Overall`); entity_id 0 and url null, as the seed shows them.
pub fn lifecycle(
    message_id: &str,
    event: &str,
    at: DateTime<Utc>,
    custom_config: Option<&CustomConfig>,
) -> String {
    let entity = if event == "DailyHeartBeat" {
        "Overall"
    } else {
        "Plugin"
    };
    serialize(&EntityChange {
        event_id: message_id,
        entity,
        entity_id: Value::from(0),
        event,
        updated_at: timestamp(at),
        url: None,
        custom_config,
    })
}

/// The body of a test send (`POST /destinations/{id}/test`): an envelope of type
/// `destinations.test`, or a `Test` lifecycle message in the entity format.
pub fn test_message(
    message_id: &str,
    destination: uuid::Uuid,
    config: &WebhookConfig,
    at: DateTime<Utc>,
) -> String {
    match config.format {
        WebhookFormat::Entity => lifecycle(message_id, "Test", at, config.custom_config.as_ref()),
        WebhookFormat::Envelope => serde_json::json!({
            "id": message_id,
            "created": timestamp(at),
            "version": "1.0.0",
            "subject": "destinations",
            "action": "test",
            "data": {
                "destination_id": destination,
                "message": "A test event from eventgate: nothing happened.",
            },
        })
        .to_string(),
    }
}

fn serialize(change: &EntityChange<'_>) -> String {
    // Plain strings, numbers and objects: serialization cannot fail.
    serde_json::to_string(change).unwrap_or_default()
}
