//! Outbound connections: the address policy every destination's connection passes, and
//! the operator's egress proxy.

pub mod forward;
pub mod policy;
pub mod proxy;
pub mod pump;
pub mod ranges;
pub mod resolver;
pub mod socks;

pub use policy::{AddressPolicy, Allowed, PolicyError};
pub use proxy::EgressProxy;
