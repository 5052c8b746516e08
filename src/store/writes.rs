//! The one call that makes a write: `eventgate_write` (migration
//! `20261202000009_one_call_writes.sql`), run as its own transaction. It answers a replay,
//! takes the locks, claims the Idempotency-Key, applies each event's state rule to the read
//! model, appends the events, stores a deposit and the answer, and commits, in one round
//! trip. What the rules refuse comes back as a [`Refusal`].

use std::time::Duration;

use serde::Serialize;
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use super::idempotency::{EarlierRequest, KeyScope};

/// One event to append, with the state rule it is checked against (the fields of one
/// element of `p_events`).
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

/// A deposit's own row (`p_deposit`).
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

/// The answer to store and send. A deposit's answer holds its event's cursor, which only
/// the database knows: it goes between `head` and `tail`.
#[derive(Debug)]
pub struct Answer<'a> {
    pub status: u16,
    pub head: &'a [u8],
    pub tail: Option<&'a [u8]>,
    pub location: Option<&'a str>,
}

/// Everything one write needs.
#[derive(Debug)]
pub struct Write<'a> {
    pub scope: KeyScope<'a>,
    pub key: Option<&'a str>,
    pub fingerprint: &'a [u8; 32],
    pub ttl: Duration,
    pub lock_wait: Duration,
    /// `outbox::writers_key` of each tenant written to, sorted and without repeats.
    pub writer_locks: &'a [String],
    /// The entity lock keys (`tenant/portfolio/P1`).
    pub entity_locks: &'a [String],
    pub events: &'a [EventRow<'a>],
    pub deposit: Option<&'a DepositRow<'a>>,
    pub answer: Answer<'a>,
    /// The caller announces the write after commit (`feed::announcer`); `false` has the
    /// outbox trigger notify inside the transaction.
    pub announce_later: bool,
}

/// What the call did.
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

/// A state rule refused the write; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{detail}")]
    NotFound { index: usize, detail: String },
    #[error("{detail}")]
    Conflict { index: usize, detail: String },
    /// Another request holds the key and has not finished.
    #[error("{detail}")]
    KeyInFlight { detail: String },
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
    o_replayed: bool,
    o_fingerprint: Vec<u8>,
    o_status: i16,
    o_body: Vec<u8>,
    o_location: Option<String>,
}

/// Runs the write as one statement: on a pool, its own transaction in one round trip; on a
/// connection inside a transaction, part of it (tests that hold writers open).
#[tracing::instrument(name = "commit", skip_all, fields(events = write.events.len()))]
pub async fn write(db: impl PgExecutor<'_>, write: &Write<'_>) -> Result<Written, WriteError> {
    let outcome: Outcome = sqlx::query_as(
        "SELECT o_replayed, o_fingerprint, o_status, o_body, o_location
         FROM eventgate_write($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(write.scope.owner)
    .bind(write.scope.endpoint)
    .bind(write.key)
    .bind(&write.fingerprint[..])
    .bind(write.ttl.as_secs_f64())
    .bind(format!("{}ms", write.lock_wait.as_millis().max(1)))
    .bind(write.writer_locks)
    .bind(write.entity_locks)
    .bind(Json(write.events))
    .bind(write.deposit.map(Json))
    .bind(write.answer.status as i16)
    .bind(write.answer.head)
    .bind(write.answer.tail)
    .bind(write.answer.location)
    .bind(write.announce_later)
    .fetch_one(db)
    .await
    .map_err(refusal_or_error)?;
    Ok(if outcome.o_replayed {
        Written::Earlier(EarlierRequest {
            fingerprint: outcome.o_fingerprint,
            response_status: outcome.o_status,
            response_body: outcome.o_body,
            location: outcome.o_location,
        })
    } else {
        Written::Done {
            status: outcome.o_status as u16,
            body: outcome.o_body,
            location: outcome.o_location,
        }
    })
}

/// The function's own SQLSTATEs become [`Refusal`]s; anything else stays a database error.
fn refusal_or_error(err: sqlx::Error) -> WriteError {
    let sqlx::Error::Database(db) = &err else {
        return err.into();
    };
    let detail = db.message().to_owned();
    let index = || {
        db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .and_then(|pg| pg.hint())
            .and_then(|hint| hint.parse().ok())
            .unwrap_or(0)
    };
    match db.code().as_deref() {
        Some("EG404") => Refusal::NotFound {
            index: index(),
            detail,
        }
        .into(),
        Some("EG409") => Refusal::Conflict {
            index: index(),
            detail,
        }
        .into(),
        Some("EGK09") => Refusal::KeyInFlight { detail }.into(),
        _ => err.into(),
    }
}
