//! One signed webhook attempt and what came of it: the target checked by the address
//! policy, the static headers and the OAuth2 token added, and a 401 answered by fetching a
//! new token and trying once more. Each attempt is traced (`traceparent` sent when the
//! event carries a trace context).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};

use super::endpoint::Endpoint;
use super::signing::signature_header;
use crate::telemetry::trace_context::{DeliveryTrace, Hop, TraceContext};

/// The most of a response body kept with an attempt.
const EXCERPT_BYTES: usize = 512;

#[derive(Debug)]
pub struct Outcome {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration: Duration,
    pub retry_after: Option<Duration>,
    pub excerpt: Option<String>,
    /// The headers of the last request sent, credentials as `***` (none when nothing was
    /// sent: the address policy or the token endpoint stopped it).
    pub request_headers: Option<SentHeaders>,
}

/// Request headers as sent, by name, safe to show to the tenant: the static headers' values
/// and the bearer token are `***` (the signature is shown: it proves nothing without the
/// secret, and a verifier is debugged with it).
pub type SentHeaders = BTreeMap<String, String>;

/// What `***` stands in for.
const REDACTED: &str = "***";
const SENT_USER_AGENT: &str = "eventgate-webhooks";
const SENT_CONTENT_TYPE: &str = "application/json";

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    pub fn gone(&self) -> bool {
        self.status == Some(StatusCode::GONE.as_u16())
    }
}

/// What a message is: its id and body, signed with `keys`, and the trace context its event
/// carries.
pub struct Message<'a> {
    pub destination: uuid::Uuid,
    pub id: &'a str,
    pub payload: &'a str,
    pub keys: &'a [String],
    pub trace: Option<&'a TraceContext>,
}

/// One traced attempt: sends `message` with the attempt's trace context.
pub async fn attempt(endpoint: &Endpoint, message: &Message<'_>) -> Outcome {
    let trace = DeliveryTrace::start(Hop::Webhook, message.destination, message.id, message.trace);
    let outcome = send(endpoint, message, trace.outgoing()).await;
    let described = outcome.error.as_deref().unwrap_or("delivered");
    trace.finish(outcome.succeeded(), described);
    outcome
}

async fn send(endpoint: &Endpoint, message: &Message<'_>, trace: Option<&TraceContext>) -> Outcome {
    let started = Instant::now();
    let failed = |error: String| Outcome {
        status: None,
        error: Some(error),
        duration: started.elapsed(),
        retry_after: None,
        excerpt: None,
        request_headers: None,
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
            .header(CONTENT_TYPE, SENT_CONTENT_TYPE)
            .header(USER_AGENT, SENT_USER_AGENT)
            .header("webhook-id", message.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature.as_str())
            .body(message.payload.to_owned());
        for (name, value) in trace.into_iter().flat_map(TraceContext::fields) {
            request = request.header(name, value);
        }
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
    let request_headers = Some(sent_headers(
        endpoint,
        message.id,
        timestamp,
        &signature,
        token.is_some(),
        trace,
    ));
    drop(token);
    let failed = |error: String| Outcome {
        request_headers: request_headers.clone(),
        ..failed(error)
    };
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
        request_headers,
    }
}

/// The headers `send` puts on a request, as shown to the tenant.
fn sent_headers(
    endpoint: &Endpoint,
    message_id: &str,
    timestamp: i64,
    signature: &str,
    bearer: bool,
    trace: Option<&TraceContext>,
) -> SentHeaders {
    let mut headers: SentHeaders = endpoint
        .headers
        .keys()
        .map(|name| (name.as_str().to_owned(), REDACTED.to_owned()))
        .collect();
    headers.extend([
        (
            CONTENT_TYPE.as_str().to_owned(),
            SENT_CONTENT_TYPE.to_owned(),
        ),
        (USER_AGENT.as_str().to_owned(), SENT_USER_AGENT.to_owned()),
        ("webhook-id".to_owned(), message_id.to_owned()),
        ("webhook-timestamp".to_owned(), timestamp.to_string()),
        ("webhook-signature".to_owned(), signature.to_owned()),
    ]);
    headers.extend(
        trace
            .into_iter()
            .flat_map(TraceContext::fields)
            .map(|(name, value)| (name.to_owned(), value.to_owned())),
    );
    if bearer {
        headers.insert(
            AUTHORIZATION.as_str().to_owned(),
            format!("Bearer {REDACTED}"),
        );
    }
    headers
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
