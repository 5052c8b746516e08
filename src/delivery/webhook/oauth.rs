//! OAuth2 client credentials for one webhook destination: a token fetched from its token
//! endpoint, kept until shortly before it expires, shared by every send of the destination
//! (one fetch at a time), and replaced when the endpoint rejects it with a 401.

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::client::Egress;
use crate::delivery::destination::endpoint_auth::{ClientAuth, OAuth2};

/// Lifetime assumed when the token endpoint gives none (`expires_in` is optional).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// A token is replaced this long before it expires (at most a fifth of its lifetime), so
/// no request goes out with a token about to lapse.
const REFRESH_EARLY: Duration = Duration::from_secs(60);
/// The most of an error answer kept.
const EXCERPT_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("OAuth2 token endpoint: {0}")]
    Policy(#[from] crate::egress::PolicyError),
    #[error("OAuth2 token endpoint: request failed: {0}")]
    Request(String),
    #[error("OAuth2 token endpoint answered {status}: {excerpt}")]
    Refused { status: u16, excerpt: String },
    #[error("OAuth2 token endpoint: the answer has no usable bearer token: {0}")]
    Unusable(String),
}

#[derive(Debug, Clone)]
struct Token {
    value: String,
    refresh_at: Instant,
}

/// The token answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    token_type: Option<String>,
    expires_in: Option<serde_json::Number>,
}

pub struct TokenSource {
    config: OAuth2,
    client: reqwest::Client,
    egress: Egress,
    cached: Mutex<Option<Token>>,
}

impl TokenSource {
    pub fn new(config: OAuth2, client: reqwest::Client, egress: Egress) -> Self {
        Self {
            config,
            client,
            egress,
            cached: Mutex::new(None),
        }
    }

    /// A token to send: the cached one while it is fresh, else a new one.
    pub async fn token(&self) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let token = self.fetch().await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    /// The endpoint answered 401 to `rejected`: a new token, unless another send already
    /// replaced it meanwhile (then that one).
    pub async fn replace(&self, rejected: &str) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref()
            && token.value != rejected
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        *cached = None;
        let token = self.fetch().await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    fn form(&self) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if let Some(scope) = &self.config.scope {
            form.append_pair("scope", scope);
        }
        if let Some(audience) = &self.config.audience {
            form.append_pair("audience", audience);
        }
        if self.config.client_auth == ClientAuth::Body {
            form.append_pair("client_id", &self.config.client_id);
            form.append_pair("client_secret", &self.config.client_secret);
        }
        form.finish()
    }

    async fn fetch(&self) -> Result<Token, TokenError> {
        self.egress.check_target(&self.config.token_url).await?;
        let requested = Instant::now();
        let mut request = self
            .client
            .post(&self.config.token_url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(self.form());
        if self.config.client_auth == ClientAuth::Basic {
            // RFC 6749 §2.3.1: both parts form-encoded before Basic encoding.
            let encode =
                |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
            request = request.basic_auth(
                encode(&self.config.client_id),
                Some(encode(&self.config.client_secret)),
            );
        }
        let response = request
            .send()
            .await
            .map_err(|err| TokenError::Request(super::send::without_url(&err)))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|err| TokenError::Request(super::send::without_url(&err)))?;
        if !status.is_success() {
            return Err(TokenError::Refused {
                status: status.as_u16(),
                excerpt: body.chars().take(EXCERPT_CHARS).collect(),
            });
        }
        let answer: TokenAnswer = serde_json::from_str(&body)
            .map_err(|err| TokenError::Unusable(format!("not a token answer ({err})")))?;
        if let Some(kind) = &answer.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(TokenError::Unusable(format!(
                "token_type is '{kind}', not Bearer"
            )));
        }
        if answer.access_token.is_empty()
            || reqwest::header::HeaderValue::from_str(&format!("Bearer {}", answer.access_token))
                .is_err()
        {
            return Err(TokenError::Unusable(
                "access_token is empty or not header text".into(),
            ));
        }
        let lifetime = answer
            .expires_in
            .and_then(|seconds| seconds.as_str().parse::<f64>().ok())
            .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
            .map_or(DEFAULT_LIFETIME, |seconds| {
                Duration::from_secs_f64(seconds.min(365.0 * 24.0 * 3600.0))
            });
        let early = REFRESH_EARLY.min(lifetime / 5);
        Ok(Token {
            value: answer.access_token,
            refresh_at: requested + lifetime - early,
        })
    }
}
