//! Background work: the LISTEN connection that wakes long-polls and relays, the relay
//! supervisor that pushes events to destinations, purging expired
//! idempotency keys, and purging feed events past their retention, both in small batches,
//! and forgetting the rate-limit buckets of idle tenants.
//! Tasks stop when the returned [`Background`] is dropped.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::app::AppState;
use crate::delivery::relay::{self, Relay};
use crate::delivery::webhook::WebhookSettings;
use crate::store;

const PURGE_BATCH: i64 = 1000;
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Running background tasks; dropping this aborts them.
pub struct Background {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub fn spawn(state: &AppState) -> Background {
    let pool = state.pool.clone();
    let idempotency = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        loop {
            tick.tick().await;
            purge_idempotency_keys(&pool).await;
        }
    });
    let pool = state.pool.clone();
    let retention = state.config.feed_retention();
    let feed = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        loop {
            tick.tick().await;
            if let Err(err) = purge_feed(&pool, retention).await {
                tracing::warn!(error = %err, "purging the feed failed; will retry");
            }
        }
    });
    let rate_limit = state.rate_limit.clone();
    let buckets = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        loop {
            tick.tick().await;
            rate_limit.forget_idle();
        }
    });
    let listener = tokio::spawn(state.notifier.clone().run_listener(state.pool.clone()));
    let mut tasks = vec![idempotency, feed, buckets, listener];
    if state.config.relay {
        let relay = Relay {
            pool: state.pool.clone(),
            notifier: state.notifier.clone(),
            settings: WebhookSettings::from(state.config.as_ref()),
            metrics: state.metrics.clone(),
        };
        tasks.push(tokio::spawn(relay::run_supervisor(
            relay,
            state.shutdown.clone(),
        )));
    }
    Background { tasks }
}

/// Deletes every expired key, a batch at a time so no statement holds locks for long.
pub async fn purge_idempotency_keys(pool: &sqlx::PgPool) {
    loop {
        match store::idempotency::purge_expired(pool, PURGE_BATCH).await {
            Ok(n) if n == PURGE_BATCH as u64 => continue,
            Ok(n) => {
                if n > 0 {
                    tracing::info!(purged = n, "purged expired idempotency keys");
                }
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, "purging idempotency keys failed; will retry");
                return;
            }
        }
    }
}

/// Deletes feed events older than `retention`, a batch at a time. The watermark is raised
/// first, so a reader holding a cursor into the purged range gets 410 rather than a gap.
pub async fn purge_feed(pool: &sqlx::PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let cutoff = chrono::Utc::now()
        .checked_sub_signed(retention)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let Some(through) = store::feed::retention_cutoff(pool, cutoff).await? else {
        return Ok(0);
    };
    store::feed::raise_watermark(pool, through).await?;
    let mut purged = 0;
    loop {
        let n = store::feed::purge_through(pool, through, PURGE_BATCH).await?;
        purged += n;
        if n < PURGE_BATCH as u64 {
            break;
        }
    }
    if purged > 0 {
        tracing::info!(purged, "purged feed events past retention");
    }
    Ok(purged)
}
