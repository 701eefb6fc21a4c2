//! A small in-process cache of answers that are safe to reuse for a short while.
//!
//! Used where a read sits on every hot request and its answer (almost) never changes: the
//! `ADMIN_TOKEN` → user lookup (users and roles are never changed or deleted), a user's
//! current token version (only ever increases; a replacement elsewhere shows within the TTL,
//! one here at once), a coupon's policy (immutable once published; its counters are not read from
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
        self.put_unless(key, value, |_| false);
    }

    /// Stores `value` unless a fresh entry passes `keep` (e.g. "newer than `value`"), checked
    /// and written under one lock: a slow reader's older answer can then never replace a newer
    /// one that was stored meanwhile.
    pub fn put_unless(&self, key: K, value: V, keep: impl Fn(&V) -> bool) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries
            .get(&key)
            .is_some_and(|(at, current)| at.elapsed() < self.ttl && keep(current))
        {
            return;
        }
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
    fn put_unless_keeps_a_fresh_entry_that_passes() {
        let cache = TtlCache::new(Duration::from_millis(50), 10);
        cache.put(1, 3);
        cache.put_unless(1, 2, |current| *current >= 2);
        assert_eq!(cache.get(&1), Some(3));
        cache.put_unless(1, 4, |current| *current >= 4);
        assert_eq!(cache.get(&1), Some(4));
        // An expired entry is replaced whatever it holds.
        std::thread::sleep(Duration::from_millis(60));
        cache.put_unless(1, 1, |current| *current >= 1);
        assert_eq!(cache.get(&1), Some(1));
    }

    #[test]
    fn a_zero_ttl_disables_the_cache() {
        let cache = TtlCache::new(Duration::ZERO, 10);
        cache.put(1, 1);
        assert_eq!(cache.get(&1), None);
    }
}
