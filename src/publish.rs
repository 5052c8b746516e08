//! Publishing a catalogue event: check it against the state it changes, update the read
//! model, and append it to the outbox — all in the caller's transaction, so the state and
//! the feed never disagree.
//!
//! Rules (each a problem for the client, nothing written): a second `portfolios.creation`
//! of one portfolio is 409; any other event about an unknown portfolio is 404 (the same
//! answer a deposit into it gets); an owner choice for an optimization that has had no
//! status update is 409, as is an optimization event naming another portfolio than the
//! optimization's own.

use serde::Serialize;
use sqlx::PgConnection;

use crate::catalogue::{Change, ChangeRule, Envelope, EventData, EventType};
use crate::error::ApiError;
use crate::store::{outbox, read_model};
use crate::telemetry::trace_context::TraceContext;

/// An event that was appended: its envelope as stored and served.
#[derive(Debug, Clone)]
pub struct Published {
    pub id: uuid::Uuid,
    pub envelope: String,
    /// Its place in the feed.
    pub position: crate::store::position::Position,
}

/// The wire name of a closed-set value (`"WAITING_FOR_FUNDS"`).
fn wire_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn portfolio_not_found(id: &str) -> ApiError {
    ApiError::NotFoundDetail {
        detail: format!("no portfolio '{id}' for this tenant"),
    }
}

/// Applies `data` to the read model and appends its event. The caller has taken the
/// entity locks (`outbox::lock_entities`) for `data.lock_key()`. The event carries the
/// current trace context (this span's, when traces are exported) to its deliveries.
#[tracing::instrument(skip_all, fields(event_type = %ty))]
pub async fn publish(
    conn: &mut PgConnection,
    tenant: &str,
    ty: EventType,
    data: &EventData,
) -> Result<Published, ApiError> {
    let change = apply(conn, tenant, data).await?;
    let change = match ty.change_rule() {
        ChangeRule::Always(fixed) => fixed,
        ChangeRule::CreatedIfNew => change,
    };
    let envelope = Envelope::new(ty, data);
    let id = envelope.id;
    let trace = TraceContext::current();
    let appended = outbox::append(
        conn,
        tenant,
        ty,
        ty.entity(),
        change,
        &envelope,
        trace.as_ref(),
    )
    .await?;
    Ok(Published {
        id,
        envelope: appended.envelope,
        position: appended.position,
    })
}

/// Checks and applies the state change; returns `Created` when the event created its entity.
async fn apply(
    conn: &mut PgConnection,
    tenant: &str,
    data: &EventData,
) -> Result<Change, ApiError> {
    use EventData as D;
    match data {
        D::PortfolioCreation(p) => {
            if !read_model::insert_portfolio(conn, tenant, p).await? {
                return Err(ApiError::conflict(format!(
                    "portfolio '{}' already exists",
                    p.id
                )));
            }
            Ok(Change::Created)
        }
        D::PortfolioStatusUpdate(p) => {
            let found = read_model::set_portfolio_status(
                conn,
                tenant,
                p.id.as_str(),
                p.external_id.as_str(),
                p.value.as_str(),
            )
            .await?;
            found
                .then_some(Change::Updated)
                .ok_or_else(|| portfolio_not_found(p.id.as_str()))
        }
        D::PortfolioFunding(p) => {
            require_portfolio(conn, tenant, p.id.as_str()).await?;
            read_model::add_funding(conn, tenant, p.id.as_str(), p.currency.code(), p.value.0)
                .await?;
            Ok(Change::Updated)
        }
        D::PortfolioDivestAmountUpdate(p) => read_model::set_divest_amount(conn, tenant, p)
            .await?
            .then_some(Change::Updated)
            .ok_or_else(|| portfolio_not_found(p.id.as_str())),
        D::OptimizationStatusUpdate(o) => {
            require_portfolio(conn, tenant, o.portfolio_id.as_str()).await?;
            check_optimization_portfolio(conn, tenant, o.id.as_str(), o.portfolio_id.as_str())
                .await?;
            let created =
                read_model::upsert_optimization_status(conn, tenant, o, &wire_name(&o.value))
                    .await?;
            Ok(if created {
                Change::Created
            } else {
                Change::Updated
            })
        }
        D::OptimizationOwnerChoiceUpdate(o) => {
            require_portfolio(conn, tenant, o.portfolio_id.as_str()).await?;
            let known =
                check_optimization_portfolio(conn, tenant, o.id.as_str(), o.portfolio_id.as_str())
                    .await?;
            if !known {
                return Err(ApiError::conflict(format!(
                    "optimization '{}' has no status yet; publish its optimizations.status-update first",
                    o.id
                )));
            }
            read_model::set_owner_choice(conn, tenant, o, &wire_name(&o.value)).await?;
            Ok(Change::Updated)
        }
        D::PortfolioRemoval(p) => read_model::delete_portfolio(conn, tenant, p.id.as_str())
            .await?
            .then_some(Change::Deleted)
            .ok_or_else(|| portfolio_not_found(p.id.as_str())),
        D::UserCreation(_)
        | D::UserStatusUpdate(_)
        | D::UserAccountNumberUpdate(_)
        | D::ProfileResultUpdate(_)
        | D::ProfileAssessmentResultUpdate(_)
        | D::ReportStatusUpdate(_) => Ok(Change::Updated),
        // eventgate's own delivery health events are refused from the platform before
        // this; they change no read model.
        D::DestinationFailing(_) | D::DestinationRecovered(_) | D::DestinationDisabled(_) => {
            Ok(Change::Updated)
        }
    }
}

async fn require_portfolio(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
) -> Result<(), ApiError> {
    match read_model::portfolio_status(&mut *conn, tenant, id).await? {
        Some(_) => Ok(()),
        None => Err(portfolio_not_found(id)),
    }
}

/// `true` when the optimization exists (and belongs to `portfolio`), `false` when it is new.
async fn check_optimization_portfolio(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
    portfolio: &str,
) -> Result<bool, ApiError> {
    match read_model::optimization_portfolio(&mut *conn, tenant, id).await? {
        None => Ok(false),
        Some(owner) if owner == portfolio => Ok(true),
        Some(owner) => Err(ApiError::conflict(format!(
            "optimization '{id}' belongs to portfolio '{owner}', not '{portfolio}'"
        ))),
    }
}
