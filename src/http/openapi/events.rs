//! Schemas built from the catalogue: the body of a platform publish (one variant per
//! published type, its `data` the very payload type the server validates with) and the
//! envelope the feed serves (one variant per type, previews included).

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;

use crate::catalogue::payloads::data_subschema;
use crate::catalogue::{ENVELOPE_VERSION, EventType};
use crate::http::tenant_id::TENANT_ID_PATTERN;

/// `POST /platform/events`: one catalogue event for one tenant.
pub struct EventRequest;

impl JsonSchema for EventRequest {
    fn schema_name() -> Cow<'static, str> {
        "EventRequest".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        // Preview types are refused unless the operator enables them, and eventgate's own
        // delivery health events always: not documented.
        let variants: Vec<Value> = EventType::all()
            .filter(|ty| !ty.is_preview() && !ty.is_emitted())
            .map(|ty| {
                serde_json::json!({
                    "type": "object",
                    "title": format!("Publish{}", camel(ty)),
                    "description": format!("A `{}` event.", ty.name()),
                    "additionalProperties": false,
                    "required": ["tenant", "subject", "action", "data"],
                    "properties": {
                        "tenant": {"type": "string", "pattern": TENANT_ID_PATTERN},
                        "subject": {"type": "string", "const": ty.subject()},
                        "action": {"type": "string", "const": ty.action()},
                        "data": data_subschema(ty, generator),
                    }
                })
            })
            .collect();
        json_schema!({
            "description": "A catalogue event (`subject.action` and its `data`, see GET /catalogue) for one tenant. The event must fit the tenant's current state: a second creation of one portfolio is 409, an event about an unknown portfolio 404.",
            "oneOf": variants
        })
    }
}

/// An event as the feed serves it (envelope version 1.0.0).
pub struct EnvelopeSchema;

impl JsonSchema for EnvelopeSchema {
    fn schema_name() -> Cow<'static, str> {
        "Envelope".into()
    }

    // Events carry amounts as JSON numbers: their `data` is described for serialization, by
    // a generator of its own that inlines everything, and registered as `{Type}Data` (the
    // request bodies' schemas of the same types are the publish form).
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut carried = SchemaSettings::default()
            .for_serialize()
            .with(|settings| settings.inline_subschemas = true)
            .into_generator();
        let variants: Vec<Value> = EventType::all()
            .map(|ty| {
                let name = format!("{}Data", camel(ty));
                let data = data_subschema(ty, &mut carried);
                generator.definitions_mut().insert(name.clone(), data.to_value());
                serde_json::json!({
                    "type": "object",
                    "title": format!("{}Event", camel(ty)),
                    "description": format!("A `{}` event.", ty.name()),
                    "required": ["id", "created", "version", "subject", "action", "data"],
                    "properties": {
                        "id": {"type": "string", "format": "uuid", "description": "Unique per event: the de-duplication key."},
                        "created": {"type": "string", "format": "date-time"},
                        "version": {"type": "string", "const": ENVELOPE_VERSION},
                        "subject": {"type": "string", "const": ty.subject()},
                        "action": {"type": "string", "const": ty.action()},
                        "data": {"$ref": format!("#/components/schemas/{name}")},
                    }
                })
            })
            .collect();
        json_schema!({
            "description": "An event: the seed's envelope, its `data` by type (GET /catalogue).",
            "oneOf": variants
        })
    }
}

/// `portfolios.divest-amount-update` as `PortfoliosDivestAmountUpdate`: titles name the
/// models that client generators make.
fn camel(ty: EventType) -> String {
    ty.name()
        .split(['.', '-'])
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}
