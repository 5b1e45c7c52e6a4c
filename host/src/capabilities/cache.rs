//! Opt-in GET response cache of one grant (`cache_ttl`). A key covers the URI and every request
//! header as sent, the injected credentials included: the gate cannot know which headers an
//! upstream answers differently for (`Accept-Language`, `Prefer`, a tenant header...), so two
//! requests share an entry only when they are the same request. That also honours any `Vary`;
//! an answer with `Vary: *` or `Cache-Control: no-store` is not kept. Only 200 answers up to a
//! size cap are kept, and the map is bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};

const MAX_ENTRIES: usize = 1024;
const MAX_BODY: usize = 1 << 20;

pub type CacheKey = [u8; 32];

#[derive(Clone)]
pub struct Cached {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub struct ResponseCache {
    ttl: Duration,
    map: Mutex<HashMap<CacheKey, (Instant, Cached)>>,
}

/// The key of a request: its URI and every header (names sorted, each value in order).
pub fn key(uri: &http::Uri, headers: &HeaderMap) -> CacheKey {
    let mut h = Sha256::new();
    h.update(uri.to_string().as_bytes());
    let mut names: Vec<&http::HeaderName> = headers.keys().collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    for name in names {
        h.update([0]);
        h.update(name.as_str().as_bytes());
        for v in headers.get_all(name) {
            h.update([1]);
            h.update((v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        }
    }
    h.finalize().into()
}

/// Whether the answer says it may not be reused: `Vary: *` (it depends on more than the
/// request) or `Cache-Control: no-store`.
fn not_reusable(headers: &HeaderMap) -> bool {
    let listed = |name: http::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    listed(http::header::VARY, "*") || listed(http::header::CACHE_CONTROL, "no-store")
}

impl ResponseCache {
    pub fn new(ttl: Duration) -> ResponseCache {
        ResponseCache {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, (Instant, Cached)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &CacheKey) -> Option<Cached> {
        let mut m = self.lock();
        match m.get(key) {
            Some((expires, c)) if *expires > Instant::now() => Some(c.clone()),
            Some(_) => {
                m.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: CacheKey, c: Cached) {
        if c.status != StatusCode::OK || c.body.len() > MAX_BODY || not_reusable(&c.headers) {
            return;
        }
        let now = Instant::now();
        let mut m = self.lock();
        if m.len() >= MAX_ENTRIES {
            m.retain(|_, (exp, _)| *exp > now);
        }
        if m.len() >= MAX_ENTRIES {
            // Still full: drop the entry closest to expiry.
            if let Some(k) = m.iter().min_by_key(|(_, (exp, _))| *exp).map(|(k, _)| *k) {
                m.remove(&k);
            }
        }
        m.insert(key, (now + self.ttl, c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &'static str) -> Cached {
        Cached {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn two_credentials_never_share_an_entry() {
        let uri: http::Uri = "http://h/x".parse().unwrap();
        let auth = http::header::AUTHORIZATION;
        let mut a = HeaderMap::new();
        a.insert(&auth, "Bearer one".parse().unwrap());
        let mut b = HeaderMap::new();
        b.insert(&auth, "Bearer two".parse().unwrap());
        let ka = key(&uri, &a);
        let kb = key(&uri, &b);
        assert_ne!(ka, kb);
        let c = ResponseCache::new(Duration::from_secs(60));
        c.put(ka, ok("for one"));
        assert!(c.get(&kb).is_none());
        assert_eq!(
            c.get(&ka).map(|c| c.body),
            Some(Bytes::from_static(b"for one"))
        );
    }

    #[test]
    fn entries_expire_and_errors_are_not_kept() {
        let c = ResponseCache::new(Duration::from_millis(10));
        let uri: http::Uri = "http://h/x".parse().unwrap();
        let k = key(&uri, &HeaderMap::new());
        c.put(k, ok("x"));
        assert!(c.get(&k).is_some());
        std::thread::sleep(Duration::from_millis(20));
        assert!(c.get(&k).is_none());
        let mut err = ok("nope");
        err.status = StatusCode::INTERNAL_SERVER_ERROR;
        c.put(k, err);
        assert!(c.get(&k).is_none());
    }

    #[test]
    fn any_request_header_that_differs_makes_a_different_entry() {
        let uri: http::Uri = "http://h/x".parse().unwrap();
        let with = |name: &'static str, value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(http::header::ACCEPT, "application/json".parse().unwrap());
            h.insert(name, value.parse().unwrap());
            key(&uri, &h)
        };
        assert_ne!(with("accept-language", "de"), with("accept-language", "fr"));
        assert_ne!(
            with("prefer", "return=minimal"),
            with("prefer", "return=full")
        );
        assert_ne!(with("x-tenant", "a"), with("x-other", "a"));
        assert_eq!(with("accept-language", "de"), with("accept-language", "de"));
        let mut plain = HeaderMap::new();
        plain.insert(http::header::ACCEPT, "application/json".parse().unwrap());
        assert_ne!(key(&uri, &plain), with("accept-language", "de"));
    }

    #[test]
    fn vary_star_and_no_store_answers_are_not_kept() {
        let uri: http::Uri = "http://h/x".parse().unwrap();
        let k = key(&uri, &HeaderMap::new());
        let c = ResponseCache::new(Duration::from_secs(60));
        for (name, value) in [
            ("vary", "*"),
            ("vary", "Accept, *"),
            ("cache-control", "private, no-store"),
        ] {
            let mut answer = ok("x");
            answer.headers.insert(name, value.parse().unwrap());
            c.put(k, answer);
            assert!(c.get(&k).is_none(), "{name}: {value}");
        }
        let mut vary = ok("x");
        vary.headers
            .insert("vary", "Accept-Language".parse().unwrap());
        c.put(k, vary);
        assert!(c.get(&k).is_some());
    }
}
