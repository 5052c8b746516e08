//! How eventgate authenticates to a webhook endpoint besides mutual TLS: an OAuth2 client
//! credentials grant, and static headers (an `X-Api-Key`, say). The client secret and the
//! header values are credentials: sealed at rest, shown as `***`, never in `Debug`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex_lite::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::settings::{check, regex};
use super::url::{UrlKind, WEBHOOK_URL_PATTERN};
use crate::error::ApiError;

/// An OAuth2 client id, scope or audience: 1-1024 printable ASCII characters.
const OAUTH_TEXT_PATTERN: &str = r"^[\x20-\x7e]{1,1024}$";
/// A header name: an HTTP token of 1-64 characters.
pub const HEADER_NAME_PATTERN: &str = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$";
/// A header value: 1-4096 printable ASCII characters (no line break).
const HEADER_VALUE_PATTERN: &str = r"^[\x20-\x7e]{1,4096}$";
/// Most static headers one endpoint gets.
pub const MAX_HEADERS: usize = 20;

static OAUTH_TEXT: LazyLock<Regex> = LazyLock::new(|| regex(OAUTH_TEXT_PATTERN));
static HEADER_NAME: LazyLock<Regex> = LazyLock::new(|| regex(HEADER_NAME_PATTERN));
static HEADER_VALUE: LazyLock<Regex> = LazyLock::new(|| regex(HEADER_VALUE_PATTERN));

/// Headers eventgate sets itself: the signature's, the body's framing, and the
/// connection's. A static header may not replace them.
const RESERVED_HEADERS: [&str; 14] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "host",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "user-agent",
];

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (`client_secret_basic`).
    #[default]
    Basic,
    /// The client id and secret in the form body (`client_secret_post`).
    Body,
}

/// OAuth2 client credentials: eventgate fetches a token from `token_url`, keeps it until
/// shortly before it expires, and sends it as `Authorization: Bearer`. A 401 from the
/// endpoint fetches a new token and retries once.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    /// The token endpoint (checked by the address policy like the webhook URL).
    #[schemars(regex(pattern = WEBHOOK_URL_PATTERN), length(max = 2048))]
    pub token_url: String,
    #[schemars(regex(pattern = OAUTH_TEXT_PATTERN))]
    pub client_id: String,
    /// Stored encrypted, shown as `***`; sending `***` back in a PATCH keeps it.
    #[schemars(regex(pattern = OAUTH_TEXT_PATTERN))]
    pub client_secret: String,
    /// Sent as `scope` when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = OAUTH_TEXT_PATTERN))]
    pub scope: Option<String>,
    /// Sent as `audience` when given (Auth0 and others ask for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = OAUTH_TEXT_PATTERN))]
    pub audience: Option<String>,
    #[serde(default)]
    pub client_auth: ClientAuth,
}

impl std::fmt::Debug for OAuth2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, nor the token URL (it may carry a query).
        f.debug_struct("OAuth2")
            .field("client_id", &self.client_id)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

impl OAuth2 {
    pub fn validate(&self) -> Result<(), ApiError> {
        if UrlKind::Webhook.host(&self.token_url).is_none() {
            return Err(ApiError::invalid(
                "oauth2.token_url",
                format!(
                    "must be {} (at most 2048 characters)",
                    UrlKind::Webhook.expected()
                ),
            ));
        }
        let what = "must be 1-1024 printable ASCII characters";
        check("oauth2.client_id", &self.client_id, &OAUTH_TEXT, what)?;
        check(
            "oauth2.client_secret",
            &self.client_secret,
            &OAUTH_TEXT,
            what,
        )?;
        for (field, value) in [("scope", &self.scope), ("audience", &self.audience)] {
            if let Some(value) = value {
                check(&format!("oauth2.{field}"), value, &OAUTH_TEXT, what)?;
            }
        }
        Ok(())
    }

    /// The token endpoint's host and port.
    pub fn endpoint(&self) -> Option<(&str, u16)> {
        UrlKind::Webhook.endpoint(&self.token_url)
    }
}

/// Static headers: names to values; the values are shown as `***`.
pub type Headers = BTreeMap<String, String>;

/// Static headers: names (HTTP tokens) to values, at most 20.
#[derive(JsonSchema)]
#[schemars(transparent, rename = "Headers")]
#[allow(dead_code)]
pub struct HeadersDoc(
    #[schemars(extend("propertyNames" = {"pattern": HEADER_NAME_PATTERN}, "maxProperties" = MAX_HEADERS))]
     BTreeMap<String, HeaderValueDoc>,
);

/// A header value (documentation only).
#[derive(JsonSchema)]
#[schemars(transparent, inline)]
#[allow(dead_code)]
struct HeaderValueDoc(#[schemars(regex(pattern = HEADER_VALUE_PATTERN))] String);

pub fn validate_headers(headers: &Headers, oauth2: bool) -> Result<(), ApiError> {
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::invalid(
            "headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    for (name, value) in headers {
        check(
            "headers",
            name,
            &HEADER_NAME,
            "names must be HTTP tokens of 1-64 characters",
        )?;
        check(
            &format!("headers.{name}"),
            value,
            &HEADER_VALUE,
            "must be 1-4096 printable ASCII characters",
        )?;
    }
    // Each name fits the schema; that eventgate sets it itself is a conflict (409).
    let lowercase = |name: &String| name.to_ascii_lowercase();
    let names: Vec<String> = headers.keys().map(lowercase).collect();
    if let Some(reserved) = names
        .iter()
        .find(|name| RESERVED_HEADERS.contains(&name.as_str()))
    {
        return Err(ApiError::conflict(format!(
            "header `{reserved}` is set by eventgate (signature, framing or connection) and cannot be replaced"
        )));
    }
    if oauth2 && names.iter().any(|name| name == "authorization") {
        return Err(ApiError::conflict(
            "header `authorization` carries the OAuth2 token: leave it out, or leave out `oauth2`",
        ));
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    if unique.len() != names.len() {
        return Err(ApiError::conflict(
            "two headers differ only in case: HTTP header names are case-insensitive",
        ));
    }
    Ok(())
}
