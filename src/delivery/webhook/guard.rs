//! Keeps webhooks away from internal networks: URLs that resolve to loopback, private,
//! link-local (cloud metadata), shared or unspecified addresses are refused unless the
//! operator allows private destinations. The check runs when a destination is saved and,
//! through [`GuardedResolver`], on every connection, so a DNS change cannot slip past it.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("the URL has no host")]
    NoHost,
    #[error("{0} is an internal address; webhooks may not target internal networks")]
    Internal(IpAddr),
    #[error("{host} resolves to an internal address; webhooks may not target internal networks")]
    ResolvesInternal { host: String },
}

/// Checks a URL's host (resolving names). A name that does not resolve is not refused here:
/// the delivery attempts will report it.
pub async fn check_url(url: &str, allow_internal: bool) -> Result<(), GuardError> {
    if allow_internal {
        return Ok(());
    }
    let parsed = Url::parse(url).map_err(|_| GuardError::NoHost)?;
    let port = parsed.port_or_known_default().unwrap_or(443);
    match parsed.host().ok_or(GuardError::NoHost)? {
        Host::Ipv4(ip) => check_ip(IpAddr::V4(ip)),
        Host::Ipv6(ip) => check_ip(IpAddr::V6(ip)),
        Host::Domain(name) => {
            let internal = match tokio::net::lookup_host((name, port)).await {
                Ok(mut addrs) => addrs.any(|a| is_internal(a.ip())),
                Err(_) => false,
            };
            if internal {
                Err(GuardError::ResolvesInternal {
                    host: name.to_owned(),
                })
            } else {
                Ok(())
            }
        }
    }
}

fn check_ip(ip: IpAddr) -> Result<(), GuardError> {
    if is_internal(ip) {
        Err(GuardError::Internal(ip))
    } else {
        Ok(())
    }
}

/// reqwest's resolver for webhook requests: drops internal addresses unless allowed.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub allow_internal: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_internal = self.allow_internal;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| allow_internal || !is_internal(addr.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(GuardError::ResolvesInternal { host })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }
}
