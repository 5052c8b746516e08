//! One signed webhook attempt and what came of it.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT};

use super::signing::signature_header;
use crate::delivery::destination::url::UrlKind;
use crate::egress::AddressPolicy;

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

pub async fn attempt(
    client: &reqwest::Client,
    url: &str,
    secrets: &[String],
    message_id: &str,
    payload: &str,
    policy: &AddressPolicy,
) -> Outcome {
    let started = Instant::now();
    let failed = |error: String| Outcome {
        status: None,
        error: Some(error),
        duration: started.elapsed(),
        retry_after: None,
        excerpt: None,
    };
    // IP literals never reach the resolver: check them here (names are checked by it).
    let literal = UrlKind::Webhook
        .host(url)
        .filter(|host| host.parse::<std::net::IpAddr>().is_ok());
    if let Some(ip) = literal.and_then(|host| host.parse().ok())
        && let Err(err) = policy.check_ip(ip)
    {
        return failed(err.to_string());
    }
    let timestamp = chrono::Utc::now().timestamp();
    let signature = signature_header(secrets, message_id, timestamp, payload.as_bytes());
    let sent = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, "eventgate-webhooks")
        .header("webhook-id", message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(payload.to_owned())
        .send()
        .await;
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

/// reqwest errors name the URL; attempts are shown to clients, so keep only the cause.
fn without_url(err: &reqwest::Error) -> String {
    let mut cause = std::error::Error::source(err);
    let mut last = None;
    while let Some(inner) = cause {
        last = Some(inner.to_string());
        cause = inner.source();
    }
    last.unwrap_or_else(|| "connection failed".into())
}
