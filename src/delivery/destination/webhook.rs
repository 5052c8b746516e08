//! A webhook destination's settings: the endpoint, the wire format, how eventgate
//! authenticates to it and signs for it, and the limits that protect it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::endpoint_auth::{Headers, HeadersDoc, OAuth2, validate_headers};
use super::numbers;
use super::objects;
use super::settings::{NO_NUL_PATTERN, check_url};
use super::tls::ClientTls;
use super::url::{UrlKind, WEBHOOK_URL_PATTERN};
use crate::error::ApiError;

/// The wire format of a webhook: the seed's envelope, or the entity-change notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Envelope,
    Entity,
}

/// An entity named in the entity-change format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EntityName {
    Portfolio,
    Optimization,
    User,
    Profile,
    Report,
    /// The tenant's own destinations: delivery health events.
    Destination,
}

impl EntityName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Portfolio => "Portfolio",
            Self::Optimization => "Optimization",
            Self::User => "User",
            Self::Profile => "Profile",
            Self::Report => "Report",
            Self::Destination => "Destination",
        }
    }
}

/// An HTTP(S) endpoint receiving signed POSTs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[schemars(regex(pattern = WEBHOOK_URL_PATTERN), length(max = 2048))]
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// Entities to deliver (all when empty).
    #[serde(default)]
    pub entities: Vec<EntityName>,
    /// Sent as `custom_config` in entity-format payloads: names to text values, no NUL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<CustomConfig>")]
    pub custom_config: Option<serde_json::Map<String, serde_json::Value>>,
    /// How deliveries are signed; chosen when the destination is created.
    #[serde(default)]
    pub signature: SignatureScheme,
    /// The CA to trust for this endpoint, and a client certificate (mutual TLS).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "objects::optional"
    )]
    pub tls: Option<ClientTls>,
    /// An OAuth2 client credentials grant; the token goes in `Authorization: Bearer`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "objects::optional"
    )]
    pub oauth2: Option<OAuth2>,
    /// Static headers sent with every request (values shown as `***`). The signing
    /// headers, `content-type` and the connection's headers cannot be set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "HeadersDoc")]
    pub headers: Headers,
    /// Most requests to this endpoint at once (default EVENTGATE_WEBHOOK_CONCURRENCY).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numbers::max_in_flight"
    )]
    #[schemars(range(min = 1, max = 1024))]
    pub max_in_flight: Option<u16>,
    /// Most requests per second to this endpoint (default: no limit).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numbers::rate_limit"
    )]
    #[schemars(range(min = 1, max = 100000))]
    pub rate_limit: Option<u32>,
    /// Seconds one request may take, connecting included (default
    /// EVENTGATE_WEBHOOK_TIMEOUT_SECS).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numbers::timeout"
    )]
    #[schemars(range(min = 1, max = 300))]
    pub timeout: Option<u16>,
    /// `entity`: events about one entity are delivered one at a time, in feed order,
    /// and a failing one holds back the later ones of its entity only. `none` (default):
    /// every delivery on its own, concurrently.
    #[serde(default)]
    pub ordering: Ordering,
}

/// How a webhook is signed (Standard Webhooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureScheme {
    /// `v1`: HMAC-SHA256 with a shared `whsec_` secret.
    #[default]
    HmacSha256,
    /// `v1a`: ed25519; the destination shows its `whpk_` public key, the private key
    /// never leaves eventgate.
    Ed25519,
}

/// Whether a webhook's deliveries keep their entity's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    #[default]
    None,
    Entity,
}

/// Names to text values, no NUL (documentation only).
#[derive(JsonSchema)]
#[schemars(transparent)]
#[allow(dead_code)]
struct CustomConfig(BTreeMap<String, NoNul>);

impl WebhookConfig {
    pub(super) fn validate(&self) -> Result<(), ApiError> {
        check_url(&self.url, UrlKind::Webhook)?;
        if let Some(tls) = &self.tls {
            if !self.url.starts_with("https://") {
                return Err(ApiError::conflict(
                    "`tls` applies to https:// URLs only; this URL does not use TLS",
                ));
            }
            tls.validate("tls")?;
        }
        if let Some(oauth2) = &self.oauth2 {
            oauth2.validate()?;
        }
        validate_headers(&self.headers, self.oauth2.is_some())?;
        for (name, value) in self.custom_config.iter().flatten() {
            let text = value.as_str().ok_or_else(|| {
                ApiError::invalid(format!("custom_config.{name}"), "must be a string")
            })?;
            if name.contains('\0') || text.contains('\0') {
                return Err(ApiError::invalid(
                    "custom_config",
                    "names and values must not contain NUL",
                ));
            }
        }
        Ok(())
    }

    /// The hosts and ports this endpoint's deliveries connect to: the URL's, and the
    /// token endpoint's.
    pub fn endpoints(&self) -> Vec<(&str, u16)> {
        let mut endpoints: Vec<(&str, u16)> =
            UrlKind::Webhook.endpoint(&self.url).into_iter().collect();
        endpoints.extend(self.oauth2.as_ref().and_then(OAuth2::endpoint));
        endpoints
    }

    /// Whether an event about `entity` goes to this endpoint.
    pub fn delivers(&self, entity: &str) -> bool {
        self.entities.is_empty() || self.entities.iter().any(|e| e.as_str() == entity)
    }
}

/// Text without NUL (documentation only).
#[derive(JsonSchema)]
#[schemars(transparent, inline)]
#[allow(dead_code)]
struct NoNul(#[schemars(regex(pattern = NO_NUL_PATTERN))] String);
