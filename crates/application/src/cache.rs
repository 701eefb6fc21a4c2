//! A small in-process cache of answers that are safe to reuse for a short while.
//!
//! Used where a read sits on every hot request and its answer (almost) never changes: the
//! bearer token → user lookup (users and roles are never changed or deleted, tokens never
//! re-issued), a coupon's policy (immutable once published; its counters are not read from
//! the cache), and the popular-products answer. Bounded: past `capacity` entries the expired
//! ones are swept, and if that is not enough the whole map is dropped (it refills from the
//! store; correctness never depends on a hit).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// A value stored less than `ttl` ago that passes `fresh` (callers add their own staleness
    /// rules, e.g. "not from yesterday").
    pub fn get_if(&self, key: &K, fresh: impl Fn(&V) -> bool) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        // A poisoned lock only means a panic elsewhere while holding it; the map is still a map.
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(at, value)| at.elapsed() < self.ttl && fresh(value))
            .map(|(_, value)| value.clone())
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.get_if(key, |_| true)
    }

    pub fn put(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_capacity_is_bounded() {
        let cache = TtlCache::new(Duration::from_millis(50), 2);
        cache.put(1, "a");
        assert_eq!(cache.get(&1), Some("a"));
        assert_eq!(cache.get_if(&1, |v| *v == "b"), None);
        cache.put(2, "b");
        cache.put(3, "c");
        assert!(cache.entries.lock().unwrap().len() <= 2);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&3), None);
    }

    #[test]
    fn a_zero_ttl_disables_the_cache() {
        let cache = TtlCache::new(Duration::ZERO, 10);
        cache.put(1, 1);
        assert_eq!(cache.get(&1), None);
    }
}
