//! The process's one LISTEN connection: outbox notifications wake long-polls and relay
//! drivers (`feed::Notifier`); key notifications drop changed keys from the key cache
//! (`key_cache`); destination notifications make relay drivers read their destination
//! again (`delivery::changes`). Notifications are lost while the connection is down, so
//! after every (re)connect each side assumes it missed something: every waiter is woken,
//! the key cache is emptied and every destination counts as changed.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgNotification};
use uuid::Uuid;

use crate::delivery::changes::{self, DestinationChanges};
use crate::feed::notifier::{self, Notifier};
use crate::key_cache::KeyCache;

/// Announces a changed key (payload: its id); see the migration `..._key_notifications`.
pub const KEYS_CHANNEL: &str = "eventgate_keys";

/// Who hears the notifications.
#[derive(Clone)]
pub struct Listeners {
    pub notifier: Notifier,
    pub keys: KeyCache,
    pub destinations: DestinationChanges,
}

impl Listeners {
    fn missed_some(&self) {
        self.keys.clear();
        self.destinations.all_changed();
        self.notifier.notify_all();
    }

    fn deliver(&self, notification: &PgNotification) {
        match notification.channel() {
            KEYS_CHANNEL => match Uuid::parse_str(notification.payload()) {
                Ok(id) => self.keys.forget(id),
                Err(_) => self.keys.clear(),
            },
            changes::CHANNEL => match Uuid::parse_str(notification.payload()) {
                Ok(id) => self.destinations.changed(id),
                Err(_) => self.destinations.all_changed(),
            },
            _ => self.notifier.notify(notification.payload()),
        }
    }

    /// Listens forever, reconnecting after failures.
    pub async fn run(self, pool: PgPool) {
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => {
                    match listener
                        .listen_all([notifier::CHANNEL, KEYS_CHANNEL, changes::CHANNEL])
                        .await
                    {
                        Ok(()) => {
                            // Anything committed while we were not listening must be seen.
                            self.missed_some();
                            self.pump(&mut listener).await;
                        }
                        Err(err) => tracing::warn!(error = %err, "LISTEN failed"),
                    }
                }
                Err(err) => tracing::warn!(error = %err, "cannot open the LISTEN connection"),
            }
            self.missed_some();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn pump(&self, listener: &mut PgListener) {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => self.deliver(&notification),
                // The connection was lost and re-established: notifications may be gone.
                Ok(None) => self.missed_some(),
                Err(err) => {
                    tracing::warn!(error = %err, "LISTEN connection failed");
                    return;
                }
            }
        }
    }
}
