//! When the gate retries an upstream request, and how long it waits: only idempotent methods,
//! only on 429/502/503/504 and connection errors, exponential backoff with full jitter, and
//! the upstream's own `Retry-After` / `X-RateLimit-*` signals read here.
//!
//! Every parser here is total: whatever an upstream sends (huge, negative, NaN, fractional,
//! garbage, a date in year 9999), it answers `None` or a wait no longer than
//! [`MAX_UPSTREAM_WAIT`], and never panics. They are pure functions (the clock is an argument
//! in the `*_at` forms) so the fuzz targets can call them directly.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method};
use rand::Rng;

/// The longest wait an upstream's signal can ask of the gate. Longer asks are capped to it (a
/// lying or broken upstream must not park a grant for days, nor overflow a clock).
pub const MAX_UPSTREAM_WAIT: Duration = Duration::from_secs(3600);

/// Reset values above this are epoch seconds (GitHub style); at or below, a delta (IETF draft).
const EPOCH_THRESHOLD: f64 = 1_000_000_000.0;

/// Methods a retry cannot turn into a duplicate write (RFC 9110 §9.2.2).
pub fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Statuses worth another attempt. 401/403 and other 4xx never are.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Statuses that count against the circuit breaker.
pub fn breaker_failure_status(status: u16) -> bool {
    status >= 500
}

/// `Retry-After` as a wait: delta-seconds or an HTTP date, capped at [`MAX_UPSTREAM_WAIT`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, SystemTime::now())
}

/// [`retry_after`] against a given clock.
pub fn retry_after_at(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(v, now)
}

/// One `Retry-After` value: delta-seconds (digits only, any length) or an HTTP date. A date in
/// the past is no wait; anything else unreadable is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Digits that overflow u64 are simply "very long": capped like any other long wait.
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(cap(Duration::from_secs(secs)));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(cap(when.duration_since(now).unwrap_or(Duration::ZERO)))
}

/// The wait an exhausted rate-limit window asks for: `X-RateLimit-Remaining: 0` or
/// `RateLimit-Remaining: 0`, with the reset as delta-seconds or epoch seconds (1 s if absent or
/// unreadable), capped at [`MAX_UPSTREAM_WAIT`].
pub fn exhausted_window(headers: &HeaderMap) -> Option<Duration> {
    exhausted_window_at(headers, SystemTime::now())
}

/// [`exhausted_window`] against a given clock.
pub fn exhausted_window_at(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let remaining = get("x-ratelimit-remaining").or_else(|| get("ratelimit-remaining"))?;
    if !window_exhausted(remaining) {
        return None;
    }
    let reset = get("x-ratelimit-reset").or_else(|| get("ratelimit-reset"));
    Some(
        reset
            .and_then(|r| parse_rate_limit_reset(r, now))
            .unwrap_or(Duration::from_secs(1)),
    )
}

/// Whether a `RateLimit-Remaining` value says the window is used up: a number at or below zero.
/// NaN, infinities and garbage say nothing.
pub fn window_exhausted(remaining: &str) -> bool {
    remaining
        .trim()
        .parse::<f64>()
        .is_ok_and(|r| r.is_finite() && r <= 0.0)
}

/// One `RateLimit-Reset` value: delta-seconds, or epoch seconds when large; fractions allowed.
/// Negative, NaN, infinite or garbage values are `None`; a reset in the past is no wait.
pub fn parse_rate_limit_reset(value: &str, now: SystemTime) -> Option<Duration> {
    let r = value.trim().parse::<f64>().ok()?;
    if !r.is_finite() || r < 0.0 {
        return None;
    }
    let secs = if r > EPOCH_THRESHOLD {
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        (r - now).max(0.0)
    } else {
        r
    };
    // Clamp before converting: `Duration::from_secs_f64` panics past u64::MAX seconds.
    let secs = secs.min(MAX_UPSTREAM_WAIT.as_secs_f64());
    Some(cap(
        Duration::try_from_secs_f64(secs).unwrap_or(MAX_UPSTREAM_WAIT)
    ))
}

fn cap(d: Duration) -> Duration {
    d.min(MAX_UPSTREAM_WAIT)
}

/// Full-jitter backoff before attempt `attempt + 1` (attempt counts from 1): a uniform wait in
/// `[0, min(cap, base * 2^(attempt-1))]`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(cap);
    let nanos = ceiling.as_nanos().min(u64::MAX as u128) as u64;
    Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_idempotent_methods_and_transient_statuses_are_retried() {
        assert!(idempotent(&Method::GET) && idempotent(&Method::PUT));
        assert!(!idempotent(&Method::POST) && !idempotent(&Method::PATCH));
        for s in [429, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 409, 500, 501] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let d = retry_after(&headers(&[("retry-after", &later)])).expect("date");
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
    }

    #[test]
    fn an_exhausted_window_waits_until_its_reset() {
        assert_eq!(
            exhausted_window(&headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "5")
            ])),
            Some(Duration::from_secs(5))
        );
        let epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 30;
        let d = exhausted_window(&headers(&[
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", &epoch.to_string()),
        ]))
        .expect("epoch reset");
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(
            exhausted_window(&headers(&[("x-ratelimit-remaining", "3")])),
            None
        );
        assert_eq!(exhausted_window(&headers(&[])), None);
    }

    /// Values an upstream can send that once panicked the gate or could overflow a clock.
    const HOSTILE: &[&str] = &[
        "1e20",
        "1e308",
        "-1e308",
        "1.8e19",
        "18446744073709551616",
        "99999999999999999999999",
        "-1",
        "-0",
        "0",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "Infinity",
        "+5",
        "5.5",
        "0x10",
        "",
        " ",
        "1e",
        "e5",
        "--1",
        "9223372036854775807",
        "4294967296.5",
        "1000000000.5",
        "\t7\t",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "soon",
        "\u{0}",
        "💥",
    ];

    #[test]
    fn a_huge_reset_on_an_exhausted_window_is_capped_not_a_panic() {
        // The poison pair of issue 11 item 4.
        let d = exhausted_window(&headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1e20"),
        ]));
        assert_eq!(d, Some(MAX_UPSTREAM_WAIT));
        let d = exhausted_window(&headers(&[
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "1e308"),
        ]));
        assert_eq!(d, Some(MAX_UPSTREAM_WAIT));
    }

    #[test]
    fn negative_nan_and_garbage_resets_fall_back_to_one_second() {
        for reset in ["-5", "NaN", "inf", "-inf", "garbage", ""] {
            assert_eq!(
                exhausted_window(&headers(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", reset)
                ])),
                Some(Duration::from_secs(1)),
                "{reset}"
            );
        }
        // A reset epoch in the past is no wait.
        assert_eq!(
            exhausted_window(&headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1000000001")
            ])),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn a_nan_or_garbage_remaining_is_not_an_exhausted_window() {
        for remaining in ["NaN", "-inf", "inf", "x", "", "1e-9"] {
            assert_eq!(
                exhausted_window(&headers(&[
                    ("x-ratelimit-remaining", remaining),
                    ("x-ratelimit-reset", "5")
                ])),
                None,
                "{remaining}"
            );
        }
        assert!(window_exhausted("-3") && window_exhausted(" 0 ") && window_exhausted("0.0"));
    }

    #[test]
    fn huge_and_far_future_retry_after_values_are_capped() {
        let now = SystemTime::now();
        for v in [
            "18446744073709551615",
            "99999999999999999999999999",
            "86400",
        ] {
            assert_eq!(parse_retry_after(v, now), Some(MAX_UPSTREAM_WAIT), "{v}");
        }
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
            Some(MAX_UPSTREAM_WAIT)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        for v in ["-1", "1.5", "+5", "NaN", "1e3", "", "soon"] {
            assert_eq!(parse_retry_after(v, now), None, "{v}");
        }
    }

    #[test]
    fn every_parser_is_total_and_bounded_on_hostile_and_random_input() {
        let clocks = [
            SystemTime::UNIX_EPOCH,
            SystemTime::now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799),
        ];
        let mut rng = rand::thread_rng();
        let alphabet = b"0123456789.-+eEnNaIif xGMT,:";
        let mut inputs: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
        for _ in 0..5000 {
            let len = rng.gen_range(0..24);
            inputs.push(
                (0..len)
                    .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
                    .collect(),
            );
        }
        for v in &inputs {
            for now in clocks {
                for d in [parse_retry_after(v, now), parse_rate_limit_reset(v, now)]
                    .into_iter()
                    .flatten()
                {
                    assert!(d <= MAX_UPSTREAM_WAIT, "{v:?} -> {d:?}");
                }
                let _ = window_exhausted(v);
            }
            // Through header maps too, as the gate calls them.
            if let Ok(hv) = http::HeaderValue::from_str(v) {
                let mut h = HeaderMap::new();
                h.insert("x-ratelimit-remaining", http::HeaderValue::from_static("0"));
                h.insert("x-ratelimit-reset", hv.clone());
                h.insert(http::header::RETRY_AFTER, hv);
                for d in [retry_after(&h), exhausted_window(&h)]
                    .into_iter()
                    .flatten()
                {
                    assert!(d <= MAX_UPSTREAM_WAIT, "{v:?} -> {d:?}");
                }
            }
        }
    }

    #[test]
    fn backoff_is_jittered_under_an_exponential_ceiling() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        for attempt in 1..8 {
            let ceiling = (base * (1 << (attempt - 1))).min(cap);
            for _ in 0..50 {
                assert!(backoff(attempt, base, cap) <= ceiling);
            }
        }
        // Full jitter: not always the ceiling.
        let waits: std::collections::HashSet<_> = (0..20).map(|_| backoff(3, base, cap)).collect();
        assert!(waits.len() > 1);
    }
}
