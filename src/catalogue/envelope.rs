//! The event envelope v1.0.0 `{"id", "created", "version", "subject", "action", "data"}`,
//! serialized once when the event is appended; the stored text is what every reader and
//! every sink gets, byte for byte.

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::event_type::EventType;
use super::payloads::EventData;

pub const ENVELOPE_VERSION: &str = "1.0.0";

#[derive(Debug, Clone, Serialize)]
pub struct Envelope<'a> {
    pub id: Uuid,
    #[serde(serialize_with = "rfc3339_micros")]
    pub created: DateTime<Utc>,
    pub version: &'static str,
    pub subject: &'static str,
    pub action: &'static str,
    pub data: &'a EventData,
}

impl<'a> Envelope<'a> {
    /// A new envelope with a time-ordered id (UUIDv7) and the current time, truncated to
    /// the microseconds PostgreSQL keeps.
    pub fn new(ty: EventType, data: &'a EventData) -> Self {
        Self {
            id: Uuid::now_v7(),
            created: Utc::now().trunc_subsecs(6),
            version: ENVELOPE_VERSION,
            subject: ty.subject(),
            action: ty.action(),
            data,
        }
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

fn rfc3339_micros<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}
