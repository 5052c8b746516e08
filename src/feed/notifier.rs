//! Wake-ups for long-polls: one LISTEN connection for the whole process fans each
//! `eventgate_outbox` notification out to the waiters of that tenant, so a thousand waiting
//! clients hold no database connection. A notification is only a hint to look again: it is
//! lost while the listener reconnects, so on reconnect every waiter is woken, and waiters
//! also re-check on a slow timer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

pub const CHANNEL: &str = "eventgate_outbox";

#[derive(Clone, Default)]
pub struct Notifier {
    tenants: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
}

impl Notifier {
    /// A receiver that changes whenever `tenant`'s outbox may have grown.
    pub fn subscribe(&self, tenant: &str) -> watch::Receiver<u64> {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        tenants
            .entry(tenant.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// How many wake-up receivers of `tenant` exist (waiting long-polls and idle relay
    /// drivers alike); for diagnostics and tests, not for limits.
    pub fn subscribers(&self, tenant: &str) -> usize {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        tenants.get(tenant).map_or(0, watch::Sender::receiver_count)
    }

    pub fn notify(&self, tenant: &str) {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = tenants.get(tenant) {
            if sender.receiver_count() == 0 {
                tenants.remove(tenant);
            } else {
                sender.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    /// Wakes every waiter (after notifications may have been lost).
    pub fn notify_all(&self) {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        tenants.retain(|_, sender| sender.receiver_count() > 0);
        for sender in tenants.values() {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Listens forever, reconnecting after failures.
    pub async fn run_listener(self, pool: PgPool) {
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => match listener.listen(CHANNEL).await {
                    Ok(()) => {
                        // Anything committed while we were not listening must be seen.
                        self.notify_all();
                        self.pump(&mut listener).await;
                    }
                    Err(err) => tracing::warn!(error = %err, "LISTEN failed"),
                },
                Err(err) => tracing::warn!(error = %err, "cannot open the LISTEN connection"),
            }
            self.notify_all();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn pump(&self, listener: &mut PgListener) {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => self.notify(notification.payload()),
                // The connection was lost and re-established: notifications may be gone.
                Ok(None) => self.notify_all(),
                Err(err) => {
                    tracing::warn!(error = %err, "LISTEN connection failed");
                    return;
                }
            }
        }
    }
}
