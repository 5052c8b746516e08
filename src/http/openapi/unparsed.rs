//! A JSON body a handler reads as a raw `Value` (to fingerprint it for idempotency before
//! checking it, or to dispatch on a field itself) but documents with the type it checks
//! against.

use std::borrow::Cow;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub struct Unparsed<T> {
    pub value: Value,
    documented: PhantomData<T>,
}

impl<T> std::fmt::Debug for Unparsed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl<'de, T> Deserialize<'de> for Unparsed<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self {
            value: Value::deserialize(deserializer)?,
            documented: PhantomData,
        })
    }
}

impl<T: JsonSchema> JsonSchema for Unparsed<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }

    fn inline_schema() -> bool {
        T::inline_schema()
    }
}
