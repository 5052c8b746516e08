//! Outbound connections: the address policy every destination's connection passes.

pub mod policy;
pub mod ranges;
pub mod resolver;
pub mod socks;

pub use policy::{AddressPolicy, Allowed, PolicyError};
