//! Background upkeep: purging expired idempotency keys in small batches. Tasks stop when
//! the returned [`Background`] is dropped.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::app::AppState;
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
    Background {
        tasks: vec![idempotency],
    }
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
