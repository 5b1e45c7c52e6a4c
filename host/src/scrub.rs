//! Removes every secret value the host knows from text before it reaches a log line, an audit
//! row, an error message or a response.

use std::sync::{Arc, RwLock};

use aho_corasick::AhoCorasick;
use base64::Engine as _;

/// What a scrubbed secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Values shorter than this are not scrubbed: they would mangle ordinary text and are too weak
/// to be credentials anyway (`airlock secrets set` refuses them).
pub const MIN_SECRET_LEN: usize = 6;

/// A shared, growable set of secret values (vault secrets, env/file secrets, OAuth tokens).
#[derive(Clone, Default)]
pub struct Scrubber {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    values: Vec<String>,
    matcher: Option<AhoCorasick>,
}

impl Scrubber {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a secret value and the encodings it commonly travels in (base64 for HTTP
    /// Basic, percent-encoding for form bodies).
    pub fn add(&self, value: &str) {
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        let mut forms = vec![value.to_string()];
        let b64 = base64::engine::general_purpose::STANDARD.encode(value);
        forms.push(b64.trim_end_matches('=').to_string());
        let pct: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        forms.push(pct);
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        let mut changed = false;
        for f in forms {
            if f.len() >= MIN_SECRET_LEN && !inner.values.contains(&f) {
                inner.values.push(f);
                changed = true;
            }
        }
        if changed {
            // Longest first so a value containing another is replaced whole.
            inner.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
            inner.matcher = AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(&inner.values)
                .ok();
        }
    }

    /// Registers the base64 form of HTTP Basic credentials, so an echoed header is scrubbed too.
    pub fn add_basic(&self, username: &str, password: &str) {
        self.add(password);
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        self.add(&encoded);
    }

    /// Returns `text` with every known secret replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        let Ok(inner) = self.inner.read() else {
            return REDACTED.to_string();
        };
        match &inner.matcher {
            Some(m) if m.is_match(text) => {
                let reps = vec![REDACTED; inner.values.len()];
                m.replace_all(text, &reps)
            }
            _ => text.to_string(),
        }
    }

    /// Scrubs `text` in place; no allocation when it holds no secret (the common case).
    pub fn scrub_in_place(&self, text: &mut String) {
        let Ok(inner) = self.inner.read() else {
            *text = REDACTED.to_string();
            return;
        };
        if let Some(m) = &inner.matcher
            && m.is_match(text.as_str())
        {
            let reps = vec![REDACTED; inner.values.len()];
            *text = m.replace_all(text, &reps);
        }
    }

    /// Scrubs bytes that may not be UTF-8 (log output); invalid sequences are kept as is.
    pub fn scrub_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let Ok(inner) = self.inner.read() else {
            return REDACTED.as_bytes().to_vec();
        };
        match &inner.matcher {
            Some(m) if m.is_match(bytes) => {
                let reps = vec![REDACTED.as_bytes(); inner.values.len()];
                m.replace_all_bytes(bytes, &reps)
            }
            _ => bytes.to_vec(),
        }
    }

    /// Like [`Scrubber::scrub_bytes`], but None (no allocation) when nothing matches.
    pub fn scrub_bytes_if_needed(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let inner = self.inner.read().ok()?;
        let m = inner.matcher.as_ref()?;
        if !m.is_match(bytes) {
            return None;
        }
        let reps = vec![REDACTED.as_bytes(); inner.values.len()];
        Some(m.replace_all_bytes(bytes, &reps))
    }

    /// Scrubs every string inside a JSON value, in place.
    pub fn scrub_json(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => self.scrub_in_place(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|i| self.scrub_json(i)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|i| self.scrub_json(i)),
            _ => {}
        }
    }

    pub fn len(&self) -> usize {
        self.inner.read().map(|i| i.values.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_plain_base64_and_percent_encoded_forms() {
        let s = Scrubber::new();
        s.add("canary-Secret/42+x");
        let b64 = base64::engine::general_purpose::STANDARD.encode("canary-Secret/42+x");
        let text = format!("a canary-Secret/42+x b {b64} c canary-Secret%2F42%2Bx");
        let out = s.scrub(&text);
        assert!(!out.contains("canary"), "{out}");
        assert_eq!(out.matches(REDACTED).count(), 3, "{out}");
    }

    #[test]
    fn basic_credentials_header_is_scrubbed() {
        let s = Scrubber::new();
        s.add_basic("me@example.com", "tok-123456");
        let hdr = base64::engine::general_purpose::STANDARD.encode("me@example.com:tok-123456");
        assert_eq!(
            s.scrub(&format!("Basic {hdr}")),
            format!("Basic {REDACTED}")
        );
    }

    #[test]
    fn short_values_are_ignored_and_text_without_secrets_is_unchanged() {
        let s = Scrubber::new();
        s.add("abc");
        assert!(s.is_empty());
        s.add("longer-secret");
        assert_eq!(s.scrub("nothing here abc"), "nothing here abc");
        assert_eq!(
            s.scrub_bytes(b"x longer-secret y"),
            b"x [REDACTED] y".to_vec()
        );
    }
}
