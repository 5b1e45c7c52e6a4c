//! API tokens found live, kept in memory so a burst of requests does not queue each token check
//! behind searches for one of the few read connections (on the blocking pool). Keyed by the
//! SHA-256 of the token: the token itself is never kept. An entry counts only while the store's
//! number of revoked tokens is the one read before the token was looked up, so a revocation by
//! any process sharing the database (`airlock tokens revoke` writes the same file) drops every
//! entry at the next request; this process's own revocations also clear it at once.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::tokens::Principal;

/// Tokens kept at most; a full cache starts over (more live tokens than this is not a burst of
/// the same few callers).
const CAPACITY: usize = 4096;

/// The cache key of a token.
pub fn key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Default)]
pub struct TokenCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The revocation count the entries were found under.
    revoked: Option<i64>,
    entries: HashMap<[u8; 32], Principal>,
}

impl TokenCache {
    /// The principal of the token with `key`, when it was found live and `revoked` tokens is
    /// still the count it was found under. A new count drops every entry.
    pub fn get(&self, key: &[u8; 32], revoked: i64) -> Option<Principal> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.revoked != Some(revoked) {
            inner.entries.clear();
            inner.revoked = Some(revoked);
            return None;
        }
        inner.entries.get(key).cloned()
    }

    /// Remembers a token found live by a lookup that began when `revoked` tokens were
    /// counted; kept only if no other count was seen since (a revocation that raced the lookup
    /// must not be hidden).
    pub fn put(&self, key: [u8; 32], principal: Principal, revoked: i64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.revoked != Some(revoked) {
            return;
        }
        if inner.entries.len() >= CAPACITY {
            inner.entries.clear();
        }
        inner.entries.insert(key, principal);
    }

    /// Forgets every token (this process revoked some).
    pub fn clear(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.entries.clear();
        inner.revoked = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(name: &str) -> Principal {
        Principal {
            token_id: format!("id-{name}"),
            name: name.into(),
            tenant: "acme".into(),
            groups: vec![],
            admin: false,
            proxy: vec![],
            scopes: None,
        }
    }

    #[test]
    fn a_token_found_live_is_served_until_the_revocation_count_moves() {
        let cache = TokenCache::default();
        let k = key("alk_alice");
        assert_eq!(cache.get(&k, 0), None, "nothing cached yet");
        cache.put(k, principal("alice"), 0);
        assert_eq!(cache.get(&k, 0), Some(principal("alice")));
        assert_eq!(
            cache.get(&key("alk_bob"), 0),
            None,
            "another token is looked up"
        );
        // Any revocation anywhere: everything is looked up again.
        assert_eq!(cache.get(&k, 1), None);
        assert_eq!(
            cache.get(&k, 1),
            None,
            "dropped, not kept for the new count"
        );
    }

    #[test]
    fn a_lookup_that_raced_a_revocation_is_not_kept() {
        let cache = TokenCache::default();
        let k = key("alk_alice");
        assert_eq!(cache.get(&k, 3), None);
        // Another request saw a revocation while this lookup (begun at 3) was running.
        assert_eq!(cache.get(&key("alk_bob"), 4), None);
        cache.put(k, principal("alice"), 3);
        assert_eq!(cache.get(&k, 4), None);
    }

    #[test]
    fn this_processes_revocations_clear_it_at_once() {
        let cache = TokenCache::default();
        let k = key("alk_alice");
        cache.get(&k, 0);
        cache.put(k, principal("alice"), 0);
        cache.clear();
        assert_eq!(cache.get(&k, 0), None);
    }

    #[test]
    fn entries_are_keyed_by_the_tokens_hash_and_bounded() {
        assert_eq!(key("alk_a"), key("alk_a"));
        assert_ne!(key("alk_a"), key("alk_b"));
        let cache = TokenCache::default();
        cache.get(&key("x"), 0);
        for i in 0..CAPACITY + 10 {
            cache.put(key(&format!("alk_{i}")), principal("p"), 0);
        }
        let inner = cache.inner.lock().unwrap();
        assert!(inner.entries.len() <= CAPACITY);
        assert!(!format!("{:?}", inner.entries.keys().next()).contains("alk_"));
    }
}
