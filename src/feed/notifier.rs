//! Wake-ups for long-polls: the process's one LISTEN connection (`crate::listener`) fans
//! each `eventgate_outbox` notification out to the waiters of that tenant, so a thousand
//! waiting clients hold no database connection. A notification is only a hint to look
//! again: it is lost while the listener reconnects, so on reconnect every waiter is woken,
//! and waiters also re-check on a slow timer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
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
}
