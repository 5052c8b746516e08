//! Publishing a catalogue event: the row that `store::writes` checks against the state it
//! changes, applies to the read model and appends to the outbox, all in the write's one
//! transaction, so the state and the feed never disagree.
//!
//! Rules (each a problem for the client, nothing written; the database function enforces
//! them under the entity's lock): a second `portfolios.creation` of one portfolio is 409;
//! any other event about an unknown portfolio is 404 (the same answer a deposit into it
//! gets); an owner choice for an optimization that has had no status update is 409, as is
//! an optimization event naming another portfolio than the optimization's own.

use std::time::Duration;

use chrono::SecondsFormat;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::catalogue::{ChangeRule, Envelope, EventData, EventType};
use crate::error::ApiError;
use crate::store::outbox;
use crate::store::writes::{self, EventRow, Rule};
use crate::telemetry::trace_context::TraceContext;

/// The wire name of a closed-set value (`"WAITING_FOR_FUNDS"`).
fn wire_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The row that publishes `data` for `tenant`: its envelope (new id, now) and the state
/// rule it must pass. The event carries the current trace context (this span's, when
/// traces are exported) to its deliveries. `check_tenant` for a tenant named by the
/// caller rather than authenticated.
pub fn prepare<'a>(
    tenant: &'a str,
    check_tenant: bool,
    ty: EventType,
    data: &'a EventData,
) -> Result<EventRow<'a>, ApiError> {
    let envelope = Envelope::new(ty, data);
    let trace = TraceContext::current();
    let (trace_parent, trace_state) = match trace {
        Some(trace) => (Some(trace.traceparent), trace.tracestate),
        None => (None, None),
    };
    Ok(EventRow {
        tenant,
        check_tenant,
        event_type: ty.name(),
        entity: ty.entity().as_str(),
        entity_id: data.entity_id().as_str(),
        change: match ty.change_rule() {
            ChangeRule::Always(fixed) => Some(fixed.as_str()),
            ChangeRule::CreatedIfNew => None,
        },
        id: envelope.id,
        created: envelope
            .created
            .to_rfc3339_opts(SecondsFormat::Micros, true),
        envelope: envelope.to_json().map_err(ApiError::internal)?,
        trace_parent,
        trace_state,
        rule: rule(data),
    })
}

/// The read-model change `data` makes.
fn rule(data: &EventData) -> Rule<'_> {
    use EventData as D;
    match data {
        D::PortfolioCreation(p) => Rule::CreatePortfolio {
            portfolio: p.id.as_str(),
            external_id: p.external_id.as_str(),
            owned_by: p.owned_by_user_id.as_str(),
        },
        D::PortfolioStatusUpdate(p) => Rule::PortfolioStatus {
            portfolio: p.id.as_str(),
            external_id: p.external_id.as_str(),
            value: p.value.as_str(),
        },
        D::PortfolioFunding(p) => Rule::FundPortfolio {
            portfolio: p.id.as_str(),
            amount: p.value.0.to_string(),
            currency: p.currency.code(),
        },
        D::PortfolioDivestAmountUpdate(p) => Rule::DivestAmount {
            portfolio: p.id.as_str(),
            external_id: p.external_id.as_str(),
            divest_amount: p.divest_amount.as_literal(),
            currency: p.currency.code(),
        },
        D::OptimizationStatusUpdate(o) => Rule::OptimizationStatus {
            optimization: o.id.as_str(),
            portfolio: o.portfolio_id.as_str(),
            external_id: o.external_id.as_str(),
            value: wire_name(&o.value),
            is_recommended: o.is_recommended,
        },
        D::OptimizationOwnerChoiceUpdate(o) => Rule::OptimizationChoice {
            optimization: o.id.as_str(),
            portfolio: o.portfolio_id.as_str(),
            external_id: o.external_id.as_str(),
            value: wire_name(&o.value),
        },
        D::PortfolioRemoval(p) => Rule::RemovePortfolio {
            portfolio: p.id.as_str(),
        },
        D::UserCreation(_)
        | D::UserStatusUpdate(_)
        | D::UserAccountNumberUpdate(_)
        | D::ProfileResultUpdate(_)
        | D::ProfileAssessmentResultUpdate(_)
        | D::ReportStatusUpdate(_) => Rule::None,
        // eventgate's own delivery health events are refused from the platform before
        // this; they change no read model.
        D::DestinationFailing(_) | D::DestinationRecovered(_) | D::DestinationDisabled(_) => {
            Rule::None
        }
    }
}

/// Publishes one event inside a transaction the caller holds (no Idempotency-Key, no
/// stored answer): the same database call as every write, for the tests and tools that
/// must hold a writer open to interleave it with others. Returns the event's id.
pub async fn publish_in(
    conn: &mut PgConnection,
    tenant: &str,
    ty: EventType,
    data: &EventData,
) -> Result<Uuid, ApiError> {
    let row = prepare(tenant, false, ty, data)?;
    let id = row.id;
    let entity_locks = [data.lock_key(tenant)];
    let write = writes::encode(&writes::Write {
        owner: tenant,
        scope: "publish",
        key: None,
        fingerprint: String::new(),
        ttl_secs: 0.0,
        writer_locks: vec![outbox::writers_key(tenant)],
        entity_locks: &entity_locks,
        events: std::slice::from_ref(&row),
        deposit: None,
        status: 201,
        body_head: "{}",
        body_tail: None,
        location: None,
    })
    .map_err(ApiError::internal)?;
    // Inside a transaction the caller commits: the trigger notifies at its commit.
    let mut results = writes::write_batch(conn, &[write], Duration::from_secs(5), false).await?;
    match results.pop() {
        Some(Ok(_)) => Ok(id),
        Some(Err(refusal)) => Err(ApiError::conflict(refusal.to_string())),
        None => Err(ApiError::internal(std::io::Error::other("no result"))),
    }
}
