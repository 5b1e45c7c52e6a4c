//! Authentication and rate limits: the gate in front of every upstream route (request counting,
//! the 429 knob, Basic/Bearer auth), the per-minute limit on incremental exports and the
//! `X-Rate-Limit` headers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

use super::params::zd_error;
use super::{ACCOUNT_LIMIT, INCREMENTAL_PATHS, Zendesk};
use crate::common::{MinuteWindow, json_reply, set_header};

/// Knobs and windows for the rate limits.
#[derive(Default)]
pub(super) struct Limits {
    pub(super) incremental_limit: Option<u32>,
    pub(super) incremental: MinuteWindow,
    pub(super) account: MinuteWindow,
}

pub(super) fn rate_headers(resp: &mut Response, limit: u32, remaining: u32, reset: u64) {
    let (limit, remaining, reset) = (limit.to_string(), remaining.to_string(), reset.to_string());
    set_header(resp, "x-rate-limit", &limit);
    set_header(resp, "x-rate-limit-remaining", &remaining);
    set_header(resp, "ratelimit-limit", &limit);
    set_header(resp, "ratelimit-remaining", &remaining);
    set_header(resp, "ratelimit-reset", &reset);
}

pub(super) fn rate_limited(retry_after: u64, limit: u32, description: &str) -> Response {
    let mut resp = zd_error(
        StatusCode::TOO_MANY_REQUESTS,
        "APIRateLimitExceeded",
        description,
    );
    set_header(&mut resp, "retry-after", &retry_after.to_string());
    rate_headers(&mut resp, limit, 0, retry_after);
    resp
}

/// Counts the request, applies the fault knob, checks auth, then the rate limits; every upstream
/// reply carries the rate-limit headers. Control routes under `/_fake/` skip all of it.
pub(super) async fn gate(State(z): State<Arc<Zendesk>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if crate::control::is_control(&path) {
        return next.run(req).await;
    }
    if z.core.record(&path) {
        return rate_limited(
            1,
            ACCOUNT_LIMIT,
            "Rate limit exceeded (injected by the fake)",
        );
    }
    if !z.authorized(req.headers()) {
        let mut resp = json_reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "Couldn't authenticate you"}),
        );
        set_header(
            &mut resp,
            "www-authenticate",
            "Basic realm=\"Web Password\"",
        );
        return resp;
    }
    let (limit, remaining, reset) = {
        let mut l = z.limits();
        l.account.take();
        let incremental = INCREMENTAL_PATHS.contains(&path.as_str());
        match l.incremental_limit.filter(|_| incremental) {
            Some(limit) => {
                if let Err(wait) = l.incremental.try_take(limit) {
                    return rate_limited(
                        wait,
                        limit,
                        "Number of allowed incremental export API requests per minute exceeded",
                    );
                }
                let used = u32::try_from(l.incremental.used()).unwrap_or(u32::MAX);
                (
                    limit,
                    limit.saturating_sub(used),
                    l.incremental.secs_until_free(),
                )
            }
            None => {
                let used = u32::try_from(l.account.used()).unwrap_or(u32::MAX);
                (
                    ACCOUNT_LIMIT,
                    ACCOUNT_LIMIT.saturating_sub(used),
                    l.account.secs_until_free(),
                )
            }
        }
    };
    let mut resp = next.run(req).await;
    rate_headers(&mut resp, limit, remaining, reset);
    resp
}
