//! The one address policy for every outbound connection (webhooks, AMQP, MQTT, and any
//! kind added later): a destination's host, and every address it resolves to, must be
//! outside the refused ranges, unless the operator allows them, all private addresses
//! (`EVENTGATE_ALLOW_PRIVATE_DESTINATIONS`, for tests and closed networks) or some
//! (`EVENTGATE_DESTINATION_ALLOW`: CIDRs and host names, such as a bank's broker on a
//! private link). It is checked when a destination is saved and again on every
//! connection, with the addresses the connection will use, so a DNS change cannot slip
//! past it. A refusal happens before any connection, so `last_error` never tells a
//! tenant anything about a host it may not reach.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::ranges::{self, Rule};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{ip} is refused by the address policy: {rule}")]
    Refused { ip: IpAddr, rule: Rule },
    // The address itself is not said: a tenant must not learn what an internal name
    // resolves to, only that it may not reach it.
    #[error("{host} resolves to an address refused by the address policy: {rule}")]
    ResolvesRefused {
        host: String,
        ip: IpAddr,
        rule: Rule,
    },
    #[error("cannot resolve {host}")]
    Unresolved { host: String },
}

/// An entry of the operator's allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    Net(IpNet),
    /// A host name, or `*.domain` for every name under it.
    Host(String),
}

impl Allowed {
    /// A CIDR, an address, a host name or `*.domain`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Some(net) = ranges::parse_net(text) {
            return Some(Self::Net(net));
        }
        let name = text.strip_prefix("*.").unwrap_or(text);
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        valid.then(|| Self::Host(text.to_ascii_lowercase()))
    }
}

#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allow_private: bool,
    allowed: Vec<Allowed>,
}

impl AddressPolicy {
    pub fn new(allow_private: bool, allowed: Vec<Allowed>) -> Self {
        Self {
            allow_private,
            allowed,
        }
    }

    /// Every address allowed (tests).
    pub fn allow_all() -> Self {
        Self::new(true, Vec::new())
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.allowed.iter().any(|allowed| match allowed {
            Allowed::Host(pattern) => match pattern.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => *pattern == host,
            },
            Allowed::Net(_) => false,
        })
    }

    /// Checks one address.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), PolicyError> {
        if self.allow_private {
            return Ok(());
        }
        let allowed = self.allowed.iter().any(|allowed| match allowed {
            Allowed::Net(net) => net.contains(&ip),
            Allowed::Host(_) => false,
        });
        match ranges::refused(ip) {
            Some(rule) if !allowed => Err(PolicyError::Refused { ip, rule }),
            _ => Ok(()),
        }
    }

    /// The addresses to connect to for `host:port`: resolved now, each one checked. A name
    /// on the allowlist may resolve anywhere. An address literal is checked as it is.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, PolicyError> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            self.check_ip(ip)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let unresolved = || PolicyError::Unresolved {
            host: host.to_owned(),
        };
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| unresolved())?
            .collect();
        if addresses.is_empty() {
            return Err(unresolved());
        }
        if self.host_allowed(host) {
            return Ok(addresses);
        }
        for address in &addresses {
            self.check_ip(address.ip()).map_err(|err| match err {
                PolicyError::Refused { ip, rule } => PolicyError::ResolvesRefused {
                    host: host.to_owned(),
                    ip,
                    rule,
                },
                other => other,
            })?;
        }
        Ok(addresses)
    }

    /// Checks a host when a destination is saved. A name that does not resolve yet is not
    /// refused (the deliveries will report it); one that resolves anywhere refused is.
    pub async fn check_on_save(&self, host: &str, port: u16) -> Result<(), PolicyError> {
        match self.resolve(host, port).await {
            Ok(_) | Err(PolicyError::Unresolved { .. }) => Ok(()),
            Err(refused) => Err(refused),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_allowlist_opens_named_networks_and_hosts_only() {
        let policy = AddressPolicy::new(
            false,
            vec![
                Allowed::parse("10.20.0.0/16").unwrap(),
                Allowed::parse("localhost").unwrap(),
            ],
        );
        assert!(policy.check_ip("10.20.3.4".parse().unwrap()).is_ok());
        assert!(policy.check_ip("10.21.3.4".parse().unwrap()).is_err());
        assert!(policy.check_ip("8.8.8.8".parse().unwrap()).is_ok());
        assert!(
            policy.resolve("localhost", 5672).await.is_ok(),
            "allowed by name"
        );
        assert!(matches!(
            policy.resolve("127.0.0.1", 5672).await,
            Err(PolicyError::Refused { .. })
        ));
        let closed = AddressPolicy::new(false, Vec::new());
        assert!(matches!(
            closed.resolve("localhost", 5672).await,
            Err(PolicyError::ResolvesRefused { .. })
        ));
        assert!(
            AddressPolicy::allow_all()
                .resolve("127.0.0.1", 1)
                .await
                .is_ok()
        );
    }

    #[test]
    fn allowlist_entries_parse_or_are_refused() {
        assert_eq!(
            Allowed::parse("*.bank.internal"),
            Some(Allowed::Host("*.bank.internal".into()))
        );
        assert!(matches!(
            Allowed::parse("192.168.1.5"),
            Some(Allowed::Net(_))
        ));
        for bad in ["", "a b", "*.", "10.0.0.0/33", "host/path"] {
            assert_eq!(Allowed::parse(bad), None, "{bad:?}");
        }
    }
}
