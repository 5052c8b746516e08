//! Background work: the LISTEN connection that wakes long-polls and relays, the relay
//! supervisor that pushes events to destinations, watching the feed's horizon, purging expired idempotency keys, snapshots, feed
//! events and webhook history past their retention (each in small batches), forgetting
//! the rate-limit buckets and long-poll places of idle tenants, a new outbox's first
//! statistics (`store::first_statistics`), and handing the heap's freed memory back after
//! a burst (`crate::heap_trim`).
//!
//! Every task runs on one [`TaskTracker`] and watches one [`CancellationToken`]: shutdown
//! cancels the token and waits for the tasks to finish what they are doing, so none is cut
//! off in the middle of a transaction or outlives the server.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::AppState;
use crate::delivery::changes::DestinationChanges;
use crate::delivery::relay::{self, Relay};
use crate::delivery::webhook::WebhookSettings;
use crate::heap_trim::{self, HeapTrimmer};
use crate::listener::Listeners;
use crate::store;

const PURGE_BATCH: i64 = 1000;
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// How often the feed's horizon is looked at (one cheap query).
const HORIZON_EVERY: Duration = Duration::from_secs(1);
/// How often a new outbox is looked at until it has its first statistics.
const FIRST_STATISTICS_EVERY: Duration = Duration::from_secs(1);

/// The running background tasks. Dropping this cancels them without waiting; call
/// [`Background::shutdown`] to wait for them.
pub struct Background {
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Background {
    /// Stops every task and waits up to `grace` for them to finish; `false` if some did
    /// not finish in time.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}

/// Runs `work` every `period` until `stop` is cancelled (never in the middle of `work`).
fn every<F, Fut>(tasks: &TaskTracker, stop: &CancellationToken, period: Duration, mut work: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let stop = stop.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = tick.tick() => work().await,
                () = stop.cancelled() => return,
            }
        }
    });
}

pub fn spawn(state: &AppState) -> Background {
    let tasks = TaskTracker::new();
    let stop = CancellationToken::new();

    let pool = state.pool.clone();
    every(&tasks, &stop, PURGE_EVERY, move || {
        let pool = pool.clone();
        async move { purge_idempotency_keys(&pool).await }
    });
    let pool = state.pool.clone();
    let retention = state.config.feed_retention();
    every(&tasks, &stop, PURGE_EVERY, move || {
        let pool = pool.clone();
        async move {
            if let Err(err) = purge_feed(&pool, retention).await {
                tracing::warn!(error = %err, "purging the feed failed; will retry");
            }
        }
    });
    let pool = state.pool.clone();
    every(&tasks, &stop, PURGE_EVERY, move || {
        let pool = pool.clone();
        async move { purge_snapshots(&pool).await }
    });
    let pool = state.pool.clone();
    let history = state.config.webhook_history_retention();
    every(&tasks, &stop, PURGE_EVERY, move || {
        let pool = pool.clone();
        async move {
            if let Err(err) = purge_webhook_history(&pool, history).await {
                tracing::warn!(error = %err, "purging webhook history failed; will retry");
            }
        }
    });
    let (pool, horizon) = (state.pool.clone(), state.horizon.clone());
    every(&tasks, &stop, HORIZON_EVERY, move || {
        let (pool, horizon) = (pool.clone(), horizon.clone());
        async move {
            if let Err(err) = horizon.check(&pool).await {
                tracing::debug!(error = %err, "cannot look at the feed's horizon; will retry");
            }
        }
    });
    let pool = state.pool.clone();
    let first_statistics_stop = stop.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(FIRST_STATISTICS_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = first_statistics_stop.cancelled() => return,
            }
            match store::first_statistics::ensure_outbox_statistics(&pool).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(err) => {
                    tracing::debug!(error = %err, "cannot look at the outbox's statistics; will retry");
                }
            }
        }
    });
    let (rate_limit, long_polls) = (state.rate_limit.clone(), state.long_polls.clone());
    every(&tasks, &stop, PURGE_EVERY, move || {
        rate_limit.forget_idle();
        long_polls.forget_idle();
        std::future::ready(())
    });
    let trimmer = Arc::new(Mutex::new(HeapTrimmer::new(heap_trim::BURST)));
    every(&tasks, &stop, heap_trim::LOOK_EVERY, move || {
        let trimmer = trimmer.clone();
        async move {
            let looked = tokio::task::spawn_blocking(move || {
                trimmer
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .check()
            });
            if let Ok(Some(trimmed)) = looked.await {
                tracing::info!(
                    resident_before_mb = trimmed.before.resident >> 20,
                    resident_after_mb = trimmed.after.resident >> 20,
                    held_mb = trimmed.after.held >> 20,
                    took_ms = trimmed.took.as_secs_f64() * 1e3,
                    "gave the heap's freed memory back"
                );
            }
        }
    });

    let destination_changes = DestinationChanges::default();
    let listeners = Listeners {
        notifier: state.notifier.clone(),
        keys: state.key_cache.clone(),
        destinations: destination_changes.clone(),
    };
    let announcer = state.announcer.clone().run(state.pool.clone());
    let announcer_stop = stop.clone();
    tasks.spawn(async move {
        tokio::select! {
            () = announcer => {}
            () = announcer_stop.cancelled() => {}
        }
    });
    let listener = listeners.run(state.pool.clone());
    let listener_stop = stop.clone();
    tasks.spawn(async move {
        tokio::select! {
            () = listener => {}
            () = listener_stop.cancelled() => {}
        }
    });
    if state.config.relay {
        let relay = Relay {
            pool: state.pool.clone(),
            notifier: state.notifier.clone(),
            changes: destination_changes,
            settings: WebhookSettings::from(state.config.as_ref()),
            metrics: state.metrics.clone(),
            keyring: state.keyring.clone(),
            tasks: tasks.clone(),
        };
        tasks.spawn(relay::run_supervisor(relay, stop.clone()));
    }
    Background { tasks, stop }
}

/// Deletes every expired key, a batch at a time so no statement holds locks for long.
pub async fn purge_idempotency_keys(pool: &sqlx::PgPool) {
    match drain(|| store::idempotency::purge_expired(pool, PURGE_BATCH)).await {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "purged expired idempotency keys"),
        Err(err) => tracing::warn!(error = %err, "purging idempotency keys failed; will retry"),
    }
}

/// Deletes every expired snapshot (with its items), a batch at a time.
pub async fn purge_snapshots(pool: &sqlx::PgPool) {
    match drain(|| store::snapshots::purge_expired(pool, PURGE_BATCH)).await {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "purged expired snapshots"),
        Err(err) => tracing::warn!(error = %err, "purging snapshots failed; will retry"),
    }
}

/// `retention` before now (the earliest time if it reaches past it).
fn cutoff(retention: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(retention)
        .ok()
        .and_then(|retention| Utc::now().checked_sub_signed(retention))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Deletes feed events older than `retention`, tenant by tenant, a batch at a time. Each
/// tenant's watermark is raised first, so a reader holding a cursor into the purged range
/// gets 410 (and a destination, a gap in its status) rather than a silent skip.
pub async fn purge_feed(pool: &sqlx::PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let mut purged = 0;
    for bound in store::retention::bounds(pool, cutoff(retention)).await? {
        store::retention::raise_watermark(pool, &bound.tenant, bound.through).await?;
        purged += drain(|| {
            store::retention::purge_through(pool, &bound.tenant, bound.through, PURGE_BATCH)
        })
        .await?;
    }
    if purged > 0 {
        tracing::info!(purged, "purged feed events past retention");
    }
    Ok(purged)
}

/// Deletes webhook attempts and finished deliveries older than `retention`, a batch at a
/// time; pending deliveries stay whatever their age.
pub async fn purge_webhook_history(
    pool: &sqlx::PgPool,
    retention: Duration,
) -> Result<u64, sqlx::Error> {
    let cutoff = cutoff(retention);
    let attempts =
        drain(|| store::retention::purge_webhook_attempts(pool, cutoff, PURGE_BATCH)).await?;
    let deliveries =
        drain(|| store::retention::purge_webhook_deliveries(pool, cutoff, PURGE_BATCH)).await?;
    if attempts + deliveries > 0 {
        tracing::info!(
            attempts,
            deliveries,
            "purged webhook history past retention"
        );
    }
    Ok(attempts + deliveries)
}

/// Repeats a batched delete until a batch comes back short; returns the total.
async fn drain<F, Fut>(mut batch: F) -> Result<u64, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, sqlx::Error>>,
{
    let mut total = 0;
    loop {
        let n = batch().await?;
        total += n;
        if n < PURGE_BATCH as u64 {
            return Ok(total);
        }
    }
}
