//! One signed webhook attempt and what came of it: the target checked by the address
//! policy, the static headers and the OAuth2 token added, and a 401 answered by fetching a
//! new token and trying once more.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};

use super::endpoint::Endpoint;
use super::signing::signature_header;

/// The most of a response body kept with an attempt.
const EXCERPT_BYTES: usize = 512;

#[derive(Debug)]
pub struct Outcome {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration: Duration,
    pub retry_after: Option<Duration>,
    pub excerpt: Option<String>,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    pub fn gone(&self) -> bool {
        self.status == Some(StatusCode::GONE.as_u16())
    }
}

/// What a message is: its id and body, signed with `keys`.
pub struct Message<'a> {
    pub id: &'a str,
    pub payload: &'a str,
    pub keys: &'a [String],
}

pub async fn attempt(endpoint: &Endpoint, message: &Message<'_>) -> Outcome {
    let started = Instant::now();
    let failed = |error: String| Outcome {
        status: None,
        error: Some(error),
        duration: started.elapsed(),
        retry_after: None,
        excerpt: None,
    };
    if let Err(err) = endpoint.egress.check_target(&endpoint.url).await {
        return failed(err.to_string());
    }
    let mut token = match &endpoint.oauth {
        Some(source) => match source.token().await {
            Ok(token) => Some(token),
            Err(err) => return failed(err.to_string()),
        },
        None => None,
    };
    let timestamp = chrono::Utc::now().timestamp();
    let signature = signature_header(
        message.keys,
        message.id,
        timestamp,
        message.payload.as_bytes(),
    );
    let send = |token: Option<&str>| {
        let mut request = endpoint
            .client
            .post(&endpoint.url)
            .headers(endpoint.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, "eventgate-webhooks")
            .header("webhook-id", message.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature.as_str())
            .body(message.payload.to_owned());
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        request.send()
    };
    let mut sent = send(token.as_deref()).await;
    let rejected = matches!(&sent, Ok(response) if response.status() == StatusCode::UNAUTHORIZED);
    if let (true, Some(source), Some(rejected_token)) = (rejected, &endpoint.oauth, &token) {
        // One new token and one more try: a token revoked or expired early.
        match source.replace(rejected_token).await {
            Ok(fresh) => {
                sent = send(Some(&fresh)).await;
                token = Some(fresh);
            }
            Err(err) => return failed(err.to_string()),
        }
    }
    drop(token);
    let mut response = match sent {
        Ok(response) => response,
        Err(err) if err.is_timeout() => return failed("timed out".into()),
        Err(err) => return failed(format!("request failed: {}", without_url(&err))),
    };
    let status = response.status();
    let retry_after = matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    )
    .then(|| response.headers().get(RETRY_AFTER))
    .flatten()
    .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
    .map(Duration::from_secs);
    let mut excerpt = Vec::new();
    while excerpt.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
            _ => break,
        }
    }
    excerpt.truncate(EXCERPT_BYTES);
    Outcome {
        status: Some(status.as_u16()),
        error: (!status.is_success()).then(|| format!("endpoint answered {status}")),
        duration: started.elapsed(),
        retry_after,
        excerpt: (!excerpt.is_empty()).then(|| String::from_utf8_lossy(&excerpt).into_owned()),
    }
}

/// reqwest errors name the URL; attempts are shown to clients, so keep only the cause (a
/// TLS handshake failure says why, e.g. a certificate the endpoint refused).
pub fn without_url(err: &reqwest::Error) -> String {
    let mut cause = std::error::Error::source(err);
    let mut last = None;
    while let Some(inner) = cause {
        last = Some(inner.to_string());
        cause = inner.source();
    }
    last.unwrap_or_else(|| "connection failed".into())
}
