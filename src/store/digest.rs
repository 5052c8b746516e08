//! The reconciliation digest of a range of a tenant's feed: how many events, and a SHA-256
//! of their ids in feed order (each id's lowercase hyphenated text and a line feed), so a
//! client can prove it holds exactly those events.

use sqlx::PgExecutor;

use super::position::{Position, Xid8};

/// What one digest read saw, under one snapshot.
#[derive(Debug, sqlx::FromRow)]
pub struct Digest {
    pub count: i64,
    /// Lowercase hex.
    pub sha256: String,
    /// The horizon: positions up to `Position::horizon(xmin)` are final.
    pub xmin: Xid8,
    purged_tx: Option<Xid8>,
    purged_seq: Option<i64>,
}

impl Digest {
    /// The tenant's purge watermark: events up to it may be gone.
    pub fn purged_through(&self) -> Option<Position> {
        Some(Position::new(self.purged_tx?, self.purged_seq?))
    }
}

/// The digest of `tenant`'s events after `from` up to and including `to`.
#[tracing::instrument(skip_all)]
pub async fn digest(
    db: impl PgExecutor<'_>,
    tenant: &str,
    from: Position,
    to: Position,
) -> Result<Digest, sqlx::Error> {
    sqlx::query_as(
        "WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
              ids AS (SELECT id, tx_id, seq FROM outbox
                      WHERE tenant_id = $1 AND (tx_id, seq) > ($2, $3) AND (tx_id, seq) <= ($4, $5))
         SELECT (SELECT count(*) FROM ids) AS count,
                encode(sha256(convert_to(coalesce(
                    (SELECT string_agg(id::text || chr(10), '' ORDER BY tx_id, seq) FROM ids), ''),
                    'UTF8')), 'hex') AS sha256,
                h.xmin,
                w.tx_id AS purged_tx, w.seq AS purged_seq
         FROM horizon h
         LEFT JOIN outbox_watermarks w ON w.tenant_id = $1",
    )
    .bind(tenant)
    .bind(from.xid())
    .bind(from.seq)
    .bind(to.xid())
    .bind(to.seq)
    .fetch_one(db)
    .await
}
