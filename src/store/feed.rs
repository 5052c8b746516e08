//! Reading the outbox in feed order (see `crate::feed` for why this order is final).

use sqlx::PgExecutor;

use crate::feed::cursor::Position;

/// What one feed statement saw, all under one snapshot.
#[derive(Debug)]
pub struct FeedRead {
    /// The snapshot's xmin: every transaction below it has finished.
    pub xmin: u64,
    /// Positions up to here may have been purged.
    pub purged_through: Option<Position>,
    pub rows: Vec<(Position, String)>,
}

type RawRow = (
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

fn parse_xid(text: &str) -> Result<u64, sqlx::Error> {
    text.parse()
        .map_err(|e: std::num::ParseIntError| sqlx::Error::Decode(Box::new(e)))
}

/// Up to `limit` events of `tenant` after `after`, only from finished transactions.
#[tracing::instrument(skip_all)]
pub async fn read(
    db: impl PgExecutor<'_>,
    tenant: &str,
    after: Position,
    types: Option<&[String]>,
    limit: i64,
) -> Result<FeedRead, sqlx::Error> {
    let raw: Vec<RawRow> = sqlx::query_as(
        "WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
         SELECT h.xmin::text,
                (SELECT p.tx_id::text FROM outbox_purged p),
                (SELECT p.seq FROM outbox_purged p),
                o.tx_id::text, o.seq, o.envelope
         FROM horizon h
         LEFT JOIN LATERAL (
             SELECT tx_id, seq, envelope FROM outbox
             WHERE tenant_id = $1
               AND (tx_id, seq) > ($2::text::xid8, $3)
               AND tx_id < h.xmin
               AND ($4::text[] IS NULL OR event_type = ANY ($4))
             ORDER BY tx_id, seq
             LIMIT $5
         ) o ON true",
    )
    .bind(tenant)
    .bind(after.tx_id.to_string())
    .bind(after.seq)
    .bind(types)
    .bind(limit)
    .fetch_all(db)
    .await?;

    let mut read = FeedRead {
        xmin: 0,
        purged_through: None,
        rows: Vec::with_capacity(raw.len()),
    };
    for (xmin, purged_tx, purged_seq, tx_id, seq, envelope) in raw {
        read.xmin = parse_xid(&xmin)?;
        if let (Some(tx), Some(seq)) = (purged_tx, purged_seq) {
            read.purged_through = Some(Position {
                tx_id: parse_xid(&tx)?,
                seq,
            });
        }
        if let (Some(tx_id), Some(seq), Some(envelope)) = (tx_id, seq, envelope) {
            let position = Position {
                tx_id: parse_xid(&tx_id)?,
                seq,
            };
            read.rows.push((position, envelope));
        }
    }
    Ok(read)
}

/// Whether `tenant` has committed events after `after` that are not served yet because an
/// older transaction is still running.
#[tracing::instrument(skip_all)]
pub async fn has_pending(
    db: impl PgExecutor<'_>,
    tenant: &str,
    after: Position,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM outbox
                        WHERE tenant_id = $1 AND (tx_id, seq) > ($2::text::xid8, $3)
                          AND tx_id >= pg_snapshot_xmin(pg_current_snapshot()))",
    )
    .bind(tenant)
    .bind(after.tx_id.to_string())
    .bind(after.seq)
    .fetch_one(db)
    .await
}

#[tracing::instrument(skip_all)]
pub async fn get_event(
    db: impl PgExecutor<'_>,
    tenant: &str,
    id: uuid::Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT envelope FROM outbox WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The newest position older than `cutoff` among finished transactions, but never past
/// what an enabled destination has yet to confirm: everything up to it may be purged. A
/// destination that is down for longer than the retention keeps its events.
#[tracing::instrument(skip_all)]
pub async fn retention_cutoff(
    db: impl PgExecutor<'_>,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Position>, sqlx::Error> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "WITH aged AS (
             SELECT tx_id, seq FROM outbox
             WHERE created < $1 AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY tx_id DESC, seq DESC LIMIT 1
         ),
         undelivered AS (
             SELECT delivered_tx AS tx_id, delivered_seq AS seq FROM destinations
             WHERE enabled ORDER BY delivered_tx, delivered_seq LIMIT 1
         )
         SELECT tx_id::text, seq FROM (SELECT * FROM aged UNION ALL SELECT * FROM undelivered) AS bounds
         WHERE EXISTS (SELECT 1 FROM aged)
         ORDER BY bounds.tx_id, bounds.seq LIMIT 1",
    )
    .bind(cutoff)
    .fetch_optional(db)
    .await?;
    row.map(|(tx, seq)| {
        Ok(Position {
            tx_id: parse_xid(&tx)?,
            seq,
        })
    })
    .transpose()
}

/// Raises the purge watermark to `through` (never lowers it).
#[tracing::instrument(skip_all)]
pub async fn raise_watermark(
    db: impl PgExecutor<'_>,
    through: Position,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox_purged (tx_id, seq) VALUES ($1::text::xid8, $2)
         ON CONFLICT (singleton) DO UPDATE SET tx_id = EXCLUDED.tx_id, seq = EXCLUDED.seq
         WHERE (outbox_purged.tx_id, outbox_purged.seq) < (EXCLUDED.tx_id, EXCLUDED.seq)",
    )
    .bind(through.tx_id.to_string())
    .bind(through.seq)
    .execute(db)
    .await?;
    Ok(())
}

/// Deletes up to `batch` events at or before `through`; returns how many.
#[tracing::instrument(skip_all)]
pub async fn purge_through(
    db: impl PgExecutor<'_>,
    through: Position,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "DELETE FROM outbox WHERE ctid = ANY (ARRAY(
             SELECT ctid FROM outbox WHERE (tx_id, seq) <= ($1::text::xid8, $2) LIMIT $3))",
    )
    .bind(through.tx_id.to_string())
    .bind(through.seq)
    .bind(batch)
    .execute(db)
    .await?;
    Ok(result.rows_affected())
}
