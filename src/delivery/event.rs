//! An outbox event on its way to a sink: the stored envelope plus the fields sinks put in
//! message properties.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::feed::cursor::Position;

#[derive(Debug, Clone)]
pub struct OutboundEvent {
    pub position: Position,
    pub id: String,
    /// `subject.action`
    pub event_type: String,
    pub created: DateTime<Utc>,
    pub tenant: String,
    /// The envelope exactly as stored.
    pub envelope: String,
}

#[derive(Deserialize)]
struct Head {
    id: String,
    created: DateTime<Utc>,
    subject: String,
    action: String,
}

impl OutboundEvent {
    /// Reads the properties from the stored envelope (whose `data` is skipped unparsed).
    pub fn from_stored(
        tenant: &str,
        position: Position,
        envelope: String,
    ) -> Result<Self, serde_json::Error> {
        let head: Head = serde_json::from_str(&envelope)?;
        Ok(Self {
            position,
            id: head.id,
            event_type: format!("{}.{}", head.subject, head.action),
            created: head.created,
            tenant: tenant.to_owned(),
            envelope,
        })
    }

    /// CloudEvents 1.0 context attributes for binary mode (the envelope is the data).
    pub fn cloudevents_attributes(&self) -> [(&'static str, String); 6] {
        [
            ("specversion", "1.0".to_owned()),
            ("id", self.id.clone()),
            ("source", format!("/eventgate/tenants/{}", self.tenant)),
            ("type", self.event_type.clone()),
            (
                "time",
                self.created
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            ),
            ("datacontenttype", "application/json".to_owned()),
        ]
    }
}
