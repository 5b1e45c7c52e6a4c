//! The upstream rate-limit headers: `Retry-After` and `X-RateLimit-*` / `RateLimit-*`, parsed
//! from whatever an upstream sends. Input: text lines `name: value`. Nothing an upstream sends
//! may panic the host (issue: `X-RateLimit-Reset: 1e20` did).
#![no_main]

use airlock::capabilities::retry::{exhausted_window, retry_after};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = http::HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value.trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let _ = retry_after(&headers);
    let _ = exhausted_window(&headers);
});
