//! The cap on waiting long-polls per tenant: a semaphore per tenant, whose permit a
//! long-poll takes before it waits and holds until it answers. Permits are taken under
//! the map's lock, never by checking a count and acting on it later, so concurrent
//! requests cannot overshoot the cap; relay drivers, which also wait on the notifier, do
//! not count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone)]
pub struct LongPolls {
    per_tenant: usize,
    tenants: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

/// A waiting long-poll's place; the place frees when this drops.
pub struct LongPollPermit {
    _place: OwnedSemaphorePermit,
}

impl LongPolls {
    pub fn new(per_tenant: usize) -> Self {
        Self {
            per_tenant,
            tenants: Arc::default(),
        }
    }

    /// The most long-polls one tenant may have waiting.
    pub fn per_tenant(&self) -> usize {
        self.per_tenant
    }

    /// A place for one more of `tenant`'s long-polls, or `None` when all are taken.
    pub fn try_start(&self, tenant: &str) -> Option<LongPollPermit> {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        let semaphore = tenants
            .entry(tenant.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)));
        semaphore
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|place| LongPollPermit { _place: place })
    }

    /// Long-polls waiting across all tenants.
    pub fn waiting_total(&self) -> usize {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        tenants
            .values()
            .map(|semaphore| self.per_tenant - semaphore.available_permits())
            .sum()
    }

    /// Forgets tenants with no long-poll waiting (their semaphores are made again when
    /// needed).
    pub fn forget_idle(&self) {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        tenants.retain(|_, semaphore| semaphore.available_permits() < self.per_tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_per_tenant_and_places_free_on_drop() {
        let polls = LongPolls::new(2);
        let a1 = polls.try_start("a").expect("first place");
        let _a2 = polls.try_start("a").expect("second place");
        assert!(polls.try_start("a").is_none(), "a third is refused");
        let _b1 = polls
            .try_start("b")
            .expect("another tenant has its own places");
        assert_eq!(polls.waiting_total(), 3);
        drop(a1);
        assert!(
            polls.try_start("a").is_some(),
            "a freed place is taken again"
        );
        polls.forget_idle();
        assert_eq!(polls.waiting_total(), 2);
    }
}
