//! The gate in front of every upstream route: the mode decides which paths answer, then the fail
//! knobs and the 429 knob, then auth per flavour (Bearer, `api-key`, none); every request gets
//! the rate-limit headers and a line in the request log (the kind of credential, never its value).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Value, json};

use super::errors::oa_error;
use super::{AuthKind, LoggedRequest, OpenAi, OpenAiMode};
use crate::common::{bearer_auth_ok, json_reply, set_header};

/// Requests per minute advertised in `x-ratelimit-limit-requests` (not enforced).
const REQUEST_LIMIT: u32 = 500;

pub(super) fn auth_kind(h: &HeaderMap) -> AuthKind {
    let bearer = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "));
    match (bearer, h.contains_key("api-key")) {
        (false, false) => AuthKind::None,
        (true, false) => AuthKind::Bearer,
        (false, true) => AuthKind::ApiKey,
        (true, true) => AuthKind::Both,
    }
}

/// Routes by mode, applies the fail knobs and auth, adds rate-limit headers and logs the request.
pub(super) async fn gate(State(s): State<Arc<OpenAi>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if crate::control::is_control(&path) {
        return next.run(req).await;
    }
    let method = req.method().to_string();
    let auth = auth_kind(req.headers());
    let mode = s.mode();
    let injected_429 = s.core.record(&path);
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let parsed = serde_json::from_slice::<Value>(&bytes).ok();
    let model = parsed
        .as_ref()
        .and_then(|v| v.get("model")?.as_str().map(str::to_owned));
    let prompt = parsed.as_ref().and_then(|v| {
        let messages = v.get("messages")?.as_array()?;
        let texts: Vec<&str> = messages
            .iter()
            .filter_map(|m| m.get("content")?.as_str())
            .collect();
        Some(texts.join("\n"))
    });
    let wrong_flavour = (mode == OpenAiMode::Azure) != path.starts_with("/openai/");
    let forced = {
        let mut k = s.knobs();
        (!wrong_flavour && k.fail_next > 0).then(|| {
            k.fail_next -= 1;
            k.fail_status
        })
    };
    let mut resp = if wrong_flavour {
        oa_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "Not found",
            None,
            None,
        )
    } else if injected_429 || forced == Some(429) {
        let mut r = oa_error(
            StatusCode::TOO_MANY_REQUESTS,
            "requests",
            "Rate limit reached for requests (injected by the fake)",
            None,
            Some("rate_limit_exceeded"),
        );
        set_header(&mut r, "retry-after", "1");
        r
    } else if let Some(status) = forced {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        oa_error(
            status,
            "server_error",
            "The server had an error while processing your request.",
            None,
            None,
        )
    } else if !authorized(&s, mode, &parts.headers) {
        match mode {
            OpenAiMode::Azure => json_reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}),
            ),
            _ => oa_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "Incorrect API key provided.",
                None,
                Some("invalid_api_key"),
            ),
        }
    } else {
        next.run(Request::from_parts(parts, bytes.into())).await
    };
    let (remaining, reset) = {
        let mut k = s.knobs();
        k.window.take();
        let used = u32::try_from(k.window.used()).unwrap_or(u32::MAX);
        k.log.push(LoggedRequest {
            method,
            path,
            auth,
            model,
            status: resp.status().as_u16(),
            prompt,
        });
        (
            REQUEST_LIMIT.saturating_sub(used),
            k.window.secs_until_free(),
        )
    };
    set_header(
        &mut resp,
        "x-ratelimit-limit-requests",
        &REQUEST_LIMIT.to_string(),
    );
    set_header(
        &mut resp,
        "x-ratelimit-remaining-requests",
        &remaining.to_string(),
    );
    set_header(
        &mut resp,
        "x-ratelimit-reset-requests",
        &format!("{reset}s"),
    );
    resp
}

pub(super) fn authorized(s: &OpenAi, mode: OpenAiMode, h: &HeaderMap) -> bool {
    match mode {
        OpenAiMode::OpenAi => bearer_auth_ok(h, &s.api_key),
        OpenAiMode::Azure => h
            .get("api-key")
            .is_some_and(|v| v.as_bytes() == s.api_key.as_bytes()),
        OpenAiMode::LmStudio => true,
    }
}
