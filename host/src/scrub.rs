//! Removes every secret value the host knows from text before it reaches a log line, an audit
//! row, an error message or a response.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aho_corasick::AhoCorasick;
use base64::Engine as _;

mod views;

use views::{DECODINGS, Unbuilt, View};

thread_local! {
    /// Where [`Scrubber::reveals`] and [`Scrubber::reveals_decoded`] build a decoded view, kept
    /// from one answer to the next.
    static VIEW_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The largest view buffer a thread keeps: a sync page fits, and a rare larger answer does not
/// stay resident on every thread that scanned one.
const VIEW_BUFFER_KEPT: usize = 4 << 20;

/// What a scrubbed secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Values shorter than this are not scrubbed: they would mangle ordinary text and are too weak
/// to be credentials anyway (`airlock secrets set` refuses them).
pub const MIN_SECRET_LEN: usize = 6;

/// A shared, growable set of secret values (vault secrets, env/file secrets, OAuth tokens).
///
/// The daemon's scrubber holds every secret (log lines and audit rows may name any connector).
/// Each connector gets a [`Scrubber::scoped`] one holding only its own secrets, which its
/// responses, pages and errors are scanned for: with a thousand tenants a response is not
/// scanned for the other 999 tenants' secrets, and a new secret rebuilds only small matchers.
#[derive(Clone, Default)]
pub struct Scrubber {
    inner: Arc<RwLock<Inner>>,
    /// Where added values are registered too (the daemon-wide set of a scoped scrubber).
    parent: Option<Box<Scrubber>>,
}

/// The values in levels of growing size, each with its own matcher: a new value rebuilds the
/// smallest level only, and a level that outgrows its capacity is merged into the next one
/// (like an LSM tree), so adding costs O(log n) amortised instead of a rebuild of every value.
#[derive(Default)]
struct Inner {
    known: HashSet<String>,
    levels: Vec<Level>,
    /// Forms of values that stop being secrets at a known time (OAuth access tokens), with the
    /// time they may be forgotten; a form also added without one is not in here (it stays).
    /// Without forgetting, a daemon refreshing thousands of hourly tokens would scan for every
    /// token it ever held.
    expiring: HashMap<String, Instant>,
    /// The earliest time in `expiring`.
    next_expiry: Option<Instant>,
}

#[derive(Default)]
struct Level {
    values: Vec<String>,
    /// The length of the longest value (how far around a decoded escape a value may reach).
    longest: usize,
    /// Built on first scan, not on insert: a connector that never answers (an MSP's idle
    /// tenants) never pays for its matcher, and one that does gets the fastest kind.
    matcher: std::sync::OnceLock<Option<AhoCorasick>>,
}

/// Values the smallest level holds; each next level holds [`GROWTH`] times more.
const FIRST_LEVEL: usize = 64;
const GROWTH: usize = 8;

impl Level {
    fn rebuild(&mut self) {
        self.matcher = std::sync::OnceLock::new();
        self.longest = self.values.iter().map(String::len).max().unwrap_or(0);
    }

    fn matcher(&self) -> Option<&AhoCorasick> {
        self.matcher
            .get_or_init(|| {
                if self.values.is_empty() {
                    return None;
                }
                // Leftmost-longest on a contiguous NFA: measured on a sync page, 8 GB/s with
                // 13 KiB for a connector's forms, where a DFA took 130 KiB (a thousand tenants'
                // connectors each pay it) and standard semantics ran at 0.5 GB/s (no prefilter).
                // Overlaps are found by `Inner::spans` searching again from each match's start.
                AhoCorasick::builder()
                    .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                    .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
                    .build(&self.values)
                    .ok()
            })
            .as_ref()
    }
}

impl Inner {
    /// Adds forms to scan for; with `until`, each is forgotten after that time (unless it is
    /// also added without one). Forms whose time has come are dropped first.
    fn insert(&mut self, new: Vec<String>, until: Option<Instant>) {
        self.forget_expired(Instant::now());
        let mut pending = Vec::new();
        for f in new.into_iter().filter(|f| f.len() >= MIN_SECRET_LEN) {
            let fresh = !self.known.contains(&f);
            match until {
                None => {
                    self.expiring.remove(&f);
                }
                Some(t) if fresh || self.expiring.contains_key(&f) => {
                    let at = self.expiring.entry(f.clone()).or_insert(t);
                    *at = (*at).max(t);
                    self.next_expiry = Some(self.next_expiry.map_or(t, |n| n.min(t)));
                }
                // Known without a time: it stays for good.
                Some(_) => {}
            }
            if fresh {
                self.known.insert(f.clone());
                pending.push(f);
            }
        }
        if pending.is_empty() {
            return;
        }
        let mut capacity = FIRST_LEVEL;
        let mut i = 0;
        loop {
            if i == self.levels.len() {
                self.levels.push(Level::default());
            }
            let level = &mut self.levels[i];
            if level.values.len() + pending.len() <= capacity || i + 1 == MAX_LEVELS {
                level.values.append(&mut pending);
                level.rebuild();
                return;
            }
            pending.append(&mut level.values);
            level.rebuild();
            capacity = capacity.saturating_mul(GROWTH);
            i += 1;
        }
    }

    /// Brings the time of each expiring form in `forms` forward to `at` (never later than it
    /// was); forms kept for good or unknown are left alone.
    fn retire(&mut self, forms: &[String], at: Instant) {
        for f in forms {
            if let Some(t) = self.expiring.get_mut(f) {
                *t = (*t).min(at);
                self.next_expiry = Some(self.next_expiry.map_or(*t, |n| n.min(*t)));
            }
        }
    }

    /// Drops the expiring forms whose time is past `now`, rebuilding only the levels that held
    /// one. Cheap when nothing is due (one comparison).
    fn forget_expired(&mut self, now: Instant) {
        if self.next_expiry.is_none_or(|t| t > now) {
            return;
        }
        let due: HashSet<String> = self
            .expiring
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(f, _)| f.clone())
            .collect();
        for f in &due {
            self.expiring.remove(f);
            self.known.remove(f);
        }
        self.next_expiry = self.expiring.values().min().copied();
        for level in &mut self.levels {
            let before = level.values.len();
            level.values.retain(|v| !due.contains(v));
            if level.values.len() != before {
                level.rebuild();
            }
        }
    }

    fn matchers(&self) -> impl Iterator<Item = &AhoCorasick> {
        self.levels.iter().filter_map(Level::matcher)
    }

    fn is_match(&self, haystack: &[u8]) -> bool {
        self.matchers().any(|m| m.is_match(haystack))
    }

    /// Whether a decoded view holds a value, given that its input held none: a value found
    /// in the view but not in the input overlaps (or spans) a decoded piece, since between
    /// pieces the view is the input copied as it was. So only the stretches around the pieces
    /// are scanned (a page of JSON with a thousand `\n` escapes: a tenth of it, not all).
    fn is_match_near_pieces(&self, view: &impl View) -> bool {
        let reach = self.levels.iter().map(|l| l.longest).max().unwrap_or(0);
        let mut window: Option<(usize, usize)> = None;
        let mut scratch = Vec::new();
        for (start, end) in view.pieces() {
            let (from, to) = (
                start.saturating_sub(reach),
                end.saturating_add(reach).min(view.len()),
            );
            match &mut window {
                Some((_, until)) if from <= *until => *until = (*until).max(to),
                _ => {
                    if let Some((a, b)) = window.replace((from, to))
                        && self.is_match(view.stretch(a, b, &mut scratch))
                    {
                        return true;
                    }
                }
            }
        }
        window.is_some_and(|(a, b)| self.is_match(view.stretch(a, b, &mut scratch)))
    }

    /// The byte ranges to redact: every occurrence of every value in every level, overlapping
    /// ones merged, so two secrets that overlap are redacted whole, never leaving the tail of
    /// one behind.
    fn spans(&self, haystack: &[u8]) -> Vec<(usize, usize)> {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for m in self.matchers() {
            // From one past each match's start, not from its end: a value that begins inside
            // the previous match and runs past it is found too.
            let mut at = 0;
            while at < haystack.len() {
                let input = aho_corasick::Input::new(haystack).range(at..);
                let Some(x) = m.find(input) else { break };
                spans.push((x.start(), x.end()));
                at = x.start() + 1;
            }
        }
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start < last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// `haystack` with every span replaced by [`REDACTED`]; None when nothing matched.
    fn redact(&self, haystack: &[u8]) -> Option<Vec<u8>> {
        if !self.is_match(haystack) {
            return None;
        }
        let mut out = Vec::with_capacity(haystack.len());
        let mut at = 0;
        for (start, end) in self.spans(haystack) {
            out.extend_from_slice(&haystack[at..start]);
            out.extend_from_slice(REDACTED.as_bytes());
            at = end;
        }
        out.extend_from_slice(&haystack[at..]);
        Some(out)
    }

    fn redact_str(&self, text: &str) -> Option<String> {
        // Spans start and end on pattern boundaries of UTF-8 patterns in UTF-8 text, so the
        // result is UTF-8; the lossy conversion only guards that reasoning.
        self.redact(text.as_bytes()).map(|b| {
            String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        })
    }
}

/// How long an expired value is still scrubbed: an expired token is no credential, but it may
/// still be echoed in a late log line or error for a while (and clocks differ).
pub const EXPIRED_GRACE: Duration = Duration::from_secs(3600);

/// How long a rotating value (a refresh token) is kept when it is neither added again nor
/// retired: longer than upstreams let an unused refresh token live (Microsoft: 90 days).
pub const ROTATING_IDLE: Duration = Duration::from_secs(100 * 86_400);

/// Levels beyond this take everything (64 * 8^7 values: far more than any deployment has).
const MAX_LEVELS: usize = 8;

impl Scrubber {
    pub fn new() -> Self {
        Self::default()
    }

    /// A scrubber for one connector: it scans only for the values added to it, and registers
    /// each of them with `self` too (so the daemon's logs and audit rows still lose them).
    pub fn scoped(&self) -> Scrubber {
        Scrubber {
            inner: Arc::default(),
            parent: Some(Box::new(self.clone())),
        }
    }

    /// Registers a secret value and the encodings it commonly travels in: base64 (standard and
    /// URL-safe, at each of the three byte alignments, so a secret inside a larger encoded blob
    /// is found too), percent-encoding (form and RFC 3986 style) and hex. Other encodings are
    /// caught by [`Scrubber::reveals`], which scans decoded views.
    pub fn add(&self, value: &str) {
        self.add_all([value]);
    }

    /// Registers many values at once (one rebuild, however many there are: a start with
    /// thousands of tenants).
    pub fn add_all<'a>(&self, values: impl IntoIterator<Item = &'a str>) {
        let forms: Vec<String> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .flat_map(encoded_forms)
            .collect();
        self.insert(forms);
    }

    /// Registers a value that stops being a secret at `expires` (an OAuth access token's
    /// expiry): it is scrubbed like any other until [`EXPIRED_GRACE`] after that, then
    /// forgotten when a later value is added (typically the token that replaced it). A value
    /// also added by [`Scrubber::add`] is never forgotten.
    pub fn add_expiring(&self, value: &str, expires: Instant) {
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        self.insert_until(encoded_forms(value), Some(expires + EXPIRED_GRACE));
    }

    /// Registers a value that is a secret until something replaces it (an OAuth refresh token,
    /// which rotates): it is scrubbed until [`Scrubber::retire`] is called with it, or until
    /// [`ROTATING_IDLE`] passes without it being added again (each use of the connection adds
    /// it again). A value also added by [`Scrubber::add`] is never forgotten.
    pub fn add_rotating(&self, value: &str) {
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        let now = Instant::now();
        let until = now.checked_add(ROTATING_IDLE).unwrap_or(now);
        self.insert_until(encoded_forms(value), Some(until));
    }

    /// A value that was replaced (a refresh token the upstream rotated, or a connection's tokens
    /// after a disconnect) is no credential any more: it is scrubbed through [`EXPIRED_GRACE`]
    /// from now, then forgotten. Only values added with a time ([`Scrubber::add_expiring`],
    /// [`Scrubber::add_rotating`]) are retired; one also added for good stays.
    pub fn retire(&self, value: &str) {
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        self.retire_at(encoded_forms(value), Instant::now() + EXPIRED_GRACE);
    }

    fn retire_at(&self, forms: Vec<String>, at: Instant) {
        if let Some(parent) = &self.parent {
            parent.retire_at(forms.clone(), at);
        }
        if let Ok(mut inner) = self.inner.write() {
            inner.retire(&forms, at);
        }
    }

    fn insert(&self, forms: Vec<String>) {
        self.insert_until(forms, None);
    }

    fn insert_until(&self, forms: Vec<String>, until: Option<Instant>) {
        if forms.is_empty() {
            return;
        }
        if let Some(parent) = &self.parent {
            parent.insert_until(forms.clone(), until);
        }
        if let Ok(mut inner) = self.inner.write() {
            inner.insert(forms, until);
        }
    }

    /// Registers the base64 form of HTTP Basic credentials, so an echoed header is scrubbed too.
    pub fn add_basic(&self, username: &str, password: &str) {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        self.add_all([password, encoded.as_str()]);
    }

    /// Returns `text` with every known secret replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        let Ok(inner) = self.inner.read() else {
            return REDACTED.to_string();
        };
        inner.redact_str(text).unwrap_or_else(|| text.to_string())
    }

    /// Scrubs `text` in place; no allocation when it holds no secret (the common case). True
    /// when something was removed.
    pub fn scrub_in_place(&self, text: &mut String) -> bool {
        let Ok(inner) = self.inner.read() else {
            *text = REDACTED.to_string();
            return true;
        };
        match inner.redact_str(text) {
            Some(clean) => {
                *text = clean;
                true
            }
            None => false,
        }
    }

    /// Whether `text` holds a known secret.
    pub fn finds(&self, text: &str) -> bool {
        self.inner
            .read()
            .map(|i| i.is_match(text.as_bytes()))
            .unwrap_or(true)
    }

    /// Whether any of `texts` holds a known secret, scanning them joined with a NUL between
    /// them: many short texts (a sync page's some 16,000 fields) cost a few scans, not a scan's
    /// set-up each. A match across a joint (a secret holding a NUL) answers true too: callers
    /// then look field by field. The texts are joined a cache-sized batch at a time (a text is
    /// never split; a longer one is scanned on its own): one buffer for a whole 1 MB page grew
    /// by doubling, so each page copied its text about twice into fresh memory.
    pub fn finds_in_any<'t>(&self, texts: impl IntoIterator<Item = &'t str>) -> bool {
        const BATCH: usize = 64 * 1024;
        let Ok(inner) = self.inner.read() else {
            return true;
        };
        if inner.levels.is_empty() {
            return false;
        }
        let mut joined = Vec::with_capacity(BATCH);
        for t in texts.into_iter().map(str::as_bytes) {
            if joined.len() + t.len() >= BATCH && !joined.is_empty() {
                if inner.is_match(&joined) {
                    return true;
                }
                joined.clear();
            }
            if t.len() >= BATCH {
                if inner.is_match(t) {
                    return true;
                }
                continue;
            }
            joined.extend_from_slice(t);
            joined.push(0);
        }
        !joined.is_empty() && inner.is_match(&joined)
    }

    /// Scrubs bytes that may not be UTF-8 (log output); invalid sequences are kept as is.
    pub fn scrub_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let Ok(inner) = self.inner.read() else {
            return REDACTED.as_bytes().to_vec();
        };
        inner.redact(bytes).unwrap_or_else(|| bytes.to_vec())
    }

    /// Like [`Scrubber::scrub_bytes`], but None (no allocation) when nothing matches.
    pub fn scrub_bytes_if_needed(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let inner = self.inner.read().ok()?;
        inner.redact(bytes)
    }

    /// Scrubs every string inside a JSON value, object keys included, in place. True when
    /// something was removed.
    pub fn scrub_json(&self, v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => self.scrub_in_place(s),
            serde_json::Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, i| self.scrub_json(i) | changed),
            serde_json::Value::Object(map) => {
                let mut changed = map
                    .values_mut()
                    .fold(false, |changed, i| self.scrub_json(i) | changed);
                if map.keys().any(|k| self.finds(k)) {
                    let old = std::mem::take(map);
                    *map = old.into_iter().map(|(k, v)| (self.scrub(&k), v)).collect();
                    changed = true;
                }
                changed
            }
            _ => false,
        }
    }

    /// Whether `bytes` reveal a known secret under some decoding: plainly, or once JSON `\u`
    /// escapes, percent-encoding (any case), quoted-printable or HTML character references are
    /// undone, alone or two of them stacked, in any mix of escaped and plain characters. Returns
    /// the decoding that revealed it. Used on what upstreams answer, where redacting inside an
    /// encoding is not reliable: the gate withholds such an answer instead.
    pub fn reveals(&self, bytes: &[u8]) -> Option<String> {
        self.reveals_with(bytes, false)
    }

    /// [`Scrubber::reveals`] for bytes already found to hold no secret plainly (by a
    /// [`Scrubber::scrub_bytes_if_needed`] that found nothing): only the decoded views are
    /// scanned.
    pub fn reveals_decoded(&self, bytes: &[u8]) -> Option<String> {
        self.reveals_with(bytes, true)
    }

    fn reveals_with(&self, bytes: &[u8], plain_checked: bool) -> Option<String> {
        let inner = self.inner.read().ok()?;
        if inner.levels.is_empty() {
            return None;
        }
        if !plain_checked && inner.is_match(bytes) {
            return Some("plain text".into());
        }
        // Each view's input holds no value (checked above, or below for the first views), so
        // only the stretches around its decoded pieces can: a view is read only around them.
        let mut frontier: Vec<(&str, Unbuilt)> = Vec::new();
        for (name, decoding) in DECODINGS {
            if let Some(escapes) = decoding(bytes) {
                let view = Unbuilt::new(bytes, escapes);
                if inner.is_match_near_pieces(&view) {
                    return Some((*name).into());
                }
                frontier.push((name, view));
            }
        }
        if frontier.is_empty() {
            return None;
        }
        // The second level decodes each first view again, so that one is built whole, into
        // this thread's buffer: a fresh megabyte for each view of a sync page cost ~0.5 ms in
        // page faults, ten times the copying.
        VIEW_BUFFER.with_borrow_mut(|built| {
            let found = frontier.iter().find_map(|(outer, view)| {
                view.build_into(built);
                DECODINGS.iter().find_map(|(name, decoding)| {
                    let escapes = decoding(built)?;
                    inner
                        .is_match_near_pieces(&Unbuilt::new(built, escapes))
                        .then(|| format!("{outer} then {name}"))
                })
            });
            if built.capacity() > VIEW_BUFFER_KEPT {
                *built = Vec::new();
            }
            found
        })
    }

    /// Forgets what is due at `at` as if that time had come (tests of other modules).
    #[cfg(test)]
    pub(crate) fn forget_expired_at(&self, at: Instant) {
        if let Ok(mut inner) = self.inner.write() {
            inner.forget_expired(at);
        }
    }

    /// How many values (with their encoded forms) this scrubber scans for.
    pub fn len(&self) -> usize {
        self.inner.read().map(|i| i.known.len()).unwrap_or(0)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the forgetting as if `after` had passed.
    fn forget_at(s: &Scrubber, at: Instant) {
        s.inner.write().unwrap().forget_expired(at);
    }

    #[test]
    fn an_expiring_value_is_scrubbed_through_its_grace_then_forgotten_daemon_wide() {
        let daemon = Scrubber::new();
        let connector = daemon.scoped();
        let now = Instant::now();
        connector.add_expiring("access-token-old-123456", now);
        daemon.add("vault-secret-for-good");
        for s in [&daemon, &connector] {
            assert_eq!(s.scrub("x access-token-old-123456 y"), "x [REDACTED] y");
        }
        // Still inside the grace: kept.
        forget_at(&daemon, now + EXPIRED_GRACE - Duration::from_secs(1));
        assert!(daemon.finds("access-token-old-123456"));
        let later = now + EXPIRED_GRACE + Duration::from_secs(1);
        for s in [&daemon, &connector] {
            forget_at(s, later);
            assert!(!s.finds("access-token-old-123456"), "forgotten");
            for form in encoded_forms("access-token-old-123456") {
                assert!(!s.finds(&form), "its encoded form {form} too");
            }
        }
        assert!(daemon.finds("vault-secret-for-good"), "the rest stays");
        let reference = Scrubber::new();
        reference.add("vault-secret-for-good");
        assert_eq!(daemon.len(), reference.len());
        // A value added later is still found after the matcher was rebuilt.
        connector.add("next-token-value-789");
        assert_eq!(daemon.scrub("next-token-value-789"), REDACTED);
    }

    #[test]
    fn a_value_also_added_for_good_is_never_forgotten() {
        let s = Scrubber::new();
        let now = Instant::now();
        s.add_expiring("shared-value-abcdef", now);
        s.add("shared-value-abcdef");
        s.add("permanent-first-xyz");
        s.add_expiring("permanent-first-xyz", now);
        forget_at(&s, now + EXPIRED_GRACE * 10);
        assert!(s.finds("shared-value-abcdef"));
        assert!(s.finds("permanent-first-xyz"));
    }

    #[test]
    fn a_thousand_refreshed_tokens_leave_only_the_live_ones() {
        let s = Scrubber::new();
        let start = Instant::now();
        for hour in 0..1000u64 {
            let issued = start + Duration::from_secs(hour * 3600);
            s.inner.write().unwrap().insert(
                encoded_forms(&format!("token-of-hour-{hour:06}")),
                Some(issued + Duration::from_secs(3600) + EXPIRED_GRACE),
            );
        }
        forget_at(&s, start + Duration::from_secs(999 * 3600));
        let per_value = encoded_forms("token-of-hour-000999").len();
        assert!(s.len() <= 3 * per_value, "{} forms left", s.len());
        assert!(s.finds("token-of-hour-000999") && s.finds("token-of-hour-000998"));
        assert!(!s.finds("token-of-hour-000001"));
    }

    #[test]
    fn a_rotating_value_stays_until_retired_or_idle_and_a_permanent_one_is_never_retired() {
        let daemon = Scrubber::new();
        let connector = daemon.scoped();
        connector.add_rotating("refresh-token-spent-1111");
        connector.add_rotating("refresh-token-live-2222");
        daemon.add("static-secret-3333");
        connector.retire("refresh-token-spent-1111");
        daemon.retire("static-secret-3333");
        let now = Instant::now();
        for s in [&daemon, &connector] {
            forget_at(s, now + EXPIRED_GRACE - Duration::from_secs(5));
            assert!(
                s.finds("refresh-token-spent-1111"),
                "kept through the grace"
            );
        }
        let later = now + EXPIRED_GRACE + Duration::from_secs(5);
        for s in [&daemon, &connector] {
            forget_at(s, later);
            assert!(!s.finds("refresh-token-spent-1111"), "retired: forgotten");
            for form in encoded_forms("refresh-token-spent-1111") {
                assert!(!s.finds(&form), "its encoded form {form} too");
            }
            assert!(s.finds("refresh-token-live-2222"), "never retired: kept");
        }
        assert!(
            daemon.finds("static-secret-3333"),
            "a permanent value stays"
        );
        // Unused for longer than any upstream keeps a refresh token: forgotten.
        forget_at(&daemon, now + ROTATING_IDLE + Duration::from_secs(5));
        assert!(!daemon.finds("refresh-token-live-2222"));
        assert!(daemon.finds("static-secret-3333"));
    }

    #[test]
    fn a_scoped_scrubber_scans_only_its_own_secrets_and_registers_them_daemon_wide() {
        let daemon = Scrubber::new();
        daemon.add("tenant-one-secret-111");
        let connector = daemon.scoped();
        connector.add("tenant-two-secret-222");
        assert_eq!(
            connector.scrub("a tenant-two-secret-222 b tenant-one-secret-111"),
            "a [REDACTED] b tenant-one-secret-111",
            "a connector's output is scanned for its own secrets only"
        );
        assert!(connector.reveals(b"tenant-one-secret-111").is_none());
        assert_eq!(
            daemon.scrub("tenant-two-secret-222 tenant-one-secret-111"),
            "[REDACTED] [REDACTED]",
            "logs and audit rows still lose every connector's secrets"
        );
    }

    #[test]
    fn secrets_added_one_by_one_are_found_in_every_level_and_overlaps_redacted_whole() {
        let s = Scrubber::new();
        // Enough single additions to fill several levels (each adds ~15 encoded forms).
        for i in 0..600 {
            s.add(&format!("level-secret-{i:05}-x"));
        }
        assert!(s.inner.read().unwrap().levels.len() >= 3, "several levels");
        for i in [0, 1, 63, 64, 300, 599] {
            let secret = format!("level-secret-{i:05}-x");
            assert_eq!(s.scrub(&format!("<{secret}>")), "<[REDACTED]>", "{secret}");
            assert!(s.reveals(secret.as_bytes()).is_some());
        }
        // Secrets overlapping each other (in the same level and across levels): redacted as one
        // span, so no tail of any survives.
        s.add("overlap-AAAA-BBBB");
        let text = "x level-secret-00007-xoverlap-AAAA-BBBB y";
        s.add("-xoverlap-AAAA");
        assert_eq!(s.scrub(text), "x [REDACTED] y");
        assert_eq!(
            String::from_utf8(s.scrub_bytes(text.as_bytes())).unwrap(),
            "x [REDACTED] y"
        );
        for i in 0..100 {
            s.add(&format!("filler-secret-{i:05}"));
        }
        s.add("AAAA-BBBB y");
        assert_eq!(s.scrub(text), "x [REDACTED]");
    }

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
    fn one_scan_over_many_texts_finds_a_secret_in_any_one_but_not_across_two() {
        let s = Scrubber::new();
        assert!(!s.finds_in_any(["anything"]), "no secrets: nothing found");
        s.add("split-Secret-77");
        assert!(!s.finds_in_any(["a", "split-Secret", "-77", ""]));
        assert!(s.finds_in_any(["a", "b", "x split-Secret-77 y"]));
        assert!(s.finds_in_any(["split-Secret-77"]));
        assert!(!s.finds_in_any(std::iter::empty()));
    }

    #[test]
    fn a_page_larger_than_one_batch_is_scanned_to_its_last_text() {
        let s = Scrubber::new();
        s.add("batch-Secret-88");
        let filler = "f".repeat(1000);
        let mut texts = vec![filler.as_str(); 500];
        assert!(!s.finds_in_any(texts.iter().copied()));
        // In a later batch, at a batch's edge, and inside a text longer than a batch.
        let held = format!("{filler} batch-Secret-88");
        for at in [499, 130, 65] {
            let mut with = texts.clone();
            with[at] = &held;
            assert!(s.finds_in_any(with.iter().copied()), "text {at}");
        }
        let long = format!("{} batch-Secret-88 {}", "l".repeat(70_000), "l".repeat(9));
        texts.push(&long);
        assert!(s.finds_in_any(texts.iter().copied()));
        texts.pop();
        texts.push("batch-Secret");
        texts.push("-88");
        assert!(
            !s.finds_in_any(texts.iter().copied()),
            "split over two texts"
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
    fn percent_decoding_matches_the_percent_encoding_crate() {
        for input in [
            "plain text",
            "a%3Db%3db",
            "%",
            "%4",
            "%zz%41",
            "x%%41%",
            "%E2%82%AC and %e2%82%ac",
            "end %4",
        ] {
            let ours = views::decode(input.as_bytes(), views::percent_escapes).map(|d| d.bytes);
            let theirs: Vec<u8> = percent_encoding::percent_decode(input.as_bytes()).collect();
            assert_eq!(
                ours.clone().unwrap_or_else(|| input.as_bytes().to_vec()),
                theirs,
                "{input}"
            );
            assert_eq!(ours.is_some(), theirs != input.as_bytes(), "{input}");
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
    fn decoders_leave_text_without_escapes_alone_and_decode_only_escapes() {
        use views::{decode, html_escapes, json_escapes, quoted_printable_escapes};
        assert_eq!(decode(b"a=zz b= c=", quoted_printable_escapes), None);
        assert_eq!(decode(b"x\\q y\\", json_escapes), None);
        assert_eq!(decode(b"a & b &#; &#xZZ;", html_escapes), None);
        assert_eq!(
            decode(b"k=3D=\r\nv =x", quoted_printable_escapes)
                .map(|d| d.bytes)
                .as_deref(),
            Some(&b"k=v =x"[..])
        );
        assert_eq!(
            decode(b"\\u0041\\n\\ud83d\\ude00 \\q", json_escapes)
                .map(|d| d.bytes)
                .as_deref(),
            Some("A\n\u{1F600} \\q".as_bytes())
        );
        assert_eq!(
            decode(b"&lt;&#65;&#x42;&amp &c", html_escapes)
                .map(|d| d.bytes)
                .as_deref(),
            Some(&b"<AB&amp &c"[..])
        );
    }

    #[test]
    fn ordinary_text_reveals_nothing() {
        let s = scrubber();
        let text = r#"{"a":"caf\u00e9 50% off =3D \n &amp; &#65; canary-Reflect/77"}"#;
        assert_eq!(s.reveals(text.as_bytes()), None);
        assert_eq!(Scrubber::new().reveals(b"anything"), None);
    }

    /// What `reveals` answered when it scanned every decoded view whole.
    fn reveals_scanning_whole_views(s: &Scrubber, bytes: &[u8]) -> Option<String> {
        let inner = s.inner.read().unwrap();
        if inner.is_match(bytes) {
            return Some("plain text".into());
        }
        let mut frontier = Vec::new();
        for (name, decoding) in DECODINGS {
            if let Some(d) = views::decode(bytes, *decoding) {
                if inner.is_match(&d.bytes) {
                    return Some((*name).into());
                }
                frontier.push((name, d.bytes));
            }
        }
        for (outer, view) in &frontier {
            for (name, decoding) in DECODINGS {
                if views::decode(view, *decoding).is_some_and(|d| inner.is_match(&d.bytes)) {
                    return Some(format!("{outer} then {name}"));
                }
            }
        }
        None
    }

    #[test]
    fn scanning_only_around_decoded_escapes_finds_what_scanning_whole_views_finds() {
        let s = scrubber();
        let json = |c: char| format!("\\u{:04x}", c as u32);
        let pct = |c: char| format!("%{:02X}", c as u32);
        let html = |c: char| format!("&#{};", c as u32);
        let stacked = |c: char| format!("%5Cu{:04x}", c as u32);
        let hidden = [
            mixed(SECRET, json),
            mixed(SECRET, pct),
            mixed(SECRET, html),
            mixed(SECRET, stacked),
            SECRET.chars().map(json).collect(),
            format!(
                "{}{}",
                &SECRET[..3],
                &SECRET[3..].chars().map(pct).collect::<String>()
            ),
            SECRET.to_string(),
            "no secret at all".to_string(),
        ];
        // Escapes near, far from and inside the hidden value, in filler long enough that
        // windows around them do not cover everything.
        let filler = "lorem ipsum dolor sit amet ".repeat(20);
        let mut revealed = 0;
        for h in &hidden {
            for (before, after) in [
                ("", ""),
                ("\\n", "\\n"),
                ("&amp;", "=3D"),
                ("%41x", "\\u0042"),
            ] {
                for gap in [0, 1, 7, 200] {
                    let pad = &filler[..gap.min(filler.len())];
                    let text =
                        format!("{filler}\\n{filler}{before}{pad}{h}{pad}{after}{filler}&lt;");
                    assert_eq!(
                        s.reveals(text.as_bytes()),
                        reveals_scanning_whole_views(&s, text.as_bytes()),
                        "{text}"
                    );
                    revealed += usize::from(s.reveals(text.as_bytes()).is_some());
                    let clean = s.scrub_bytes_if_needed(text.as_bytes()).is_none();
                    if clean {
                        assert_eq!(
                            s.reveals_decoded(text.as_bytes()),
                            reveals_scanning_whole_views(&s, text.as_bytes()),
                            "{text}"
                        );
                    }
                }
            }
        }
        // Every hidden value but the last is found, in every setting.
        assert_eq!(revealed, (hidden.len() - 1) * 4 * 4);
    }
}
