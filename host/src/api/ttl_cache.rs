//! A bounded cache of looked-up values, each kept for a time, with one lookup at a time per key
//! (a client's burst of requests asks the upstream once). Shared by the lookups of people's
//! groups: Entra's groups overage and connectors' `resolve-identity`.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

struct Kept<V> {
    value: V,
    at: Instant,
    /// How long this value may be used (an answer that failed is kept shorter).
    life: Duration,
}

/// Lookups in flight by key, held weakly: gone when nobody waits.
type Flights<K> = HashMap<K, Weak<tokio::sync::Mutex<()>>>;

pub struct TtlCache<K, V> {
    kept: tokio::sync::Mutex<HashMap<K, Kept<V>>>,
    flights: std::sync::Mutex<Flights<K>>,
    max: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// At most `max` values are kept (expired ones go first, then the oldest).
    pub fn new(max: usize) -> Self {
        TtlCache {
            kept: Default::default(),
            flights: Default::default(),
            max: max.max(1),
        }
    }

    /// The value kept for `key`, and its age, when younger than both `ttl` (the setting now in
    /// force) and the life it was stored with.
    pub async fn get(&self, key: &K, ttl: Duration) -> Option<(V, Duration)> {
        let kept = self.kept.lock().await;
        let k = kept.get(key)?;
        let age = k.at.elapsed();
        (age < ttl.min(k.life)).then(|| (k.value.clone(), age))
    }

    /// Keeps `value` for `key` during `life` (zero: not kept).
    pub async fn put(&self, key: K, value: V, life: Duration) {
        if life.is_zero() {
            return;
        }
        let mut kept = self.kept.lock().await;
        if kept.len() >= self.max && !kept.contains_key(&key) {
            kept.retain(|_, k| k.at.elapsed() < k.life);
        }
        if kept.len() >= self.max
            && !kept.contains_key(&key)
            && let Some(oldest) = kept
                .iter()
                .min_by_key(|(_, k)| k.at)
                .map(|(k, _)| k.clone())
        {
            kept.remove(&oldest);
        }
        let at = Instant::now();
        kept.insert(key, Kept { value, at, life });
    }

    /// Forgets every value.
    pub async fn clear(&self) {
        self.kept.lock().await.clear();
    }

    /// The value for `key`: the kept one while fresh, else `lookup`'s, which says how long its
    /// answer may be kept. One lookup per key at a time; callers waiting for it share its
    /// answer. The age is zero for a value just looked up.
    pub async fn get_or_lookup<F, Fut>(&self, key: K, ttl: Duration, lookup: F) -> (V, Duration)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = (V, Duration)>,
    {
        if let Some(hit) = self.get(&key, ttl).await {
            return hit;
        }
        let flight = self.flight(&key);
        let _held = flight.lock().await;
        if let Some(hit) = self.get(&key, ttl).await {
            return hit;
        }
        let (value, life) = lookup().await;
        self.put(key, value.clone(), life.min(ttl)).await;
        (value, Duration::ZERO)
    }

    fn flight(&self, key: &K) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(l) = map.get(key).and_then(Weak::upgrade) {
            return l;
        }
        let l = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key.clone(), Arc::downgrade(&l));
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_value_is_looked_up_once_while_fresh_and_again_after_its_ttl() {
        let cache = TtlCache::new(10);
        let calls = AtomicUsize::new(0);
        let lookup = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            ("groups", MINUTE)
        };
        assert_eq!(cache.get_or_lookup("ada", MINUTE, lookup).await.0, "groups");
        let (v, _) = cache.get_or_lookup("ada", MINUTE, lookup).await;
        assert_eq!((v, calls.load(Ordering::SeqCst)), ("groups", 1));
        // A shorter TTL now in force makes the kept value stale at once.
        tokio::time::sleep(Duration::from_millis(20)).await;
        cache
            .get_or_lookup("ada", Duration::from_millis(10), lookup)
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_answer_with_a_short_life_is_kept_only_that_long_and_zero_not_at_all() {
        let cache = TtlCache::new(10);
        cache.put("ada", 1, Duration::from_millis(10)).await;
        assert_eq!(cache.get(&"ada", MINUTE).await.map(|h| h.0), Some(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(cache.get(&"ada", MINUTE).await, None);
        cache.put("bob", 2, Duration::ZERO).await;
        assert_eq!(cache.get(&"bob", MINUTE).await, None);
        cache.put("bob", 3, MINUTE).await;
        cache.clear().await;
        assert_eq!(cache.get(&"bob", MINUTE).await, None);
    }

    #[tokio::test]
    async fn concurrent_callers_for_one_key_share_one_lookup() {
        let cache = Arc::new(TtlCache::new(10));
        let calls = Arc::new(AtomicUsize::new(0));
        let callers = (0..8).map(|_| {
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(async move {
                let lookup = || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    (7, MINUTE)
                };
                cache.get_or_lookup("ada", MINUTE, lookup).await.0
            })
        });
        for c in callers {
            assert_eq!(c.await.ok(), Some(7));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn at_most_max_values_are_kept_and_the_oldest_goes_first() {
        let cache = TtlCache::new(2);
        for (k, v) in [("a", 1), ("b", 2), ("c", 3)] {
            cache.put(k, v, MINUTE).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(cache.get(&"a", MINUTE).await, None);
        assert_eq!(cache.get(&"b", MINUTE).await.map(|h| h.0), Some(2));
        assert_eq!(cache.get(&"c", MINUTE).await.map(|h| h.0), Some(3));
    }
}
