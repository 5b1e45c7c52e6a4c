//! A short memory of live `check-permission` answers, so that a live search repeated by the same
//! person (an assistant paging or retrying, a UI searching as one types) does not ask the
//! upstream about the same hit again and again. Only definite answers are kept, per connector,
//! upstream user and record: an error or a timeout is not (that hit is dropped now and asked
//! about again next time, so the cache never turns "unknown" into "allowed"). An answer is
//! trusted for the connector's `permission_check_ttl` (default 30 s): a permission
//! removed upstream can keep a live hit visible to its former reader for at most that long
//! (docs/api.md, "Tokens, principals, tenants").

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest TTL kept when the cache is full (older entries than this are surely expired).
const LONGEST_TTL: Duration = Duration::from_secs(3600);
/// Most answers kept; when full, expired ones go first, then all (a burst of distinct hits
/// should not grow the daemon's memory without bound).
const MAX_ENTRIES: usize = 50_000;

/// (connector, upstream user, document id).
type Key = (String, String, String);

#[derive(Debug)]
pub struct PermissionCache {
    max: usize,
    entries: Mutex<HashMap<Key, (bool, Instant)>>,
}

impl Default for PermissionCache {
    fn default() -> Self {
        PermissionCache::new(MAX_ENTRIES)
    }
}

impl PermissionCache {
    pub fn new(max: usize) -> Self {
        let entries = Mutex::new(HashMap::new());
        PermissionCache { max, entries }
    }

    fn key(connector: &str, user: &str, id: &str) -> Key {
        (connector.to_owned(), user.to_owned(), id.to_owned())
    }

    /// The answer given within `ttl`, if any.
    pub fn get(&self, connector: &str, user: &str, id: &str, ttl: Duration) -> Option<bool> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let key = Self::key(connector, user, id);
        match entries.get(&key) {
            Some((allowed, at)) if at.elapsed() < ttl => Some(*allowed),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Keeps a definite answer.
    pub fn put(&self, connector: &str, user: &str, id: &str, allowed: bool) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.max {
            entries.retain(|_, (_, at)| at.elapsed() < LONGEST_TTL);
            if entries.len() >= self.max {
                entries.clear();
            }
        }
        entries.insert(Self::key(connector, user, id), (allowed, Instant::now()));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_PERMISSION_CHECK_TTL as DEFAULT_TTL;

    #[test]
    fn answers_are_kept_per_connector_user_and_record() {
        let (c, ttl) = (PermissionCache::default(), DEFAULT_TTL);
        c.put("wiki", "u1", "p1", true);
        c.put("wiki", "u1", "p2", false);
        assert_eq!(c.get("wiki", "u1", "p1", ttl), Some(true));
        assert_eq!(c.get("wiki", "u1", "p2", ttl), Some(false));
        assert_eq!(
            c.get("wiki", "u2", "p1", ttl),
            None,
            "another user asks again"
        );
        assert_eq!(
            c.get("other", "u1", "p1", ttl),
            None,
            "another connector asks again"
        );
        assert_eq!(
            c.get("wiki", "u1", "p1", Duration::ZERO),
            None,
            "a zero TTL trusts nothing"
        );
    }

    #[test]
    fn an_answer_expires_after_the_ttl() {
        let c = PermissionCache::new(10);
        c.put("wiki", "u1", "p1", true);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get("wiki", "u1", "p1", Duration::from_millis(30)), None);
        assert!(c.is_empty(), "the expired entry is gone");
    }

    #[test]
    fn a_full_cache_stays_bounded() {
        let c = PermissionCache::new(3);
        for i in 0..10 {
            c.put("wiki", "u", &i.to_string(), true);
            assert!(c.len() <= 3);
        }
        let kept = c.get("wiki", "u", "9", DEFAULT_TTL);
        assert_eq!(kept, Some(true), "the newest answer is kept");
    }
}
