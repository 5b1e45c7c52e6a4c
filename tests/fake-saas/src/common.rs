//! Small helpers every fake shares: a seeded PRNG, timestamps, query strings, auth checks, JSON replies.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// SplitMix64: tiny, fast and fully deterministic from its seed (no platform or crate-version drift).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * ((i64::from(m) + 9) % 12) + 2) / 5 + i64::from(d) - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Milliseconds since the epoch for a UTC date and time.
pub fn utc_ms(y: i64, m: u32, d: u32, hh: u32, mm: u32) -> i64 {
    days_from_civil(y, m, d) * DAY_MS + i64::from(hh) * 3_600_000 + i64::from(mm) * 60_000
}

/// RFC 3339 with milliseconds, always UTC: `2026-01-02T03:04:05.000Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    let r = ms.rem_euclid(DAY_MS);
    let (h, mi, s, f) = (r / 3_600_000, r / 60_000 % 60, r / 1000 % 60, r % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f:03}Z")
}

/// RFC 3339 with whole seconds, always UTC (Zendesk style): `2026-01-02T03:04:05Z`.
pub fn rfc3339_secs(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let r = secs.rem_euclid(86_400);
    let (h, mi, s) = (r / 3600, r / 60 % 60, r % 60);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Parses a UTC RFC 3339 time (`2026-01-02T03:04:05Z`, any fraction, `Z` or `+00:00`) to
/// milliseconds since the epoch.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = s.split_once('T')?;
    let d: Vec<&str> = date.split('-').collect();
    let [y, m, d] = d.as_slice() else {
        return None;
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let t: Vec<&str> = hms.split(':').collect();
    let [hh, mm, ss] = t.as_slice() else {
        return None;
    };
    let ms_frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}")[..3].parse().ok()?
    };
    let secs: i64 = ss.parse().ok()?;
    Some(
        utc_ms(
            y.parse().ok()?,
            m.parse().ok()?,
            d.parse().ok()?,
            hh.parse().ok()?,
            mm.parse().ok()?,
        ) + secs * 1000
            + ms_frac,
    )
}

/// Microseconds since the epoch (wall clock).
pub fn now_us() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_micros() as i64).unwrap_or(0)
}

pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Parses `yyyy-MM-dd HH:mm`, `yyyy/MM/dd HH:mm`, `yyyy-MM-dd` or `yyyy/MM/dd` (UTC).
pub fn parse_date_minute(s: &str) -> Option<i64> {
    let mut parts = s.split_whitespace();
    let date: Vec<&str> = parts.next()?.split(['-', '/']).collect();
    let [y, m, d] = date.as_slice() else {
        return None;
    };
    let (y, m, d) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let (hh, mm) = match parts.next() {
        Some(t) => {
            let (h, mi) = t.split_once(':')?;
            (h.parse().ok()?, mi.parse().ok()?)
        }
        None => (0, 0),
    };
    let valid = (1..=12).contains(&m) && (1..=31).contains(&d) && hh < 24 && mm < 60;
    (valid && parts.next().is_none()).then(|| utc_ms(y, m, d, hh, mm))
}

/// `yyyy-MM-ddTHH:mm:ss[.fff][Z|±HH:MM]` (no zone: UTC) as milliseconds.
pub(crate) fn parse_date_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(i64::from(y), m, d) * 86_400_000;
    if b.len() == 10 {
        return Some(ms);
    }
    if !matches!(b[10], b'T' | b' ') || b.len() < 19 {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    ms += i64::from(h * 3600 + mi * 60 + sec) * 1000;
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        ms += format!("{:0<3}", &frac[..n.min(3)]).parse::<i64>().ok()?;
        rest = &frac[n..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let hm = rest.get(1..)?.replace(':', "");
            let (oh, om) = (
                hm.get(..2)?.parse::<i64>().ok()?,
                hm.get(2..)?.parse::<i64>().ok()?,
            );
            sign * (oh * 60 + om)
        }
    };
    Some(ms - offset * 60_000)
}

/// A decoded query string that keeps repeated keys; `list` also splits comma lists.
pub struct QueryParams(pub Vec<(String, String)>);

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> Self {
        let raw = raw.unwrap_or("").as_bytes();
        QueryParams(form_urlencoded::parse(raw).into_owned().collect())
    }
    pub fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    pub fn list(&self, key: &str) -> Vec<String> {
        let values = self.0.iter().filter(|(k, _)| k == key);
        let items = values.flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_owned()));
        items.filter(|s| !s.is_empty()).collect()
    }
    /// Re-encodes every pair except those named in `drop`, then appends `extra` in order.
    pub fn encode_with(&self, drop: &[&str], extra: &[(&str, &str)]) -> String {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.0.iter().filter(|(k, _)| !drop.contains(&k.as_str())) {
            ser.append_pair(k, v);
        }
        for (k, v) in extra {
            ser.append_pair(k, v);
        }
        ser.finish()
    }
}

/// HTML to plain text: tags become spaces, entities are decoded, whitespace collapses.
pub fn html_to_text(html: &str) -> String {
    let (mut out, mut in_tag) = (String::with_capacity(html.len()), false);
    for ch in html.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(ch),
            _ => {}
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'");
    let out = out.replace("&nbsp;", " ").replace("&amp;", "&");
    let mut text = out.split_whitespace().collect::<Vec<_>>().join(" ");
    // "<p>word.</p>" leaves "word ." behind; glue sentence punctuation back on.
    for p in [" .", " ,"] {
        text = text.replace(p, &p[1..]);
    }
    text
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A sliding 60-second window of accepted requests, for per-minute rate limits.
#[derive(Debug, Default)]
pub struct MinuteWindow(std::collections::VecDeque<std::time::Instant>);

impl MinuteWindow {
    const SPAN: std::time::Duration = std::time::Duration::from_secs(60);

    fn expire(&mut self, now: std::time::Instant) {
        while self
            .0
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Self::SPAN)
        {
            self.0.pop_front();
        }
    }
    /// Requests accepted in the last 60 s.
    pub fn used(&mut self) -> usize {
        self.expire(std::time::Instant::now());
        self.0.len()
    }
    /// Whole seconds (at least 1) until the oldest request in the window leaves it.
    pub fn secs_until_free(&mut self) -> u64 {
        let now = std::time::Instant::now();
        self.expire(now);
        self.0
            .front()
            .map_or(1, |t| {
                let left = Self::SPAN.saturating_sub(now.duration_since(*t));
                left.as_secs() + u64::from(left.subsec_nanos() > 0)
            })
            .max(1)
    }
    /// Records a request if fewer than `limit` were accepted in the last 60 s; `Err` holds the
    /// seconds until a slot frees up.
    pub fn try_take(&mut self, limit: u32) -> Result<(), u64> {
        let now = std::time::Instant::now();
        self.expire(now);
        if self.0.len() >= limit as usize {
            return Err(self.secs_until_free());
        }
        self.0.push_back(now);
        Ok(())
    }
    /// Records a request without any limit.
    pub fn take(&mut self) {
        let now = std::time::Instant::now();
        self.expire(now);
        self.0.push_back(now);
    }
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// True when the request carries `Authorization: Basic base64(user:pass)` with exactly these values.
pub fn basic_auth_ok(headers: &HeaderMap, user: &str, pass: &str) -> bool {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some((scheme, b64)) = value.and_then(|v| v.split_once(' ')) else {
        return false;
    };
    let decoded = STANDARD.decode(b64.trim());
    scheme.eq_ignore_ascii_case("basic")
        && decoded.is_ok_and(|raw| raw == format!("{user}:{pass}").as_bytes())
}

/// True when the request carries `Authorization: Bearer <token>` with exactly this token.
pub fn bearer_auth_ok(headers: &HeaderMap, token: &str) -> bool {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    value
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(s, t)| s.eq_ignore_ascii_case("bearer") && t == token)
}

pub fn json_reply(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

/// Adds a header, skipping values that are not valid header text (never fails on request input).
pub fn set_header(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// Atlassian-wide 429: `Retry-After` seconds plus the `X-RateLimit-*` family (API-NOTES.md).
pub fn atlassian_rate_limited(retry_after_secs: u64, reason: &str) -> Response {
    let body = serde_json::json!({"code": 429, "message": "Rate limit exceeded. Please retry after the time in the Retry-After header."});
    let mut resp = json_reply(StatusCode::TOO_MANY_REQUESTS, body);
    let reset = rfc3339_ms(now_ms() + retry_after_secs as i64 * 1000);
    set_header(&mut resp, "retry-after", &retry_after_secs.to_string());
    set_header(&mut resp, "x-ratelimit-limit", "350");
    set_header(&mut resp, "x-ratelimit-remaining", "0");
    set_header(&mut resp, "x-ratelimit-reset", &reset);
    set_header(&mut resp, "x-ratelimit-nearlimit", "true");
    set_header(&mut resp, "ratelimit-reason", reason);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        let ms = utc_ms(2026, 1, 2, 3, 4) + 5_006;
        assert_eq!(rfc3339_ms(ms), "2026-01-02T03:04:05.006Z");
        assert_eq!(
            rfc3339_ms(utc_ms(2024, 2, 29, 23, 59)),
            "2024-02-29T23:59:00.000Z"
        );
        assert_eq!(
            parse_date_minute("2026/01/02 03:04"),
            Some(utc_ms(2026, 1, 2, 3, 4))
        );
        assert_eq!(
            parse_date_minute("2026-01-02"),
            Some(utc_ms(2026, 1, 2, 0, 0))
        );
        assert_eq!(parse_date_minute("2026-13-02"), None);
        assert_eq!(parse_date_minute("yesterday"), None);
        assert_eq!(rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_secs(utc_ms(2026, 1, 2, 3, 4) / 1000 + 5),
            "2026-01-02T03:04:05Z"
        );
    }

    #[test]
    fn html_helpers() {
        assert_eq!(
            html_to_text("<p>a &amp; b.</p><ul><li>c &lt;d&gt;</li></ul>"),
            "a & b. c <d>"
        );
        assert_eq!(
            html_escape("a & <b> \"c\""),
            "a &amp; &lt;b&gt; &quot;c&quot;"
        );
    }

    #[test]
    fn minute_window_limits() {
        let mut w = MinuteWindow::default();
        assert_eq!(w.try_take(2), Ok(()));
        assert_eq!(w.try_take(2), Ok(()));
        let wait = w.try_take(2).expect_err("third is over the limit");
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(w.used(), 2);
        w.clear();
        assert_eq!(w.try_take(2), Ok(()));
    }

    #[test]
    fn query_keeps_repeats_and_commas() {
        let q = QueryParams::parse(Some("status=current,trashed&status=draft&title=a%20b+c"));
        assert_eq!(q.list("status"), ["current", "trashed", "draft"]);
        assert_eq!(q.one("title"), Some("a b c"));
        assert_eq!(
            q.encode_with(&["status"], &[("cursor", "x=")]),
            "title=a+b+c&cursor=x%3D"
        );
    }
}
