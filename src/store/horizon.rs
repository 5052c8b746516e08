//! What the feed's horizon is, whether events wait behind it, and which open transaction
//! in the cluster holds it.

use serde::Serialize;
use sqlx::PgExecutor;

use super::position::Xid8;

/// The horizon now, and whether committed events (of any tenant) wait behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub xmin: u64,
    pub events_waiting: bool,
}

#[tracing::instrument(skip_all)]
pub async fn probe(db: impl PgExecutor<'_>) -> Result<Probe, sqlx::Error> {
    let (xmin, events_waiting): (Xid8, bool) = sqlx::query_as(
        "WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
         SELECT h.xmin, EXISTS (SELECT 1 FROM outbox WHERE tx_id >= h.xmin) FROM h",
    )
    .fetch_one(db)
    .await?;
    Ok(Probe {
        xmin: xmin.0,
        events_waiting,
    })
}

/// The oldest open transaction that has a transaction id: the one that holds the horizon.
/// Sessions of other roles show only with `pg_read_all_stats` (or `pg_monitor`).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct Holder {
    /// The backend's process id; `None` for a prepared transaction.
    pub pid: Option<i32>,
    pub database: Option<String>,
    pub application_name: Option<String>,
    /// `active`, `idle in transaction`, … or `prepared`.
    pub state: Option<String>,
    /// Seconds since its transaction started.
    pub transaction_age_secs: Option<f64>,
    /// The global id of a prepared transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prepared_gid: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn oldest_transaction(db: impl PgExecutor<'_>) -> Result<Option<Holder>, sqlx::Error> {
    sqlx::query_as(
        "SELECT pid, database, application_name, state, transaction_age_secs, prepared_gid
         FROM (
             SELECT pid, datname::text AS database, application_name, state,
                    extract(epoch FROM now() - xact_start)::float8 AS transaction_age_secs,
                    NULL::text AS prepared_gid, age(backend_xid) AS xid_age
             FROM pg_stat_activity WHERE backend_xid IS NOT NULL
             UNION ALL
             SELECT NULL, database::text, NULL, 'prepared',
                    extract(epoch FROM now() - prepared)::float8, gid, age(transaction)
             FROM pg_prepared_xacts
         ) running
         ORDER BY xid_age DESC LIMIT 1",
    )
    .fetch_optional(db)
    .await
}
