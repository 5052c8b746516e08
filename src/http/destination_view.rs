//! How a destination is shown: its settings with credentials redacted, and its delivery
//! status (lag, errors, a gap left by retention, a held-back horizon), read for many
//! destinations at once.

use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::delivery::destination::{Kind, SinkConfig, expand_types};
use crate::error::ApiError;
use crate::feed::horizon::HeldBack;
use crate::store::destinations::{self as store, DeliveryStatus, DestinationRow, StatusQuery};

#[derive(Debug, thiserror::Error)]
#[error("stored destination has unknown kind '{0}'")]
pub(super) struct UnknownKind(pub String);

pub(super) fn kind_of(row: &DestinationRow) -> Result<Kind, ApiError> {
    Kind::parse(&row.kind).ok_or_else(|| ApiError::internal(UnknownKind(row.kind.clone())))
}

pub(super) fn take_object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::UnprocessableBody {
            detail: "the body must be a JSON object".into(),
        }),
    }
}

/// The client's view of one destination.
pub(super) async fn view(state: &AppState, row: DestinationRow) -> Result<Value, ApiError> {
    let types = expand_types(&row.types)?;
    let mut statuses = store::statuses(&state.pool, &[StatusQuery::of(&row, &types)]).await?;
    let status = statuses.remove(&row.id).unwrap_or_default();
    shown(row, &status, state.horizon.held_back().as_ref())
}

/// The client's view of each of `rows`, their statuses read in one statement.
pub(super) async fn views(
    state: &AppState,
    rows: Vec<DestinationRow>,
) -> Result<Vec<Value>, ApiError> {
    let types = rows
        .iter()
        .map(|row| expand_types(&row.types))
        .collect::<Result<Vec<_>, _>>()?;
    let queries: Vec<StatusQuery<'_>> = rows
        .iter()
        .zip(&types)
        .map(|(row, types)| StatusQuery::of(row, types))
        .collect();
    let mut statuses = store::statuses(&state.pool, &queries).await?;
    let held = state.horizon.held_back();
    rows.into_iter()
        .map(|row| {
            let status = statuses.remove(&row.id).unwrap_or_default();
            shown(row, &status, held.as_ref())
        })
        .collect()
}

fn shown(
    row: DestinationRow,
    status: &DeliveryStatus,
    held: Option<&HeldBack>,
) -> Result<Value, ApiError> {
    let kind = kind_of(&row)?;
    let config = SinkConfig::parse(kind, row.config.clone())?;
    let delivered = row.delivered();
    let mut shown = take_object(config.redacted())?;
    shown.insert("id".into(), json!(row.id));
    shown.insert("tenant".into(), json!(row.tenant_id));
    shown.insert("kind".into(), json!(row.kind));
    shown.insert("types".into(), json!(row.types));
    shown.insert("enabled".into(), json!(row.enabled));
    shown.insert("created".into(), json!(row.created));
    shown.insert("updated".into(), json!(row.updated));
    // Events in (delivered, purged_through] may be gone: the client decides what to do.
    let gap = status
        .purged_through
        .filter(|purged| delivered < *purged)
        .map(|purged| json!({"after": delivered.encode(), "through": purged.encode()}));
    let mut body = json!({
        "delivered_through": delivered.encode(),
        "lag": status.lag,
        "gap": gap,
        "last_error": row.last_error,
        "last_error_at": row.last_error_at,
        "failing_since": row.failing_since,
        "last_success_at": row.last_success_at,
        // Events wait, but an open transaction somewhere in the cluster holds them back.
        "held_back_by": held.filter(|_| status.lag > 0),
    });
    if kind == Kind::Webhook {
        body["pending_deliveries"] = json!(status.pending_deliveries);
        body["failed_deliveries"] = json!(status.failed_deliveries);
        body["disabled_reason"] = json!(row.disabled_reason);
    }
    shown.insert("status".into(), body);
    Ok(Value::Object(shown))
}
