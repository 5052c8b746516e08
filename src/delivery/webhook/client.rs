//! The HTTP clients of one webhook destination, built from its settings and the operator's
//! egress: its TLS (the CA it trusts, its client certificate), its timeout, the egress proxy
//! when there is one (never one from the environment), no redirects, and a resolver that
//! lets a connection reach only addresses the policy allows.

use std::sync::Arc;
use std::time::Duration;

use crate::delivery::destination::ClientTls;
use crate::delivery::destination::url::UrlKind;
use crate::egress::resolver::PolicyResolver;
use crate::egress::{AddressPolicy, EgressProxy, PolicyError};
use crate::tls::{ClientIdentity, TlsError, Trust};

/// Where webhook traffic may go, and how it leaves.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    pub policy: AddressPolicy,
    pub proxy: Option<EgressProxy>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("TLS settings: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

impl Egress {
    /// Checks the target of a request before it is sent. Without a proxy, names are
    /// checked by the client's resolver as it connects, so only address literals (which
    /// never reach a resolver) are checked here; through a proxy, which resolves the name
    /// itself, the name is resolved and checked here first.
    pub async fn check_target(&self, url: &str) -> Result<(), PolicyError> {
        let Some((host, port)) = UrlKind::Webhook.endpoint(url) else {
            return Ok(());
        };
        if self.proxy.is_some() {
            return self.policy.resolve(host, port).await.map(drop);
        }
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => self.policy.check_ip(ip),
            Err(_) => Ok(()),
        }
    }

    /// A client trusting `trust`, presenting `identity`, giving up after `timeout`.
    pub fn client(
        &self,
        trust: &Trust<'_>,
        identity: Option<&ClientIdentity<'_>>,
        timeout: Duration,
        idle_per_host: usize,
    ) -> Result<reqwest::Client, ClientError> {
        crate::tls::install_crypto_provider();
        let mut tls = crate::tls::client_config(trust, identity)?;
        // reqwest is built for HTTP/1.1 only.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .pool_max_idle_per_host(idle_per_host)
            // Never a proxy from the environment: only the operator's setting below.
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver {
                policy: self.policy.clone(),
                trusted_host: self.proxy.as_ref().map(|proxy| proxy.host().to_owned()),
            }));
        let builder = match &self.proxy {
            Some(proxy) => builder.proxy(proxy.for_reqwest()?),
            None => builder,
        };
        Ok(builder.build()?)
    }

    /// The client for an endpoint with these TLS settings.
    pub fn endpoint_client(
        &self,
        tls: Option<&ClientTls>,
        timeout: Duration,
        idle_per_host: usize,
    ) -> Result<reqwest::Client, ClientError> {
        let trust = tls.map_or(Trust::System, ClientTls::trust);
        let identity = tls.and_then(ClientTls::identity);
        self.client(&trust, identity.as_ref(), timeout, idle_per_host)
    }
}
