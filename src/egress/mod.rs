//! Outbound connections: the address policy every destination's connection passes, and
//! the operator's egress proxy.

pub mod policy;
pub mod proxy;
pub mod ranges;
pub mod resolver;
pub mod socks;

pub use policy::{AddressPolicy, Allowed, PolicyError};
pub use proxy::EgressProxy;
