//! Idempotency-Key support for POST endpoints (IETF draft "The Idempotency-Key HTTP Header
//! Field", with Stripe's behaviour).
//!
//! A handler extracts [`IdempotencyKeyHeader`] and makes its write with [`write`]: one call
//! of the database (`store::writes`) that takes the entity locks, claims the key with its
//! response before any other write, and makes the write, in one transaction. The key is
//! claimed by inserting its row; a concurrent duplicate blocks on that uncommitted row
//! (bounded by `lock_timeout`, then 409) and, once the original commits, replays its stored
//! response. A key whose first request failed or crashed was rolled back with it, so it is
//! free again.
//! Same key with another body is 422. Keys are scoped per caller (tenant or platform) and
//! endpoint, and expire after the configured window. Answers this replica committed are
//! also kept in memory ([`crate::replay_cache`]), so their retries skip the database.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::Instrument as _;

use crate::app::AppState;
use crate::error::ApiError;
use crate::replay_cache::{CacheKey, CachedAnswer};
use crate::store::idempotency::EarlierRequest;
use crate::store::outbox;
use crate::store::writes::{self, Refusal, WriteError, Written};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
pub const MAX_KEY_LEN: usize = 255;

/// A valid key: 1-255 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a header value: a structured-field string (`"abc"`, as in the seed) or a bare
    /// token; both name the same key.
    pub fn parse(value: &[u8]) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::bad_request(format!(
                "Idempotency-Key must be 1-{MAX_KEY_LEN} printable ASCII characters, bare or as a quoted string"
            ))
        };
        let text = std::str::from_utf8(value).map_err(|_| invalid())?.trim();
        let key = match text.strip_prefix('"') {
            Some(rest) => unquote(rest).ok_or_else(invalid)?,
            None if text.contains('"') => return Err(invalid()),
            None => text.to_owned(),
        };
        let printable = key.bytes().all(|b| (0x20..=0x7e).contains(&b));
        if key.is_empty() || key.len() > MAX_KEY_LEN || !printable {
            return Err(invalid());
        }
        Ok(Self(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The body of an sf-string after its opening quote: `\"` and `\\` escapes, then a closing
/// quote that ends the value.
fn unquote(rest: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                escaped @ ('"' | '\\') => out.push(escaped),
                _ => return None,
            },
            '"' => return chars.next().is_none().then_some(out),
            other => out.push(other),
        }
    }
    None
}

/// The optional `Idempotency-Key` header; a malformed or repeated one is a 400 problem.
#[derive(Debug, Clone)]
pub struct IdempotencyKeyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(HEADER).iter();
        let Some(first) = values.next() else {
            return Ok(Self(None));
        };
        if values.next().is_some() {
            return Err(ApiError::bad_request(
                "send one Idempotency-Key header, not several",
            ));
        }
        IdempotencyKey::parse(first.as_bytes()).map(|key| Self(Some(key)))
    }
}

/// SHA-256 of the canonical JSON of a body: object keys sorted, no whitespace, numbers as
/// written. Two bodies that differ only in layout or key order have the same fingerprint.
pub fn fingerprint(body: &Value) -> [u8; 32] {
    let mut canonical = String::new();
    write_canonical(body, &mut canonical);
    Sha256::digest(canonical.as_bytes()).into()
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Where a key lives: who called, and which endpoint.
#[derive(Debug, Clone)]
pub struct Scope {
    pub owner: String,
    pub endpoint: &'static str,
}

/// The owner of platform-key requests' keys (not a valid tenant id, so never a collision).
pub const PLATFORM_OWNER: &str = "@platform";

/// A response as stored for replay.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub status: StatusCode,
    pub body: Bytes,
    pub location: Option<String>,
}

impl StoredResponse {
    fn into_response(self, replayed: bool) -> Response {
        let mut response = (self.status, Body::from(self.body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(location) = self.location.and_then(|l| HeaderValue::try_from(l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        if replayed {
            headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        }
        response
    }
}

/// A write request: its key, where the key lives, the locks and the rows (see
/// `store::writes`). The answer is stored under the key in the same transaction.
pub struct Request<'a> {
    pub key: Option<IdempotencyKey>,
    pub scope: Scope,
    pub fingerprint: [u8; 32],
    /// Entity lock keys (`tenant/portfolio/P1`); the tenants' writers' locks are derived.
    pub entity_locks: &'a [String],
    pub events: &'a [writes::EventRow<'a>],
    pub deposit: Option<&'a writes::DepositRow<'a>>,
    pub answer: Answer<'a>,
}

/// The answer a write stores and sends; a deposit's holds its event's cursor, which only
/// the database knows: it goes between `head` and `tail`.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub status: StatusCode,
    pub head: &'a str,
    pub tail: Option<&'a str>,
    pub location: Option<&'a str>,
}

/// A write's response, and whether it replays an earlier one.
pub struct Answered {
    pub response: Response,
    pub replayed: bool,
}

/// Makes the write, batched with others (`write_batcher`): a committed answer under the
/// key is replayed (422 when this body differs); otherwise the locks (bounded by
/// `idempotency_wait`: a duplicate in flight or a busy entity is 409 after it), the key,
/// the state rules, the events and the answer, committed together, then announced.
/// `refused` turns what a state rule refused into the endpoint's problem. Key conflicts
/// (409 in flight, 422 key reused with another body) are counted in the metrics.
pub async fn write(
    state: &AppState,
    request: Request<'_>,
    refused: impl FnOnce(Refusal) -> ApiError,
) -> Result<Answered, ApiError> {
    let arrived = Instant::now();
    let cache_key = request.key.as_ref().map(|key| CacheKey {
        owner: request.scope.owner.clone(),
        endpoint: request.scope.endpoint,
        key: key.as_str().to_owned(),
    });
    if let Some(cached) = cache_key.as_ref().and_then(|k| state.replay_cache.get(k)) {
        let replayed = replay_cached(cached, &request.fingerprint);
        if replayed.is_err() {
            state.metrics.idempotency_conflict(request.scope.endpoint);
        }
        return replayed.map(|response| Answered {
            response,
            replayed: true,
        });
    }
    let tenants = writer_tenants(request.events);
    let encoded = writes::encode(&writes::Write {
        owner: &request.scope.owner,
        scope: request.scope.endpoint,
        key: request.key.as_ref().map(IdempotencyKey::as_str),
        fingerprint: hex(&request.fingerprint),
        ttl_secs: state.config.idempotency_ttl().as_secs_f64(),
        writer_locks: tenants.iter().map(|t| outbox::writers_key(t)).collect(),
        entity_locks: request.entity_locks,
        events: request.events,
        deposit: request.deposit,
        status: request.answer.status.as_u16(),
        body_head: request.answer.head,
        body_tail: request.answer.tail,
        location: request.answer.location,
    })
    .map_err(ApiError::internal)?;
    // The request's own span for its write: the batch it joins is the committer's.
    let written = state
        .writes
        .write(encoded)
        .instrument(tracing::info_span!("commit"))
        .await;
    if let Ok(Written::Done { .. }) = &written {
        for tenant in &tenants {
            state.announcer.committed(&state.notifier, tenant);
        }
    }
    let answered = match written {
        Ok(Written::Done {
            status,
            body,
            location,
        }) => StatusCode::from_u16(status)
            .map_err(ApiError::internal)
            .map(|status| {
                let body = Bytes::from(body);
                if let Some(key) = cache_key {
                    let answer = CachedAnswer {
                        fingerprint: request.fingerprint,
                        status,
                        body: body.clone(),
                        location: location.clone(),
                    };
                    let lifetime = state.config.idempotency_ttl();
                    state.replay_cache.keep(key, answer, arrived, lifetime);
                }
                Answered {
                    response: StoredResponse {
                        status,
                        body,
                        location,
                    }
                    .into_response(false),
                    replayed: false,
                }
            }),
        Ok(Written::Earlier(earlier)) => {
            replay(earlier, &request.fingerprint).map(|response| Answered {
                response,
                replayed: true,
            })
        }
        Err(WriteError::Refused(Refusal::KeyInFlight { detail })) => {
            Err(ApiError::conflict(detail))
        }
        Err(WriteError::Refused(Refusal::Busy { .. })) => Err(ApiError::conflict(
            "another request with the same Idempotency-Key or for the same entity is still in progress; retry",
        )),
        Err(WriteError::Refused(refusal)) => return Err(refused(refusal)),
        Err(WriteError::Database(err)) => Err(err.into()),
    };
    if let Err(ApiError::Conflict { .. } | ApiError::UnprocessableBody { .. }) = &answered {
        state.metrics.idempotency_conflict(request.scope.endpoint);
    }
    answered
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The tenants whose outboxes `events` append to, sorted, without repeats.
fn writer_tenants<'a>(events: &[writes::EventRow<'a>]) -> Vec<&'a str> {
    let mut tenants: Vec<&str> = events.iter().map(|event| event.tenant).collect();
    tenants.sort_unstable();
    tenants.dedup();
    tenants
}

/// The earlier request's answer, replayed; 422 when this request's body differs.
fn replay(earlier: EarlierRequest, fingerprint: &[u8; 32]) -> Result<Response, ApiError> {
    if earlier.fingerprint != fingerprint {
        return Err(reused_with_another_body());
    }
    let status =
        StatusCode::from_u16(earlier.response_status as u16).map_err(ApiError::internal)?;
    Ok(StoredResponse {
        status,
        body: Bytes::from(earlier.response_body),
        location: earlier.location,
    }
    .into_response(true))
}

/// An answer this replica committed, replayed from memory; 422 when this body differs.
fn replay_cached(cached: CachedAnswer, fingerprint: &[u8; 32]) -> Result<Response, ApiError> {
    if cached.fingerprint != *fingerprint {
        return Err(reused_with_another_body());
    }
    Ok(StoredResponse {
        status: cached.status,
        body: cached.body,
        location: cached.location,
    }
    .into_response(true))
}

fn reused_with_another_body() -> ApiError {
    ApiError::UnprocessableBody {
        detail: "this Idempotency-Key was used with a different request body".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_and_bare_keys_are_the_same_key() {
        let quoted = IdempotencyKey::parse(br#""LVRYWG833Vp2FIIG""#).unwrap();
        let bare = IdempotencyKey::parse(b"LVRYWG833Vp2FIIG").unwrap();
        assert_eq!(quoted, bare);
        assert_eq!(
            IdempotencyKey::parse(br#""a\"b""#).unwrap().as_str(),
            "a\"b"
        );
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let too_long = "k".repeat(256);
        for bad in [
            &b""[..],
            b"\"\"",
            b"\"open",
            b"\"a\"b\"",
            b"a\"b",
            b"\"bad\\escape\"",
            b"tab\tinside",
            "caf\u{e9}".as_bytes(),
            too_long.as_bytes(),
        ] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fingerprint_ignores_layout_and_key_order_but_not_values() {
        let a: Value =
            serde_json::from_str(r#"{"data": {"amount": "10", "currency": "EUR"}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"data":{"currency":"EUR","amount":"10"}}"#).unwrap();
        let c: Value =
            serde_json::from_str(r#"{"data":{"currency":"EUR","amount":"11"}}"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
