//! The gauges read from PostgreSQL at scrape time: outbox size and age, and each
//! destination's lag. They describe the shared database, so every replica reports the same.

use sqlx::PgPool;

use super::{DestinationLabels, Metrics};
use crate::delivery::destination::expand_types;
use crate::store;
use crate::store::destinations::StatusQuery;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Rewrites the database gauges of `metrics` from `pool`.
pub async fn refresh(metrics: &Metrics, pool: &PgPool) -> Result<(), SnapshotError> {
    let oldest = store::horizon::oldest_transaction(pool).await?;
    metrics.inner.oldest_transaction_age.set(
        oldest
            .and_then(|holder| holder.transaction_age_secs)
            .unwrap_or(0.0),
    );
    let outbox = store::outbox::summary(pool).await?;
    metrics.inner.outbox_events.set(outbox.events);
    metrics
        .inner
        .outbox_oldest_age
        .set(outbox.oldest_age_secs.unwrap_or(0.0));

    let destinations = store::destinations::enabled_progress(pool).await?;
    // A row whose stored types no longer parse is reported by the destination's own
    // status; it simply has no lag gauge here.
    let types: Vec<Option<Vec<String>>> = destinations
        .iter()
        .map(|row| expand_types(&row.types).ok())
        .collect();
    let queries: Vec<StatusQuery<'_>> = destinations
        .iter()
        .zip(&types)
        .filter_map(|(row, types)| {
            types
                .as_deref()
                .map(|types| StatusQuery::of_progress(row, types))
        })
        .collect();
    let statuses = store::destinations::statuses(pool, &queries).await?;
    let lag = &metrics.inner.destination_lag;
    let pending = &metrics.inner.webhook_pending;
    let undelivered_age = &metrics.inner.oldest_undelivered_age;
    // Deleted destinations must disappear from the exposition, not freeze at a value.
    lag.clear();
    pending.clear();
    undelivered_age.clear();
    for row in &destinations {
        let Some(status) = statuses.get(&row.id) else {
            continue;
        };
        let labels = DestinationLabels {
            destination: row.id.to_string(),
            tenant: row.tenant_id.clone(),
            kind: row.kind.clone(),
        };
        lag.get_or_create(&labels).set(status.lag);
        undelivered_age
            .get_or_create(&labels)
            .set(status.oldest_undelivered_age_secs);
        if row.kind == "webhook" {
            pending
                .get_or_create(&labels)
                .set(status.pending_deliveries);
        }
    }
    Ok(())
}
