//! The event catalogue of the seeds: event types, their typed payloads, the envelope, and
//! the entity each type is about. Pure types; nothing here touches the database.

pub mod envelope;
pub mod event_type;
pub mod example;
pub mod ids;
pub mod money;
pub mod payloads;

pub use envelope::{ENVELOPE_VERSION, Envelope};
pub use event_type::{Change, ChangeRule, Entity, EventType, TypePattern};
pub use payloads::{DataError, EventData};
