//! Shared list parameters: `limit` bounds, and `after` cursors.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, de};

use crate::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// `limit` within 1..=1000, default 100.
pub fn limit(requested: Option<i64>) -> Result<i64, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        ))),
    }
}

/// A page size: 1 to 1000 items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(i64);

impl Limit {
    /// The requested size, or the default (100).
    pub fn or_default(limit: Option<Limit>) -> i64 {
        limit.map_or(DEFAULT_LIMIT, |limit| limit.0)
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(deserializer)?;
        if (1..=MAX_LIMIT).contains(&n) {
            Ok(Self(n))
        } else {
            Err(de::Error::custom(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )))
        }
    }
}

impl JsonSchema for Limit {
    fn schema_name() -> Cow<'static, str> {
        "Limit".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Page size (default 100).",
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_LIMIT,
            "default": DEFAULT_LIMIT
        })
    }
}

/// `after`: a feed-ordered position this server issued (a cursor).
#[derive(Debug, Clone, Copy)]
pub struct CursorParam(pub crate::feed::cursor::Position);

impl<'de> Deserialize<'de> for CursorParam {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        crate::feed::cursor::Position::decode(&text)
            .map(Self)
            .ok_or_else(|| de::Error::custom("after: not a cursor this server issued"))
    }
}

impl JsonSchema for CursorParam {
    fn schema_name() -> Cow<'static, str> {
        crate::feed::cursor::Cursor::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        crate::feed::cursor::Cursor::json_schema(generator)
    }
}
