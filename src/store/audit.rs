//! The `audit_log` table: one row per administrative action, written in the caller's
//! transaction, read in `(tx_id, seq)` order below the snapshot's xmin (as the feed is),
//! so paging through it never skips a row that committed late.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::position::{Position, Xid8};

/// Every action the log records.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[schemars(rename = "AuditAction")]
pub enum Action {
    #[serde(rename = "tenant.created")]
    TenantCreated,
    #[serde(rename = "key.created")]
    KeyCreated,
    #[serde(rename = "key.revoked")]
    KeyRevoked,
    #[serde(rename = "destination.created")]
    DestinationCreated,
    #[serde(rename = "destination.updated")]
    DestinationUpdated,
    #[serde(rename = "destination.enabled")]
    DestinationEnabled,
    #[serde(rename = "destination.disabled")]
    DestinationDisabled,
    #[serde(rename = "destination.deleted")]
    DestinationDeleted,
    #[serde(rename = "destination.replayed")]
    DestinationReplayed,
    #[serde(rename = "destination.secret_rotated")]
    SecretRotated,
    #[serde(rename = "delivery.retried")]
    DeliveryRetried,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TenantCreated => "tenant.created",
            Self::KeyCreated => "key.created",
            Self::KeyRevoked => "key.revoked",
            Self::DestinationCreated => "destination.created",
            Self::DestinationUpdated => "destination.updated",
            Self::DestinationEnabled => "destination.enabled",
            Self::DestinationDisabled => "destination.disabled",
            Self::DestinationDeleted => "destination.deleted",
            Self::DestinationReplayed => "destination.replayed",
            Self::SecretRotated => "destination.secret_rotated",
            Self::DeliveryRetried => "delivery.retried",
        }
    }
}

/// A row to record.
pub struct NewEntry<'a> {
    pub actor_key_id: Option<Uuid>,
    pub actor_role: &'a str,
    pub tenant: Option<&'a str>,
    pub action: Action,
    pub target: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub changes: &'a Value,
}

#[tracing::instrument(skip_all)]
pub async fn insert(conn: &mut PgConnection, entry: &NewEntry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (actor_key_id, actor_role, tenant_id, action, target, request_id, changes)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(entry.actor_key_id)
    .bind(entry.actor_role)
    .bind(entry.tenant)
    .bind(entry.action.as_str())
    .bind(entry.target)
    .bind(entry.request_id)
    .bind(entry.changes)
    .execute(conn)
    .await?;
    Ok(())
}

/// A recorded row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    pub tx_id: Xid8,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_key_id: Option<Uuid>,
    pub actor_role: String,
    pub tenant_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub request_id: Option<String>,
    pub changes: Value,
}

impl EntryRow {
    pub fn position(&self) -> Position {
        Position::new(self.tx_id, self.seq)
    }
}

/// Which rows to read.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    /// Only this tenant's rows (a client key's view).
    pub tenant: Option<&'a str>,
    pub action: Option<&'a str>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Rows after this position.
    pub after: Option<Position>,
}

/// Up to `limit` rows after `filter.after`, oldest first, all committed below the
/// horizon. Rows a filter leaves out are passed over, not waited for.
#[tracing::instrument(skip_all)]
pub async fn list(
    db: impl PgExecutor<'_>,
    filter: &Filter<'_>,
    limit: i64,
) -> Result<Vec<EntryRow>, sqlx::Error> {
    let after = filter.after.unwrap_or(Position::new(Xid8(0), 0));
    sqlx::query_as(
        "SELECT tx_id, seq, at, actor_key_id, actor_role, tenant_id, action, target, request_id, changes
         FROM audit_log
         WHERE (tx_id, seq) > ($1, $2)
           AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
           AND ($3::text IS NULL OR tenant_id = $3)
           AND ($4::text IS NULL OR action = $4)
           AND ($5::timestamptz IS NULL OR at >= $5)
           AND ($6::timestamptz IS NULL OR at < $6)
         ORDER BY tx_id, seq
         LIMIT $7",
    )
    .bind(after.xid())
    .bind(after.seq)
    .bind(filter.tenant)
    .bind(filter.action)
    .bind(filter.since)
    .bind(filter.until)
    .bind(limit)
    .fetch_all(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_their_serialized_form() {
        for action in [
            Action::TenantCreated,
            Action::KeyCreated,
            Action::KeyRevoked,
            Action::DestinationCreated,
            Action::DestinationUpdated,
            Action::DestinationEnabled,
            Action::DestinationDisabled,
            Action::DestinationDeleted,
            Action::DestinationReplayed,
            Action::SecretRotated,
            Action::DeliveryRetried,
        ] {
            assert_eq!(serde_json::to_value(action).unwrap(), action.as_str());
        }
    }
}
