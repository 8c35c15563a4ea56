//! A small time-bounded answer cache for the delegated authenticator and authorizer: Kubernetes
//! caches TokenReview and SubjectAccessReview answers for 10 s each, so a burst of requests by
//! one user costs one review. Bounded in size: when full, expired entries go first, then all.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A map whose entries expire after a per-entry time to live.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    /// A cache holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The unexpired value for `key`.
    pub fn get(&self, key: &K) -> Option<V> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some((deadline, value)) if *deadline > now => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value` for `ttl` (a zero `ttl` stores nothing).
    pub fn insert(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (deadline, _)| *deadline > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (now + ttl, value));
    }

    /// Number of entries, expired ones included.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire() {
        let c = TtlCache::new(10);
        c.insert("a", 1, Duration::from_millis(30));
        c.insert("b", 2, Duration::from_secs(60));
        c.insert("z", 3, Duration::ZERO);
        assert_eq!(c.get(&"a"), Some(1));
        assert_eq!(c.get(&"z"), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.get(&"a"), None);
        assert_eq!(c.get(&"b"), Some(2));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn bounded_in_size() {
        let c = TtlCache::new(3);
        c.insert(1, 1, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        c.insert(2, 2, Duration::from_secs(60));
        c.insert(3, 3, Duration::from_secs(60));
        // Full: the expired entry makes room.
        c.insert(4, 4, Duration::from_secs(60));
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&2), Some(2));
        // Full of live entries: everything goes.
        c.insert(5, 5, Duration::from_secs(60));
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&5), Some(5));
        // Overwriting an existing key never evicts.
        c.insert(5, 6, Duration::from_secs(60));
        assert_eq!(c.get(&5), Some(6));
    }
}
