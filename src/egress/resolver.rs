//! reqwest's resolver for webhook requests: every address goes through the policy, so a
//! request can only connect to an address the policy allows, whatever DNS answers later.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::AddressPolicy;

#[derive(Debug, Clone)]
pub struct PolicyResolver {
    pub policy: AddressPolicy,
    /// The operator's egress proxy host: resolved as it is (the targets behind it are
    /// checked before each request instead).
    pub trusted_host: Option<String>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = if self.trusted_host.as_deref() == Some(name.as_str()) {
            AddressPolicy::allow_all()
        } else {
            self.policy.clone()
        };
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = policy
                .resolve(name.as_str(), 0)
                .await
                .map_err(|err| Box::new(err) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}
