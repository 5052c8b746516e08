//! The next events of a destination, read with the outbox's one reader, and how far the
//! destination may move once it has handled them.

use sqlx::PgPool;

use super::RelayError;
use crate::store::destinations::DestinationRow;
use crate::store::feed::{self, OutboxRow};
use crate::store::position::Position;

pub struct Batch {
    /// The destination's position when the batch was read (the compare-and-set's old
    /// value).
    pub from: Position,
    pub rows: Vec<OutboxRow>,
    /// Where the destination may move once `rows` are handled: past its last row and,
    /// when the read reached the horizon, past the tenant's events its filter skips, so a
    /// destination that has nothing to deliver still keeps up (and never pins retention).
    pub through: Position,
}

impl Batch {
    /// Nothing to deliver and nowhere to move.
    pub fn is_idle(&self) -> bool {
        self.rows.is_empty() && self.through == self.from
    }
}

/// Reads up to `limit` events of `destination`'s `types` (all when empty) after its
/// position. A position below its tenant's purge watermark is a gap: nothing is read and
/// the destination waits for its client to decide (replay).
pub async fn next_batch(
    pool: &PgPool,
    destination: &DestinationRow,
    types: &[String],
    limit: i64,
) -> Result<Batch, RelayError> {
    batch_after(pool, destination, destination.delivered(), types, limit).await
}

/// As [`next_batch`], after `from` instead of the destination's position: the batch that
/// follows one not yet confirmed, read while its confirm is awaited.
pub async fn batch_after(
    pool: &PgPool,
    destination: &DestinationRow,
    from: Position,
    types: &[String],
    limit: i64,
) -> Result<Batch, RelayError> {
    let read = feed::read(
        pool,
        &destination.tenant_id,
        from,
        (!types.is_empty()).then_some(types),
        limit,
    )
    .await?;
    if let Some(through) = read.purged_through.filter(|_| read.is_gap(from)) {
        return Err(RelayError::Gap {
            after: from,
            through,
        });
    }
    let through = read.handled_through(from, limit);
    Ok(Batch {
        from,
        rows: read.rows,
        through,
    })
}
