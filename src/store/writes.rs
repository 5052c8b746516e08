//! The one call that makes writes: `eventgate_write` (migration
//! `20261202000009_one_call_writes.sql`), one statement and so one transaction for a batch
//! of writes. For each write it answers a replay, or claims the Idempotency-Key with the
//! answer, applies each event's state rule to the read model, appends the events and
//! stores a deposit; the batch takes its locks first and commits once, in one round trip. What
//! the rules refuse comes back per write as a [`Refusal`], the others' writes unaffected.
//! A batch of plain writes (deposits, fundings, portfolio status and divest amount
//! updates, creations of portfolios new to the batch, events that change no read model) is
//! made by one set-based statement inside the call (migrations
//! `20261203000012_set_based_publishes.sql`, `20261206000016_set_based_creations.sql`);
//! the answers are the same.

use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use super::idempotency::EarlierRequest;

/// One write: an element of `p_writes`.
#[derive(Debug, Serialize)]
pub struct Write<'a> {
    /// Who holds the key (a tenant, or the platform) and for which endpoint.
    pub owner: &'a str,
    pub scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    /// The request body's fingerprint, hex.
    pub fingerprint: String,
    pub ttl_secs: f64,
    /// `outbox::writers_key` of each tenant written to.
    pub writer_locks: Vec<String>,
    /// The entity lock keys (`tenant/portfolio/P1`).
    pub entity_locks: &'a [String],
    pub events: &'a [EventRow<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deposit: Option<&'a DepositRow<'a>>,
    /// The answer to store and send. A deposit's answer holds its event's cursor, which
    /// only the database knows: it goes between `body_head` and `body_tail`.
    pub status: u16,
    pub body_head: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_tail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<&'a str>,
}

/// One event to append, with the state rule it is checked against.
#[derive(Debug, Serialize)]
pub struct EventRow<'a> {
    pub tenant: &'a str,
    /// Platform publishes name a tenant that must exist; a client's own tenant does.
    pub check_tenant: bool,
    pub event_type: String,
    pub entity: &'static str,
    pub entity_id: &'a str,
    /// The change the event type fixes; `None` lets the rule decide (`Created` when the
    /// event created its entity).
    pub change: Option<&'static str>,
    pub id: Uuid,
    /// RFC 3339 with microseconds, as the envelope says.
    pub created: String,
    pub envelope: String,
    pub trace_parent: Option<String>,
    pub trace_state: Option<String>,
    #[serde(flatten)]
    pub rule: Rule<'a>,
}

/// The read-model change an event makes, and the checks it needs (`publish` explains
/// them); the names are those the SQL function dispatches on.
#[derive(Debug, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule<'a> {
    CreatePortfolio {
        portfolio: &'a str,
        external_id: &'a str,
        owned_by: &'a str,
    },
    PortfolioStatus {
        portfolio: &'a str,
        external_id: &'a str,
        value: &'a str,
    },
    FundPortfolio {
        portfolio: &'a str,
        /// A decimal string: JSON numbers would pass through a float.
        amount: String,
        currency: &'a str,
    },
    DivestAmount {
        portfolio: &'a str,
        external_id: &'a str,
        divest_amount: String,
        currency: &'a str,
    },
    OptimizationStatus {
        optimization: &'a str,
        portfolio: &'a str,
        external_id: &'a str,
        value: String,
        is_recommended: bool,
    },
    OptimizationChoice {
        optimization: &'a str,
        portfolio: &'a str,
        external_id: &'a str,
        value: String,
    },
    RemovePortfolio {
        portfolio: &'a str,
    },
    /// No read model: the event is only appended.
    None,
}

/// A deposit's own row.
#[derive(Debug, Serialize)]
pub struct DepositRow<'a> {
    pub tenant: &'a str,
    pub id: Uuid,
    pub portfolio: &'a str,
    pub amount: String,
    pub currency: &'a str,
    pub event_id: Uuid,
    pub created: String,
    pub idempotency_key: Option<&'a str>,
}

/// What became of one write.
#[derive(Debug)]
pub enum Written {
    /// Committed; this answer is stored under the key (when there is one).
    Done {
        status: u16,
        body: Vec<u8>,
        location: Option<String>,
    },
    /// The key already holds an answer (compare its fingerprint before replaying it).
    Earlier(EarlierRequest),
}

/// A write refused; nothing of it was written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    /// A state rule: something it names does not exist (`index`: the event, from 0).
    #[error("{detail}")]
    NotFound { index: usize, detail: String },
    /// A state rule: the state does not allow it.
    #[error("{detail}")]
    Conflict { index: usize, detail: String },
    /// Another request holds the key and has not finished.
    #[error("{detail}")]
    KeyInFlight { detail: String },
    /// A lock wait ran out (`lock_timeout`): another request holds what this one needs.
    #[error("{detail}")]
    Busy { detail: String },
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(sqlx::FromRow)]
struct Outcome {
    o_index: i32,
    o_replayed: Option<bool>,
    o_fingerprint: Option<Vec<u8>>,
    o_status: Option<i16>,
    o_body: Option<Vec<u8>>,
    o_location: Option<String>,
    o_refusal: Option<String>,
    o_detail: Option<String>,
    o_event: Option<i32>,
}

/// A write as the batch call takes it.
pub fn encode(write: &Write<'_>) -> Result<Box<RawValue>, serde_json::Error> {
    serde_json::value::to_raw_value(write)
}

/// Runs `writes` as one statement: on a pool, their own transaction in one round trip; on
/// a connection inside a transaction, part of it (tests that hold writers open). One
/// result per write, in order. `announce_later`: the caller announces the writes after
/// commit (`feed::announcer`); `false` has the outbox trigger notify at commit.
#[tracing::instrument(name = "write batch", skip_all, fields(writes = writes.len()))]
pub async fn write_batch(
    db: impl PgExecutor<'_>,
    writes: &[Box<RawValue>],
    lock_wait: Duration,
    announce_later: bool,
) -> Result<Vec<Result<Written, Refusal>>, sqlx::Error> {
    let outcomes: Vec<Outcome> = sqlx::query_as(
        "SELECT o_index, o_replayed, o_fingerprint, o_status, o_body, o_location, o_refusal,
                o_detail, o_event
         FROM eventgate_write($1, $2, $3)",
    )
    .bind(Json(writes))
    .bind(format!("{}ms", lock_wait.as_millis().max(1)))
    .bind(announce_later)
    .fetch_all(db)
    .await?;
    let mut results: Vec<Option<Result<Written, Refusal>>> =
        std::iter::repeat_with(|| None).take(writes.len()).collect();
    for outcome in outcomes {
        let slot = usize::try_from(outcome.o_index)
            .ok()
            .and_then(|index| results.get_mut(index))
            .ok_or_else(|| unexpected("a result for a write that was not sent"))?;
        *slot = Some(outcome.into_result()?);
    }
    results
        .into_iter()
        .map(|result| result.ok_or_else(|| unexpected("a write without a result")))
        .collect()
}

fn unexpected(what: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("eventgate_write returned {what}"))
}

impl Outcome {
    fn into_result(self) -> Result<Result<Written, Refusal>, sqlx::Error> {
        let index = self
            .o_event
            .and_then(|i| usize::try_from(i).ok())
            .unwrap_or(0);
        let detail = self.o_detail.unwrap_or_default();
        if let Some(code) = self.o_refusal {
            return Ok(Err(match code.as_str() {
                "EG404" => Refusal::NotFound { index, detail },
                "EG409" => Refusal::Conflict { index, detail },
                "EGK09" => Refusal::KeyInFlight { detail },
                "55P03" => Refusal::Busy { detail },
                _ => return Err(unexpected(&format!("refusal {code}"))),
            }));
        }
        let (Some(status), Some(body)) = (self.o_status, self.o_body) else {
            return Err(unexpected("a write without its answer"));
        };
        Ok(Ok(if self.o_replayed == Some(true) {
            Written::Earlier(EarlierRequest {
                fingerprint: self.o_fingerprint.unwrap_or_default(),
                response_status: status,
                response_body: body,
                location: self.o_location,
            })
        } else {
            Written::Done {
                status: status as u16,
                body,
                location: self.o_location,
            }
        }))
    }
}
