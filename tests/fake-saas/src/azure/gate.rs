//! The gate in front of the ARM routes: request counting, the 429 knob (ARM's throttling answer)
//! and the Bearer token, which must have been issued by the token endpoint and not have expired.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::Azure;
use super::shapes::arm_error;
use crate::common::set_header;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// ARM routes: count, 429 knob, Bearer token issued here. The token endpoint and `/_fake/` skip
/// the checks (the token endpoint is still counted).
pub(super) async fn gate(State(a): State<Arc<Azure>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if crate::control::is_control(&path) {
        return next.run(req).await;
    }
    let limited = a.core.record(&path);
    if !path.starts_with("/subscriptions/") {
        return next.run(req).await;
    }
    if limited {
        let mut resp = arm_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "The request is being throttled as the limit has been reached for operation type - Read.",
        );
        set_header(&mut resp, "retry-after", "1");
        set_header(
            &mut resp,
            "x-ms-ratelimit-remaining-subscription-reads",
            "0",
        );
        return resp;
    }
    let (code, message) = match bearer(req.headers()) {
        None => (
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ),
        Some(t) if !a.tokens().contains_key(t) => {
            ("InvalidAuthenticationToken", "The access token is invalid.")
        }
        Some(t) if a.tokens().get(t).is_some_and(|exp| Instant::now() >= *exp) => (
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time is earlier than current UTC time.",
        ),
        Some(_) => {
            let mut resp = next.run(req).await;
            set_header(
                &mut resp,
                "x-ms-ratelimit-remaining-subscription-reads",
                "11999",
            );
            return resp;
        }
    };
    let mut resp = arm_error(StatusCode::UNAUTHORIZED, code, message);
    let challenge = format!(
        "Bearer authorization_uri=\"https://login.microsoftonline.com/{}\", error=\"invalid_token\"",
        a.opts.tenant
    );
    set_header(&mut resp, "www-authenticate", &challenge);
    resp
}
