//! Announcing committed writes. A NOTIFY sent inside the writing transaction takes
//! PostgreSQL's database-wide notification lock from its commit's start to its end, so every
//! notifying commit waits for the one before it, fsync included: measured, it halved the
//! writes a second (docs/BENCHMARKS.md). So the write path defers it (`eventgate_write`'s
//! `p_announce_later`), wakes this process's own waiters at once, and hands the tenant to
//! the [`Announcer`], whose one task sends a NOTIFY per tenant for every write committed
//! since its last send, in one statement of its own: under load many writes share one.
//!
//! A notification is a hint, never the data: one lost (the database down when it is sent)
//! delays other replicas' waiters until their own timers look again, and loses nothing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::PgPool;
use tokio::sync::Notify;

use super::notifier::{CHANNEL, Notifier};

#[derive(Clone, Default)]
pub struct Announcer {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    pending: Mutex<HashSet<String>>,
    wake: Notify,
}

impl Announcer {
    /// `tenant`'s outbox grew in a transaction that has committed: wake this process's
    /// waiters now, and every replica's soon.
    pub fn committed(&self, notifier: &Notifier, tenant: &str) {
        notifier.notify(tenant);
        let mut pending = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if pending.insert(tenant.to_owned()) && pending.len() == 1 {
            self.inner.wake.notify_one();
        }
    }

    /// Sends the announcements, for ever.
    pub async fn run(self, pool: PgPool) {
        loop {
            self.inner.wake.notified().await;
            let tenants: Vec<String> = {
                let mut pending = self
                    .inner
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                pending.drain().collect()
            };
            if tenants.is_empty() {
                continue;
            }
            if let Err(err) = announce(&pool, &tenants).await {
                tracing::warn!(error = %err, tenants = tenants.len(),
                    "cannot announce committed writes; other replicas' waiters will look on their timers");
            }
        }
    }
}

/// One NOTIFY per tenant, in one statement (its own transaction).
async fn announce(pool: &PgPool, tenants: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, tenant) FROM unnest($2::text[]) AS tenant")
        .bind(CHANNEL)
        .bind(tenants)
        .execute(pool)
        .await?;
    Ok(())
}
