//! An outbox event on its way to a sink: the stored envelope plus the fields sinks put in
//! message properties.

use crate::store::feed::OutboxRow;
use crate::store::position::Position;
use crate::telemetry::trace_context::TraceContext;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct OutboundEvent {
    pub position: Position,
    pub id: String,
    /// `subject.action`
    pub event_type: String,
    pub created: DateTime<Utc>,
    pub tenant: String,
    /// The entity the event is about (the Kafka record key).
    pub entity_id: String,
    /// The envelope exactly as stored.
    pub envelope: String,
    /// The trace context it carries (sent as `traceparent` where the sink has headers).
    pub trace: Option<TraceContext>,
}

/// An event as one attempt sends it, with the trace context that attempt carries.
#[derive(Debug, Clone, Copy)]
pub struct Sending<'a> {
    pub event: &'a OutboundEvent,
    pub trace: Option<&'a TraceContext>,
}

impl OutboundEvent {
    /// The event as read from the outbox (the envelope is sent as stored, unparsed).
    pub fn from_row(tenant: &str, row: OutboxRow) -> Self {
        Self {
            position: row.position,
            id: row.id.to_string(),
            event_type: row.event_type,
            created: row.created,
            tenant: tenant.to_owned(),
            entity_id: row.entity_id,
            envelope: row.envelope,
            trace: row.trace,
        }
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
