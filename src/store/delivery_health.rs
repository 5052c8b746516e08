//! The state behind delivery health events: whether a destination's failure has been
//! reported (and since when it was failing), moved with compare-and-set updates so two
//! relays, or two steps, never report one transition twice.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::position::{Position, Xid8};

/// A destination whose failure, recovery or disabling is being reported.
#[derive(Debug, sqlx::FromRow)]
pub struct Reported {
    pub tenant_id: String,
    pub kind: String,
    pub last_error: Option<String>,
    /// When it started failing.
    pub since: DateTime<Utc>,
}

/// Marks the failure of an enabled destination failing for at least `after_secs` as
/// reported; `None` when there is nothing to report (not failing long enough, or already
/// reported).
#[tracing::instrument(skip_all)]
pub async fn mark_failing(
    conn: &mut PgConnection,
    id: Uuid,
    after_secs: f64,
) -> Result<Option<Reported>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE destinations SET failing_reported_since = failing_since
         WHERE id = $1 AND enabled AND failing_since IS NOT NULL
           AND failing_reported_since IS NULL
           AND failing_since <= now() - make_interval(secs => $2)
         RETURNING tenant_id, kind, last_error, failing_since AS since",
    )
    .bind(id)
    .bind(after_secs)
    .fetch_optional(conn)
    .await
}

/// Marks a reported failure as over once the destination delivers again; `None` when it
/// is still failing or none was reported.
#[tracing::instrument(skip_all)]
pub async fn mark_recovered(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Reported>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE destinations d SET failing_reported_since = NULL
         FROM (SELECT id, failing_reported_since FROM destinations WHERE id = $1 FOR UPDATE) old
         WHERE d.id = old.id AND d.failing_since IS NULL
           AND old.failing_reported_since IS NOT NULL
         RETURNING d.tenant_id, d.kind, d.last_error, old.failing_reported_since AS since",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A disabled destination's failure report ends with it (the disabling is reported).
#[tracing::instrument(skip_all)]
pub async fn forget_failing(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE destinations SET failing_reported_since = NULL WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// One delivery health event of some tenant, for the platform's feed.
#[derive(Debug, sqlx::FromRow)]
pub struct HealthEvent {
    pub tenant_id: String,
    pub tx_id: Xid8,
    pub seq: i64,
    pub envelope: String,
}

impl HealthEvent {
    pub fn position(&self) -> Position {
        Position::new(self.tx_id, self.seq)
    }
}

/// What one read of the platform's feed saw, under one snapshot.
#[derive(Debug)]
pub struct HealthPage {
    pub xmin: u64,
    pub events: Vec<HealthEvent>,
}

#[derive(sqlx::FromRow)]
struct HealthRow {
    xmin: Xid8,
    tenant_id: Option<String>,
    tx_id: Option<Xid8>,
    seq: Option<i64>,
    envelope: Option<String>,
}

/// Up to `limit` delivery health events of every tenant after `after`, from finished
/// transactions only, in feed order (the same gap-free order as each tenant's feed).
#[tracing::instrument(skip_all)]
pub async fn read_events(
    db: impl PgExecutor<'_>,
    after: Position,
    limit: i64,
) -> Result<HealthPage, sqlx::Error> {
    let rows: Vec<HealthRow> = sqlx::query_as(
        "WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
         SELECT h.xmin, o.tenant_id, o.tx_id, o.seq, o.envelope
         FROM horizon h
         LEFT JOIN LATERAL (
             SELECT tenant_id, tx_id, seq, envelope FROM outbox
             WHERE event_type LIKE 'destinations.%'
               AND (tx_id, seq) > ($1, $2) AND tx_id < h.xmin
             ORDER BY tx_id, seq
             LIMIT $3
         ) o ON true",
    )
    .bind(after.xid())
    .bind(after.seq)
    .bind(limit)
    .fetch_all(db)
    .await?;
    let xmin = rows.first().map_or(0, |row| row.xmin.0);
    let events = rows
        .into_iter()
        .filter_map(|row| {
            Some(HealthEvent {
                tenant_id: row.tenant_id?,
                tx_id: row.tx_id?,
                seq: row.seq?,
                envelope: row.envelope?,
            })
        })
        .collect();
    Ok(HealthPage { xmin, events })
}
