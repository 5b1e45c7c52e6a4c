//! Opt-in GET response cache of one grant (`cache_ttl`). Keys include a digest of the credentials
//! the gate injected, so two credentials never share an entry; only 200 answers up to a size cap
//! are kept, and the map is bounded.

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

/// The key of a request: its URI, `Accept`, and every credential header the gate injected.
pub fn key(
    uri: &http::Uri,
    headers: &HeaderMap,
    credential_headers: &[&http::HeaderName],
) -> CacheKey {
    let mut h = Sha256::new();
    h.update(uri.to_string().as_bytes());
    h.update([0]);
    if let Some(a) = headers.get(http::header::ACCEPT) {
        h.update(a.as_bytes());
    }
    for name in credential_headers {
        h.update([0]);
        h.update(name.as_str().as_bytes());
        for v in headers.get_all(*name) {
            h.update([1]);
            h.update(v.as_bytes());
        }
    }
    h.finalize().into()
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
        if c.status != StatusCode::OK || c.body.len() > MAX_BODY {
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
        let ka = key(&uri, &a, &[&auth]);
        let kb = key(&uri, &b, &[&auth]);
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
        let k = key(&uri, &HeaderMap::new(), &[]);
        c.put(k, ok("x"));
        assert!(c.get(&k).is_some());
        std::thread::sleep(Duration::from_millis(20));
        assert!(c.get(&k).is_none());
        let mut err = ok("nope");
        err.status = StatusCode::INTERNAL_SERVER_ERROR;
        c.put(k, err);
        assert!(c.get(&k).is_none());
    }
}
