//! Secrets at rest: the operator's keys ([`keyring`]), where they come from ([`loading`]),
//! and which stored values they seal ([`places`]). The store seals a value before it is
//! written and opens it when it is read, so the rest of the server only sees plain values
//! and the database (its backups, its replicas) only sealed ones.

pub mod keyring;
pub mod loading;
pub mod places;

pub use keyring::{Keyring, SecretsError};
