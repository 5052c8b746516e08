//! The operator's outbound proxy (`EVENTGATE_EGRESS_PROXY`, HTTP CONNECT): every webhook
//! delivery and OAuth2 token request leaves through it, so a bank allowlists one address.
//! Proxy settings are never taken from the environment (`HTTPS_PROXY` and friends): only
//! this setting routes traffic through a proxy.
//!
//! The address policy still applies to the final target: the proxy is told the target's
//! name, and eventgate resolves and checks that name first. The proxy resolves it again;
//! run it with the same deny rules for defence in depth (docs/SECURITY.md).

use std::fmt;

use url::Url;

/// The proxy's URL, `http://[user:password@]host:port`. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct EgressProxy {
    url: Url,
}

impl EgressProxy {
    /// Parses the operator's setting.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = Url::parse(text).map_err(|err| format!("not a URL: {err}"))?;
        if url.scheme() != "http" {
            return Err("must be an http:// URL (the proxy speaks HTTP CONNECT)".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("names no host".into());
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err("must be http://[user:password@]host:port with nothing after".into());
        }
        Ok(Self { url })
    }

    /// The proxy's host, which only the operator sets: it is trusted as it is.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The proxy for reqwest (credentials in the URL become `Proxy-Authorization`).
    pub fn for_reqwest(&self) -> Result<reqwest::Proxy, reqwest::Error> {
        reqwest::Proxy::all(self.url.as_str())
    }
}

impl fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        f.debug_tuple("EgressProxy").field(&shown.as_str()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_http_proxy_url_is_taken_and_its_password_never_shows() {
        let proxy = EgressProxy::parse("http://egress:s3cret@proxy.bank.internal:3128").unwrap();
        assert_eq!(proxy.host(), "proxy.bank.internal");
        assert!(!format!("{proxy:?}").contains("s3cret"));
        for bad in [
            "https://proxy:3128",
            "socks5://proxy:1080",
            "http://proxy:3128/path",
            "proxy:3128",
        ] {
            assert!(EgressProxy::parse(bad).is_err(), "{bad}");
        }
    }
}
