//! A tenant id as requests carry it: checked by one rule, which the contract documents.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, de};

/// 1-63 of a-z, 0-9, '-' and '_', starting with a letter or digit. Ids appear in topics,
/// URLs and logs, so they are kept to a safe alphabet.
pub const TENANT_ID_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(id: &str) -> Option<Self> {
        let mut chars = id.chars();
        let valid = id.len() <= 63
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        valid.then(|| Self(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = String::deserialize(deserializer)?;
        TenantId::parse(&id).ok_or_else(|| {
            de::Error::custom(
                "a tenant id is 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit",
            )
        })
    }
}

impl JsonSchema for TenantId {
    fn schema_name() -> Cow<'static, str> {
        "TenantId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "pattern": TENANT_ID_PATTERN, "examples": ["acme"]})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_follow_the_documented_pattern() {
        let documented = regex_lite::Regex::new(TENANT_ID_PATTERN).unwrap();
        for id in [
            "acme",
            "0",
            "bank-b",
            "a_1",
            &"a".repeat(63),
            "",
            "-a",
            "A",
            "a b",
            &"a".repeat(64),
        ] {
            assert_eq!(
                TenantId::parse(id).is_some(),
                documented.is_match(id),
                "{id:?}"
            );
        }
    }
}
