//! When the gate retries an upstream request, and how long it waits: only idempotent methods,
//! only on 429/502/503/504 and connection errors, exponential backoff with full jitter, and
//! the upstream's own `Retry-After` / `X-RateLimit-*` signals read here.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method};
use rand::Rng;

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

/// `Retry-After` as a wait: delta-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The wait an exhausted rate-limit window asks for: `X-RateLimit-Remaining: 0` or
/// `RateLimit-Remaining: 0`, with the reset as delta-seconds or epoch seconds (1 s if absent).
pub fn exhausted_window(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let remaining = get("x-ratelimit-remaining").or_else(|| get("ratelimit-remaining"))?;
    if remaining.parse::<f64>().ok()? > 0.0 {
        return None;
    }
    let reset = get("x-ratelimit-reset")
        .or_else(|| get("ratelimit-reset"))
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0);
    Some(match reset {
        // Large values are epoch seconds (GitHub style), small ones a delta (IETF draft).
        Some(r) if r > 1_000_000_000.0 => {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            Duration::from_secs_f64((r - now).max(0.0))
        }
        Some(r) => Duration::from_secs_f64(r),
        None => Duration::from_secs(1),
    })
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
