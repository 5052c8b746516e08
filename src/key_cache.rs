//! Verified API keys kept in memory, so a request does not look its key up in PostgreSQL.
//!
//! Revocation stays prompt across replicas: every change to a key row (revoked, expiry
//! changed, deleted; by the API, at start-up or by an operator's SQL) notifies
//! `eventgate_keys` with the key's id (a trigger, migration `..._key_notifications`), and
//! each replica's LISTEN connection drops that key (`crate::listener`). The replica that
//! revokes drops it before answering. Notifications can be lost while the LISTEN
//! connection is down: a reconnect empties the cache, and no entry is trusted longer than
//! the configured staleness bound (`--auth-cache-secs`) in any case. A look-up that was in
//! flight when a key was dropped does not put what it read back. A key's own expiry is
//! checked on every use. Unknown keys are never cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;

use crate::store::keys::ActiveKey;

/// Entries kept at most; past it the cache starts over (keys are few per tenant, so this
/// is only reached by churn, e.g. many short-lived keys).
const MAX_ENTRIES: usize = 100_000;

/// SHA-256 of a key's secret, as stored.
pub type KeyHash = [u8; 32];

struct Entry {
    key: ActiveKey,
    verified_at: Instant,
}

#[derive(Clone)]
pub struct KeyCache {
    entries: Arc<RwLock<HashMap<KeyHash, Entry>>>,
    /// Bumped by every forget and clear: a look-up that started before one of them must not
    /// put back what it read (it may be the very key just revoked).
    generation: Arc<AtomicU64>,
    /// How long a verified key is trusted without a new look-up; zero turns caching off.
    staleness: Duration,
}

/// When a database look-up started, as far as the cache is concerned.
#[derive(Debug, Clone, Copy)]
pub struct LookupStarted(u64);

impl KeyCache {
    pub fn new(staleness: Duration) -> Self {
        Self {
            entries: Arc::default(),
            generation: Arc::default(),
            staleness,
        }
    }

    /// Call before looking a key up in the database; pass the result to [`KeyCache::put`].
    pub fn lookup_started(&self) -> LookupStarted {
        LookupStarted(self.generation.load(Ordering::SeqCst))
    }

    /// The key with this hash, if it was verified recently enough and has not expired.
    pub fn get(&self, hash: &KeyHash) -> Option<ActiveKey> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(hash)?;
        let fresh = entry.verified_at.elapsed() < self.staleness;
        let unexpired = entry.key.expires_at.is_none_or(|at| at > Utc::now());
        (fresh && unexpired).then(|| entry.key.clone())
    }

    /// Remembers a key verified in the database by a look-up that started at `started`,
    /// unless a key was forgotten since (then the next request looks it up again).
    pub fn put(&self, hash: KeyHash, key: ActiveKey, started: LookupStarted) {
        if self.staleness.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        // Checked under the write lock that forget and clear also take.
        if self.generation.load(Ordering::SeqCst) != started.0 {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            hash,
            Entry {
                key,
                verified_at: Instant::now(),
            },
        );
    }

    /// Drops the key with this id (it changed: revoked, deleted, new expiry).
    pub fn forget(&self, id: Uuid) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.retain(|_, entry| entry.key.id != id);
    }

    /// Drops every key (changes may have been missed).
    pub fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn key(id: Uuid, expires_at: Option<DateTime<Utc>>) -> ActiveKey {
        ActiveKey {
            id,
            role: "client".into(),
            tenant_id: Some("acme".into()),
            expires_at,
        }
    }

    #[test]
    fn a_forgotten_key_is_looked_up_again() {
        let cache = KeyCache::new(Duration::from_secs(3600));
        let (id, other) = (Uuid::now_v7(), Uuid::now_v7());
        cache.put([1; 32], key(id, None), cache.lookup_started());
        cache.put([2; 32], key(other, None), cache.lookup_started());
        assert!(cache.get(&[1; 32]).is_some());
        cache.forget(id);
        assert!(cache.get(&[1; 32]).is_none());
        assert!(cache.get(&[2; 32]).is_some(), "only that key");
        cache.clear();
        assert!(cache.get(&[2; 32]).is_none());
    }

    #[test]
    fn an_expired_key_is_not_served_from_the_cache() {
        let cache = KeyCache::new(Duration::from_secs(3600));
        let past = Utc::now() - chrono::Duration::seconds(1);
        cache.put(
            [1; 32],
            key(Uuid::now_v7(), Some(past)),
            cache.lookup_started(),
        );
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn a_zero_bound_caches_nothing() {
        let cache = KeyCache::new(Duration::ZERO);
        cache.put([1; 32], key(Uuid::now_v7(), None), cache.lookup_started());
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn a_look_up_that_overlapped_a_revocation_is_not_cached() {
        let cache = KeyCache::new(Duration::from_secs(3600));
        let id = Uuid::now_v7();
        // Read as valid, then revoked (and forgotten) before the reader puts it back.
        let started = cache.lookup_started();
        cache.forget(id);
        cache.put([1; 32], key(id, None), started);
        assert!(
            cache.get(&[1; 32]).is_none(),
            "the revoked key was put back"
        );
        // The next look-up caches it again.
        cache.put([1; 32], key(id, None), cache.lookup_started());
        assert!(cache.get(&[1; 32]).is_some());
    }
}
