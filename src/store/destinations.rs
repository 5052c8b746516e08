//! The `destinations` table: settings, and delivery progress in feed order.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::position::{Position, Xid8};
use crate::secrets::{Keyring, SecretsError, places};

/// A destination as the server uses it: its URL and secrets opened (they are sealed in
/// the table). `Debug` shows neither.
#[derive(Clone, sqlx::FromRow)]
pub struct DestinationRow {
    pub id: Uuid,
    pub tenant_id: String,
    pub kind: String,
    pub config: Value,
    pub types: Vec<String>,
    pub enabled: bool,
    pub delivered_tx: Xid8,
    pub delivered_seq: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub secret: Option<String>,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    /// Set while a `destinations.failing` event about it stands (to the failing_since it
    /// reported).
    pub failing_reported_since: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for DestinationRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No URL at all: a password or a token in a query may be in it.
        f.debug_struct("DestinationRow")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("kind", &self.kind)
            .field("enabled", &self.enabled)
            .field("delivered", &self.delivered())
            .finish_non_exhaustive()
    }
}

/// A stored value that does not open (a key missing from the configuration, or a value
/// tampered with) is a decoding error of the row.
fn undecodable(err: SecretsError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(err))
}

impl DestinationRow {
    /// The row as stored, with its URL and secrets opened.
    fn opened(mut self, keyring: &Keyring) -> Result<Self, sqlx::Error> {
        let id = self.id;
        self.config = places::open_settings(keyring, id, self.config).map_err(undecodable)?;
        self.secret = places::open_signing_secret(keyring, id, self.secret).map_err(undecodable)?;
        self.previous_secret =
            places::open_signing_secret(keyring, id, self.previous_secret).map_err(undecodable)?;
        Ok(self)
    }

    /// Everything at or before this position has been handed over (confirmed by the
    /// broker, queued for the webhook, or skipped by the type filter).
    pub fn delivered(&self) -> Position {
        Position::new(self.delivered_tx, self.delivered_seq)
    }

    /// The row as a successful [`advance`] to `to` left it, for a driver that keeps it in
    /// memory.
    pub fn advanced_to(&mut self, to: Position, delivered: bool) {
        self.delivered_tx = to.xid();
        self.delivered_seq = to.seq;
        if delivered {
            self.last_success_at = Some(Utc::now());
            self.last_error = None;
            self.failing_since = None;
        }
    }
}

const COLUMNS: &str =
    "id, tenant_id, kind, config, types, enabled, delivered_tx, delivered_seq, last_error, last_error_at, failing_since, last_success_at, created, updated,
    secret, previous_secret, previous_secret_until, disabled_reason, failing_reported_since";

pub struct NewDestination<'a> {
    pub tenant: &'a str,
    pub kind: &'a str,
    pub config: &'a Value,
    pub types: &'a [String],
    pub enabled: bool,
    /// Where delivery starts: `Position::horizon` of the current xmin delivers what
    /// commits from now on.
    pub start: Position,
    /// Webhooks only: the signing secret.
    pub secret: Option<&'a str>,
}

/// Inserts a destination delivering after `d.start` (use replay for older events).
#[tracing::instrument(skip_all)]
pub async fn insert(
    db: impl PgExecutor<'_>,
    keyring: &Keyring,
    d: &NewDestination<'_>,
) -> Result<DestinationRow, sqlx::Error> {
    let id = Uuid::now_v7();
    let config = places::seal_settings(keyring, id, d.config).map_err(undecodable)?;
    let secret = d
        .secret
        .map(|secret| places::seal_signing_secret(keyring, id, secret))
        .transpose()
        .map_err(undecodable)?;
    // The first heartbeat is due one interval after creation, not at once.
    let row: DestinationRow = sqlx::query_as(&format!(
        "INSERT INTO destinations (id, tenant_id, kind, config, types, enabled, delivered_tx, delivered_seq,
                                   secret, last_heartbeat_at)
         VALUES ($1, $2, $3, $4, $5, $6,
                 $7, 9223372036854775807, $8, now())
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(d.tenant)
    .bind(d.kind)
    .bind(&config)
    .bind(d.types)
    .bind(d.enabled)
    .bind(d.start.xid())
    .bind(secret)
    .fetch_one(db)
    .await?;
    row.opened(keyring)
}

/// One destination; `tenant` `None` means any tenant (platform).
#[tracing::instrument(skip_all)]
pub async fn get(
    db: impl PgExecutor<'_>,
    keyring: &Keyring,
    id: Uuid,
    tenant: Option<&str>,
) -> Result<Option<DestinationRow>, sqlx::Error> {
    let row: Option<DestinationRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM destinations WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(db)
    .await?;
    row.map(|row| row.opened(keyring)).transpose()
}

#[tracing::instrument(skip_all)]
pub async fn list(
    db: impl PgExecutor<'_>,
    keyring: &Keyring,
    tenant: Option<&str>,
) -> Result<Vec<DestinationRow>, sqlx::Error> {
    let rows: Vec<DestinationRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM destinations WHERE ($1::text IS NULL OR tenant_id = $1)
         ORDER BY created, id LIMIT 1000"
    ))
    .bind(tenant)
    .fetch_all(db)
    .await?;
    rows.into_iter().map(|row| row.opened(keyring)).collect()
}

/// What the metrics need of an enabled destination: no settings, no secrets.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Progress {
    pub id: Uuid,
    pub tenant_id: String,
    pub kind: String,
    pub types: Vec<String>,
    pub delivered_tx: Xid8,
    pub delivered_seq: i64,
}

/// Every enabled destination's progress (the secrets are not read).
#[tracing::instrument(skip_all)]
pub async fn enabled_progress(db: impl PgExecutor<'_>) -> Result<Vec<Progress>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, tenant_id, kind, types, delivered_tx, delivered_seq FROM destinations
         WHERE enabled ORDER BY created, id",
    )
    .fetch_all(db)
    .await
}

/// Ids of destinations with work, for the relay supervisor: the enabled ones, and disabled
/// webhooks that still have lifecycle messages (`Deactivated`) to send.
#[tracing::instrument(skip_all)]
pub async fn enabled_ids(db: impl PgExecutor<'_>) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM destinations d
         WHERE enabled OR EXISTS (SELECT 1 FROM webhook_deliveries w
                                  WHERE w.destination_id = d.id AND w.status = 'pending'
                                    AND w.event_id IS NULL)
         ORDER BY id",
    )
    .fetch_all(db)
    .await
}

/// Replaces the signing secret; the old one keeps signing until `previous_until`.
#[tracing::instrument(skip_all)]
pub async fn rotate_secret(
    db: impl PgExecutor<'_>,
    keyring: &Keyring,
    id: Uuid,
    secret: &str,
    previous_until: DateTime<Utc>,
) -> Result<Option<DestinationRow>, sqlx::Error> {
    let sealed = places::seal_signing_secret(keyring, id, secret).map_err(undecodable)?;
    let row: Option<DestinationRow> = sqlx::query_as(&format!(
        "UPDATE destinations SET previous_secret = secret, previous_secret_until = $3, secret = $2,
                updated = now()
         WHERE id = $1 AND kind = 'webhook' RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(sealed)
    .bind(previous_until)
    .fetch_optional(db)
    .await?;
    row.map(|row| row.opened(keyring)).transpose()
}

#[tracing::instrument(skip_all)]
pub async fn update_settings(
    db: impl PgExecutor<'_>,
    keyring: &Keyring,
    id: Uuid,
    config: &Value,
    types: &[String],
    enabled: bool,
) -> Result<Option<DestinationRow>, sqlx::Error> {
    let config = places::seal_settings(keyring, id, config).map_err(undecodable)?;
    let row: Option<DestinationRow> = sqlx::query_as(&format!(
        "UPDATE destinations SET config = $2, types = $3, enabled = $4, updated = now(),
                disabled_reason = CASE WHEN $4 THEN NULL ELSE disabled_reason END,
                failing_since = CASE WHEN $4 AND NOT enabled THEN NULL ELSE failing_since END
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&config)
    .bind(types)
    .bind(enabled)
    .fetch_optional(db)
    .await?;
    row.map(|row| row.opened(keyring)).transpose()
}

/// Deletes a destination; its tenant and kind, `None` when there was none.
#[tracing::instrument(skip_all)]
pub async fn delete(
    db: impl PgExecutor<'_>,
    id: Uuid,
    tenant: Option<&str>,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "DELETE FROM destinations WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)
         RETURNING tenant_id, kind",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(db)
    .await
}

/// Moves the delivered position from `from` to `to` (compare-and-set), and with
/// `delivered` records the success; `false` when the position was changed meanwhile (a
/// replay), so the caller re-reads it. The one way every driver moves a position.
#[tracing::instrument(skip_all)]
pub async fn advance(
    db: impl PgExecutor<'_>,
    id: Uuid,
    from: Position,
    to: Position,
    delivered: bool,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE destinations
         SET delivered_tx = $4, delivered_seq = $5,
             last_success_at = CASE WHEN $6 THEN now() ELSE last_success_at END,
             last_error = CASE WHEN $6 THEN NULL ELSE last_error END,
             failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END
         WHERE id = $1 AND delivered_tx = $2 AND delivered_seq = $3",
    )
    .bind(id)
    .bind(from.xid())
    .bind(from.seq)
    .bind(to.xid())
    .bind(to.seq)
    .bind(delivered)
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Records a delivery failure (the message only: URLs are never put in errors).
#[tracing::instrument(skip_all)]
pub async fn record_error(
    db: impl PgExecutor<'_>,
    id: Uuid,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE destinations SET last_error = $2, last_error_at = now(),
                failing_since = coalesce(failing_since, now())
         WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}

/// Sets the delivered position (replay).
#[tracing::instrument(skip_all)]
pub async fn set_position(
    db: impl PgExecutor<'_>,
    id: Uuid,
    to: Position,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE destinations SET delivered_tx = $2, delivered_seq = $3, updated = now(),
                last_error = NULL, failing_since = NULL
         WHERE id = $1",
    )
    .bind(id)
    .bind(to.xid())
    .bind(to.seq)
    .execute(db)
    .await?;
    Ok(())
}

/// What [`statuses`] needs to know of one destination.
pub struct StatusQuery<'a> {
    pub id: Uuid,
    pub tenant: &'a str,
    pub delivered: Position,
    /// Event type names it delivers; all when empty.
    pub types: &'a [String],
}

impl<'a> StatusQuery<'a> {
    /// The status query of a stored destination delivering `types`.
    pub fn of(row: &'a DestinationRow, types: &'a [String]) -> Self {
        Self {
            id: row.id,
            tenant: &row.tenant_id,
            delivered: row.delivered(),
            types,
        }
    }

    /// The same, for a destination's [`Progress`].
    pub fn of_progress(progress: &'a Progress, types: &'a [String]) -> Self {
        Self {
            id: progress.id,
            tenant: &progress.tenant_id,
            delivered: Position::new(progress.delivered_tx, progress.delivered_seq),
            types,
        }
    }
}

/// How a destination's delivery stands, as read from the database.
#[derive(Debug, Clone, Default)]
pub struct DeliveryStatus {
    /// Events of its types after its delivered position.
    pub lag: i64,
    /// Its tenant's purge watermark: a delivered position below it means a gap.
    pub purged_through: Option<Position>,
    /// Webhooks: deliveries queued and not yet answered 2xx, and those that ran out of
    /// attempts.
    pub pending_deliveries: i64,
    pub failed_deliveries: i64,
    /// Seconds since the oldest thing it has not delivered was created: its first event
    /// not handed over, or (webhooks) its oldest pending delivery; 0 when there is none.
    pub oldest_undelivered_age_secs: f64,
}

#[derive(sqlx::FromRow)]
struct StatusRow {
    id: Uuid,
    lag: i64,
    purged_tx: Option<Xid8>,
    purged_seq: Option<i64>,
    pending: i64,
    failed: i64,
    oldest_undelivered_age: f64,
}

/// The delivery status of many destinations in one statement (one round trip, whatever
/// their number).
#[tracing::instrument(skip_all, fields(destinations = queries.len()))]
pub async fn statuses(
    db: impl PgExecutor<'_>,
    queries: &[StatusQuery<'_>],
) -> Result<std::collections::HashMap<Uuid, DeliveryStatus>, sqlx::Error> {
    let ids: Vec<Uuid> = queries.iter().map(|q| q.id).collect();
    let tenants: Vec<&str> = queries.iter().map(|q| q.tenant).collect();
    let txs: Vec<Xid8> = queries.iter().map(|q| q.delivered.xid()).collect();
    let seqs: Vec<i64> = queries.iter().map(|q| q.delivered.seq).collect();
    // Type names never contain a comma; arrays of arrays would have to be rectangular.
    let types: Vec<String> = queries.iter().map(|q| q.types.join(",")).collect();
    let rows: Vec<StatusRow> = sqlx::query_as(
        "SELECT u.id,
                (SELECT count(*) FROM outbox o
                 WHERE o.tenant_id = u.tenant AND (o.tx_id, o.seq) > (u.tx, u.seq)
                   AND (u.types = '' OR o.event_type = ANY (string_to_array(u.types, ',')))) AS lag,
                w.tx_id AS purged_tx, w.seq AS purged_seq,
                (SELECT count(*) FROM webhook_deliveries d
                 WHERE d.destination_id = u.id AND d.status = 'pending') AS pending,
                (SELECT count(*) FROM webhook_deliveries d
                 WHERE d.destination_id = u.id AND d.status = 'failed') AS failed,
                coalesce(extract(epoch FROM now() - least(
                    (SELECT o.created FROM outbox o
                     WHERE o.tenant_id = u.tenant AND (o.tx_id, o.seq) > (u.tx, u.seq)
                       AND (u.types = '' OR o.event_type = ANY (string_to_array(u.types, ',')))
                     ORDER BY o.tx_id, o.seq LIMIT 1),
                    (SELECT min(d.created) FROM webhook_deliveries d
                     WHERE d.destination_id = u.id AND d.status = 'pending')
                ))::float8, 0) AS oldest_undelivered_age
         FROM UNNEST($1::uuid[], $2::text[], $3::xid8[], $4::int8[], $5::text[])
              AS u (id, tenant, tx, seq, types)
         LEFT JOIN outbox_watermarks w ON w.tenant_id = u.tenant",
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&txs)
    .bind(&seqs)
    .bind(&types)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let status = DeliveryStatus {
                lag: row.lag,
                purged_through: row
                    .purged_tx
                    .zip(row.purged_seq)
                    .map(|(tx, seq)| Position::new(tx, seq)),
                pending_deliveries: row.pending,
                failed_deliveries: row.failed,
                oldest_undelivered_age_secs: row.oldest_undelivered_age.max(0.0),
            };
            (row.id, status)
        })
        .collect())
}

/// How many destinations `tenant` has.
#[tracing::instrument(skip_all)]
pub async fn count_for_tenant(db: impl PgExecutor<'_>, tenant: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM destinations WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(db)
        .await
}
