//! An example of each event type, made from the JSON Schema of what the platform publishes
//! and parsed like a publish, so it is an event the server would really emit: its first
//! listed example, constant or enumerated value for each field, or a plain value of the
//! field's type.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::envelope::Envelope;
use super::event_type::EventType;
use super::payloads::{DataError, EventData, publish_schema};

/// Deep enough for every payload; a schema that nests further gets `null` there.
const MAX_DEPTH: usize = 16;

/// The example envelope of `ty`, as the feed would serve it.
pub fn envelope(ty: EventType) -> Result<Value, DataError> {
    let data = EventData::parse(ty, publish_data(ty))?;
    let created: DateTime<Utc> = DateTime::from_timestamp(1_764_577_800, 0).unwrap_or_default();
    let envelope = Envelope {
        id: Uuid::from_u128(0x0193_7a2c_8e00_7000_8000_0000_0000_0001),
        created,
        ..Envelope::new(ty, &data)
    };
    serde_json::to_value(&envelope).map_err(|err| DataError {
        path: String::new(),
        message: err.to_string(),
    })
}

/// Example `data` as `POST /platform/events` takes it.
pub fn publish_data(ty: EventType) -> Value {
    let schema = publish_schema(ty).to_value();
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    example(&schema, &defs, 0)
}

fn example(schema: &Value, defs: &Value, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    let Some(object) = schema.as_object() else {
        return Value::Null;
    };
    if let Some(name) = object
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        return example(&defs[name], defs, depth + 1);
    }
    if let Some(value) = object
        .get("examples")
        .and_then(|e| e.as_array()?.first())
        .or_else(|| object.get("const"))
        .or_else(|| object.get("default"))
        .or_else(|| object.get("enum").and_then(|e| e.as_array()?.first()))
    {
        return value.clone();
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(first) = object
            .get(combinator)
            .and_then(|all| all.as_array()?.iter().find(|s| !is_null(s)))
        {
            return example(first, defs, depth + 1);
        }
    }
    let ty = match object.get("type") {
        Some(Value::Array(types)) => types.iter().find(|t| *t != "null").cloned(),
        other => other.cloned(),
    };
    match ty.as_ref().and_then(Value::as_str) {
        Some("object") => {
            let mut out = Map::new();
            if let Some(properties) = object.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    out.insert(name.clone(), example(property, defs, depth + 1));
                }
            }
            Value::Object(out)
        }
        Some("array") => match object.get("items") {
            Some(items) => json!([example(items, defs, depth + 1)]),
            None => json!([]),
        },
        Some("string") => match object.get("format").and_then(Value::as_str) {
            Some("date-time") => json!("2025-12-01T08:30:00Z"),
            Some("date") => json!("2025-12-01"),
            Some("uuid") => json!("0193a2c8-8e00-7000-8000-000000000002"),
            _ => json!("example"),
        },
        Some("integer") => json!(object.get("minimum").and_then(Value::as_i64).unwrap_or(1)),
        Some("number") => json!(1),
        Some("boolean") => json!(true),
        _ => Value::Null,
    }
}

fn is_null(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_an_example_the_server_accepts_as_a_publish() {
        for ty in EventType::all() {
            let data = publish_data(ty);
            if let Err(err) = EventData::parse(ty, data.clone()) {
                panic!("{}: example {data} refused: {err}", ty.name());
            }
            let envelope = envelope(ty).expect("an example envelope");
            assert_eq!(envelope["subject"], ty.subject());
            assert_eq!(envelope["action"], ty.action());
        }
    }
}
