//! Answers committed under an `Idempotency-Key`, kept in memory so that a retry on the
//! replica that made the write is replayed without a database round trip.
//!
//! Safe across replicas without invalidation: a committed answer never changes while its
//! key lives, and a key lives at least as long as its entry here. An entry expires at the
//! time its request arrived plus the key's lifetime, which is no later than the database's
//! own expiry (the key's row is stamped inside the write's transaction, after the request
//! arrived). A miss goes to the database as before; only answers this replica committed
//! itself are kept (a replay read from the database does not say when its key expires).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;

/// Which key: the caller that owns it, the endpoint, and the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub owner: String,
    pub endpoint: &'static str,
    pub key: String,
}

/// A committed answer, with the fingerprint of the request that made it.
#[derive(Debug, Clone)]
pub struct CachedAnswer {
    pub fingerprint: [u8; 32],
    pub status: StatusCode,
    pub body: Bytes,
    pub location: Option<String>,
}

struct Entry {
    answer: CachedAnswer,
    expires: Instant,
}

/// Bounded: past `max_entries` (about 1 KB each with a deposit's answer), expired entries go
/// first, then a tenth of the rest.
#[derive(Clone)]
pub struct ReplayCache {
    entries: Arc<RwLock<HashMap<CacheKey, Entry>>>,
    max_entries: usize,
}

impl ReplayCache {
    /// A cache of at most `max_entries` answers; 0 keeps none.
    pub fn new(max_entries: usize) -> Self {
        Self {
            entries: Arc::default(),
            max_entries,
        }
    }

    /// The answer committed under `key`, if this replica made it and the key still lives.
    pub fn get(&self, key: &CacheKey) -> Option<CachedAnswer> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|entry| Instant::now() < entry.expires)
            .map(|entry| entry.answer.clone())
    }

    /// Keeps an answer just committed for a request that arrived at `arrived`, under a key
    /// that lives for `lifetime` from its commit.
    pub fn keep(&self, key: CacheKey, answer: CachedAnswer, arrived: Instant, lifetime: Duration) {
        if self.max_entries == 0 {
            return;
        }
        let Some(expires) = arrived.checked_add(lifetime) else {
            return;
        };
        let now = Instant::now();
        if expires <= now {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.max_entries {
            make_room(&mut entries, now, self.max_entries);
        }
        entries.insert(key, Entry { answer, expires });
    }

    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops expired entries; if that frees too little, a tenth of the rest (any: an entry
/// dropped early only costs its next replay a database read).
fn make_room(entries: &mut HashMap<CacheKey, Entry>, now: Instant, max_entries: usize) {
    entries.retain(|_, entry| now < entry.expires);
    if entries.len() >= max_entries * 9 / 10 {
        let evicted: Vec<CacheKey> = entries
            .keys()
            .take((max_entries / 10).max(1))
            .cloned()
            .collect();
        for key in evicted {
            entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> CacheKey {
        CacheKey {
            owner: "acme".into(),
            endpoint: "deposits",
            key: name.into(),
        }
    }

    fn answer() -> CachedAnswer {
        CachedAnswer {
            fingerprint: [7; 32],
            status: StatusCode::CREATED,
            body: Bytes::from_static(b"{}"),
            location: None,
        }
    }

    #[test]
    fn an_entry_expires_with_its_key_counted_from_the_request_s_arrival() {
        let cache = ReplayCache::new(100);
        let long_ago = Instant::now() - Duration::from_secs(10);
        cache.keep(key("old"), answer(), long_ago, Duration::from_secs(5));
        cache.keep(
            key("fresh"),
            answer(),
            Instant::now(),
            Duration::from_secs(60),
        );
        assert!(
            cache.get(&key("old")).is_none(),
            "expired before it was kept"
        );
        assert!(cache.get(&key("fresh")).is_some());
        assert!(cache.get(&key("other")).is_none());
    }

    #[test]
    fn keys_of_other_owners_or_endpoints_are_other_entries() {
        let cache = ReplayCache::new(100);
        cache.keep(key("k"), answer(), Instant::now(), Duration::from_secs(60));
        let other_owner = CacheKey {
            owner: "globex".into(),
            ..key("k")
        };
        let other_endpoint = CacheKey {
            endpoint: "publish",
            ..key("k")
        };
        assert!(cache.get(&other_owner).is_none());
        assert!(cache.get(&other_endpoint).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        const MAX_ENTRIES: usize = 100;
        let cache = ReplayCache::new(MAX_ENTRIES);
        for n in 0..MAX_ENTRIES + 50 {
            cache.keep(
                key(&n.to_string()),
                answer(),
                Instant::now(),
                Duration::from_secs(60),
            );
        }
        assert!(cache.len() <= MAX_ENTRIES, "{}", cache.len());
        assert!(cache.get(&key(&(MAX_ENTRIES + 49).to_string())).is_some());
    }

    #[test]
    fn a_cache_of_no_entries_keeps_nothing() {
        let cache = ReplayCache::new(0);
        cache.keep(key("k"), answer(), Instant::now(), Duration::from_secs(60));
        assert!(cache.get(&key("k")).is_none());
        assert!(cache.is_empty());
    }
}
