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

    /// Registers a secret value and the encodings it commonly travels in: base64 (standard and
    /// URL-safe, at each of the three byte alignments, so a secret inside a larger encoded blob
    /// is found too), percent-encoding (form and RFC 3986 style) and hex. Other encodings are
    /// caught by [`Scrubber::reveals`], which scans decoded views.
    pub fn add(&self, value: &str) {
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        let forms = encoded_forms(value);
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

    /// Whether `bytes` reveal a known secret under some decoding: plainly, or once JSON `\u`
    /// escapes, percent-encoding (any case), quoted-printable or HTML character references are
    /// undone, alone or two of them stacked, in any mix of escaped and plain characters. Returns
    /// the decoding that revealed it. Used on what upstreams answer, where redacting inside an
    /// encoding is not reliable: the gate withholds such an answer instead.
    pub fn reveals(&self, bytes: &[u8]) -> Option<String> {
        let inner = self.inner.read().ok()?;
        let m = inner.matcher.as_ref()?;
        if m.is_match(bytes) {
            return Some("plain text".into());
        }
        let mut frontier: Vec<(String, Vec<u8>)> = Vec::new();
        for (name, decode) in DECODINGS {
            if let Some(d) = decode(bytes) {
                if m.is_match(&d) {
                    return Some((*name).into());
                }
                frontier.push(((*name).into(), d));
            }
        }
        for (outer, view) in &frontier {
            for (name, decode) in DECODINGS {
                if let Some(d) = decode(view)
                    && m.is_match(&d)
                {
                    return Some(format!("{outer} then {name}"));
                }
            }
        }
        None
    }

    pub fn len(&self) -> usize {
        self.inner.read().map(|i| i.values.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The forms of `value` the matcher looks for directly.
fn encoded_forms(value: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    let mut forms = vec![value.to_string()];
    for engine in [&STANDARD, &URL_SAFE] {
        forms.extend(base64_alignments(engine, value.as_bytes()));
    }
    forms.push(url::form_urlencoded::byte_serialize(value.as_bytes()).collect());
    forms.push(
        percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
    );
    let hex = hex::encode(value);
    forms.push(hex.to_ascii_uppercase());
    forms.push(hex);
    forms
}

/// The base64 characters that depend only on `value`, for each of the three offsets it can
/// start at inside a larger encoded text: characters shared with neighbouring bytes (and the
/// padding) are left out, so the form is found wherever the value sits.
fn base64_alignments(engine: &base64::engine::GeneralPurpose, value: &[u8]) -> Vec<String> {
    (0..3usize)
        .filter_map(|offset| {
            let mut padded = vec![0u8; offset];
            padded.extend_from_slice(value);
            let encoded = engine.encode(&padded);
            let start = (8 * offset).div_ceil(6);
            let end = (8 * (offset + value.len())) / 6;
            encoded.get(start..end).map(str::to_string)
        })
        .collect()
}

/// A decoding an upstream's answer may hide a secret behind: the decoded text, or None when
/// the input holds nothing it would decode.
type Decoding = fn(&[u8]) -> Option<Vec<u8>>;

const DECODINGS: &[(&str, Decoding)] = &[
    ("JSON escapes", json_unescape),
    ("percent-encoding", percent_decode),
    ("quoted-printable", quoted_printable_decode),
    ("HTML character references", html_unescape),
];

/// Undoes JSON string escapes (`\uXXXX` with surrogate pairs, `\/`, `\n`, ...) wherever they
/// appear; other text is kept as is.
fn json_unescape(input: &[u8]) -> Option<Vec<u8>> {
    if !input.contains(&b'\\') {
        return None;
    }
    let hex4 = |at: usize| -> Option<u32> {
        let s = std::str::from_utf8(input.get(at..at + 4)?).ok()?;
        u32::from_str_radix(s, 16).ok()
    };
    let mut out = Vec::with_capacity(input.len());
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        if input[i] != b'\\' || i + 1 >= input.len() {
            out.push(input[i]);
            i += 1;
            continue;
        }
        let simple = match input[i + 1] {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            i += 2;
            changed = true;
            continue;
        }
        if input[i + 1] == b'u'
            && let Some(hi) = hex4(i + 2)
        {
            let mut used = 6;
            let code = if (0xD800..0xDC00).contains(&hi)
                && input.get(i + 6..i + 8) == Some(&b"\\u"[..])
                && let Some(lo) = hex4(i + 8)
                && (0xDC00..0xE000).contains(&lo)
            {
                used = 12;
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            } else {
                hi
            };
            let c = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            i += used;
            changed = true;
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    changed.then_some(out)
}

/// Undoes `%XX` escapes, upper, lower or mixed case.
fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    if !input.contains(&b'%') {
        return None;
    }
    match std::borrow::Cow::from(percent_encoding::percent_decode(input)) {
        std::borrow::Cow::Owned(v) => Some(v),
        std::borrow::Cow::Borrowed(_) => None,
    }
}

/// Undoes quoted-printable: `=XX` escapes (any case) and `=` soft line breaks. Written here
/// because the decoders on crates.io reject or rewrite the rest of a text that is not a clean
/// MIME part, and this one must leave everything else alone.
fn quoted_printable_decode(input: &[u8]) -> Option<Vec<u8>> {
    if !input.contains(&b'=') {
        return None;
    }
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(input.len());
    let mut changed = false;
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'=' {
            match (input.get(i + 1), input.get(i + 2)) {
                (Some(b'\r'), Some(b'\n')) => {
                    i += 3;
                    changed = true;
                    continue;
                }
                (Some(b'\n'), _) => {
                    i += 2;
                    changed = true;
                    continue;
                }
                (Some(&a), Some(&b)) => {
                    if let (Some(h), Some(l)) = (hex(a), hex(b)) {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        changed = true;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(input[i]);
        i += 1;
    }
    changed.then_some(out)
}

/// Undoes HTML numeric character references (`&#65;`, `&#x41;`) and the five XML entities.
fn html_unescape(input: &[u8]) -> Option<Vec<u8>> {
    if !input.contains(&b'&') {
        return None;
    }
    const NAMED: &[(&[u8], u8)] = &[
        (b"&amp;", b'&'),
        (b"&lt;", b'<'),
        (b"&gt;", b'>'),
        (b"&quot;", b'"'),
        (b"&apos;", b'\''),
    ];
    let mut out = Vec::with_capacity(input.len());
    let mut changed = false;
    let mut i = 0;
    'outer: while i < input.len() {
        if input[i] == b'&' {
            for (name, c) in NAMED {
                if input[i..].starts_with(name) {
                    out.push(*c);
                    i += name.len();
                    changed = true;
                    continue 'outer;
                }
            }
            if input.get(i + 1) == Some(&b'#')
                && let Some(len) = input[i..].iter().take(12).position(|&b| b == b';')
            {
                let body = &input[i + 2..i + len];
                let code = match body.first() {
                    Some(b'x' | b'X') => std::str::from_utf8(&body[1..])
                        .ok()
                        .and_then(|s| u32::from_str_radix(s, 16).ok()),
                    _ => std::str::from_utf8(body).ok().and_then(|s| s.parse().ok()),
                };
                if let Some(c) = code.and_then(char::from_u32) {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += len + 1;
                    changed = true;
                    continue;
                }
            }
        }
        out.push(input[i]);
        i += 1;
    }
    changed.then_some(out)
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

    const SECRET: &str = "canary-Reflect/77+q";

    fn scrubber() -> Scrubber {
        let s = Scrubber::new();
        s.add_basic("svc@example.com", SECRET);
        s
    }

    /// Every other character escaped, the rest plain.
    fn mixed(secret: &str, escape: impl Fn(char) -> String) -> String {
        secret
            .chars()
            .enumerate()
            .map(|(i, c)| if i % 2 == 0 { escape(c) } else { c.to_string() })
            .collect()
    }

    #[test]
    fn base64_inside_a_larger_blob_is_found_at_every_alignment() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let s = scrubber();
        for prefix in ["", "x", "xy", "xyz"] {
            let blob = format!("Authorization: Basic-ish {prefix}{SECRET} trailing");
            for encoded in [STANDARD.encode(&blob), URL_SAFE_NO_PAD.encode(&blob)] {
                let out = s.scrub(&encoded);
                assert!(out.contains(REDACTED), "prefix {prefix:?}: {encoded}");
            }
        }
        // base64 of the whole Basic header value, itself base64 (double encoding).
        let basic = STANDARD.encode(format!("svc@example.com:{SECRET}"));
        let twice = STANDARD.encode(format!("authorization: Basic {basic}\r\n"));
        assert!(s.scrub(&twice).contains(REDACTED), "{twice}");
    }

    #[test]
    fn hex_forms_are_scrubbed() {
        let s = scrubber();
        let lower = hex::encode(SECRET);
        assert!(s.scrub(&lower).contains(REDACTED));
        assert!(s.scrub(&lower.to_ascii_uppercase()).contains(REDACTED));
    }

    #[test]
    fn json_escapes_in_any_mix_reveal_the_secret() {
        let s = scrubber();
        let all: String = SECRET
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect();
        let half = mixed(SECRET, |c| format!("\\u{:04X}", c as u32));
        let slash = SECRET.replace('/', "\\/");
        for body in [all, half, slash] {
            let json = format!(r#"{{"headers":{{"authorization":"{body}"}}}}"#);
            assert_eq!(s.scrub(&json), json, "not redactable in place");
            assert_eq!(
                s.reveals(json.as_bytes()).as_deref(),
                Some("JSON escapes"),
                "{json}"
            );
        }
    }

    #[test]
    fn percent_encoding_in_mixed_case_reveals_the_secret() {
        let s = scrubber();
        let body = mixed(SECRET, |c| {
            let h = format!("%{:02x}", c as u32);
            if (c as u32).is_multiple_of(2) {
                h
            } else {
                h.to_ascii_uppercase()
            }
        });
        assert_eq!(
            s.reveals(body.as_bytes()).as_deref(),
            Some("percent-encoding")
        );
    }

    #[test]
    fn quoted_printable_with_soft_breaks_reveals_the_secret() {
        let s = scrubber();
        let escaped = mixed(SECRET, |c| format!("={:02X}", c as u32));
        let (a, b) = escaped.split_at(7);
        let body = format!("Authorization: {a}=\r\n{b}\r\n");
        assert_eq!(
            s.reveals(body.as_bytes()).as_deref(),
            Some("quoted-printable")
        );
        let lower = format!("x {}", mixed(SECRET, |c| format!("={:02x}", c as u32)));
        assert!(s.reveals(lower.as_bytes()).is_some());
    }

    #[test]
    fn html_references_and_stacked_encodings_reveal_the_secret() {
        let s = scrubber();
        let html = mixed(SECRET, |c| format!("&#x{:x};", c as u32));
        assert_eq!(
            s.reveals(html.as_bytes()).as_deref(),
            Some("HTML character references")
        );
        let dec = mixed(SECRET, |c| format!("&#{};", c as u32));
        assert!(s.reveals(dec.as_bytes()).is_some());
        // Percent-encoded, then written into JSON with \u escapes for the `%`.
        let stacked = mixed(SECRET, |c| format!("\\u0025{:02x}", c as u32));
        assert_eq!(
            s.reveals(stacked.as_bytes()).as_deref(),
            Some("JSON escapes then percent-encoding")
        );
    }

    #[test]
    fn ordinary_text_reveals_nothing() {
        let s = scrubber();
        let text = r#"{"a":"caf\u00e9 50% off =3D \n &amp; &#65; canary-Reflect/77"}"#;
        assert_eq!(s.reveals(text.as_bytes()), None);
        assert_eq!(Scrubber::new().reveals(b"anything"), None);
    }
}
