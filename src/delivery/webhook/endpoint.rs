//! Everything a send to one webhook endpoint needs, built once from its settings: the
//! HTTP client (its TLS and timeout, the egress), the static headers, the OAuth2 token
//! source, and the egress to check targets against.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::WebhookSettings;
use super::client::{ClientError, Egress};
use super::oauth::TokenSource;
use crate::delivery::destination::WebhookConfig;
use crate::tls::Trust;

pub struct Endpoint {
    pub client: reqwest::Client,
    pub url: String,
    /// The destination's static headers (names and values checked when saved).
    pub headers: HeaderMap,
    pub oauth: Option<TokenSource>,
    pub egress: Egress,
}

impl Endpoint {
    pub fn new(config: &WebhookConfig, settings: &WebhookSettings) -> Result<Self, ClientError> {
        let timeout = config
            .timeout
            .map_or(settings.timeout, |secs| Duration::from_secs(secs.into()));
        let in_flight = config
            .max_in_flight
            .map_or(settings.concurrency, usize::from);
        let egress = settings.egress.clone();
        let client = egress.endpoint_client(config.tls.as_ref(), timeout, in_flight)?;
        let oauth = match &config.oauth2 {
            Some(oauth2) => {
                // The token endpoint is usually another party's (an identity provider):
                // it is trusted by the system's store, and by the endpoint's own CA if given.
                let trust = match config.tls.as_ref().and_then(|tls| tls.ca_pem.as_deref()) {
                    Some(ca_pem) => Trust::SystemAnd(ca_pem),
                    None => Trust::System,
                };
                let token_client = egress.client(&trust, None, timeout, 1)?;
                Some(TokenSource::new(
                    oauth2.clone(),
                    token_client,
                    egress.clone(),
                ))
            }
            None => None,
        };
        let headers = config
            .headers
            .iter()
            .filter_map(|(name, value)| {
                // Both were checked when saved; a stored one that no longer parses is left
                // out rather than failing every delivery.
                Some((
                    HeaderName::from_bytes(name.as_bytes()).ok()?,
                    HeaderValue::from_str(value).ok()?,
                ))
            })
            .collect();
        Ok(Self {
            client,
            url: config.url.clone(),
            headers,
            oauth,
            egress,
        })
    }
}
