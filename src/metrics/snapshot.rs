//! The gauges read from PostgreSQL at scrape time: outbox size and age, and each
//! destination's lag. They describe the shared database, so every replica reports the same.

use sqlx::PgPool;

use super::{DestinationLabels, Metrics};
use crate::delivery::destination::expand_types;
use crate::store;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Rewrites the database gauges of `metrics` from `pool`.
pub async fn refresh(metrics: &Metrics, pool: &PgPool) -> Result<(), SnapshotError> {
    let outbox = store::outbox::summary(pool).await?;
    metrics.inner.outbox_events.set(outbox.events);
    metrics
        .inner
        .outbox_oldest_age
        .set(outbox.oldest_age_secs.unwrap_or(0.0));

    let destinations = store::destinations::list(pool, None).await?;
    let lag = &metrics.inner.destination_lag;
    let pending = &metrics.inner.webhook_pending;
    // Deleted destinations must disappear from the exposition, not freeze at a value.
    lag.clear();
    pending.clear();
    for row in destinations.iter().filter(|row| row.enabled) {
        let labels = DestinationLabels {
            destination: row.id.to_string(),
            tenant: row.tenant_id.clone(),
            kind: row.kind.clone(),
        };
        // A row whose stored types no longer parse is reported by the destination's own
        // status; it simply has no lag gauge here.
        let Ok(types) = expand_types(&row.types) else {
            continue;
        };
        let behind =
            store::destinations::lag(pool, &row.tenant_id, row.delivered()?, &types).await?;
        lag.get_or_create(&labels).set(behind);
        if row.kind == "webhook" {
            let (queued, _failed) = store::webhooks::counts(pool, row.id).await?;
            pending.get_or_create(&labels).set(queued);
        }
    }
    Ok(())
}
