//! Keeps every API error in the one documented shape `{"error": {"code", "message"}}`: unknown
//! routes, wrong methods, extractor rejections (bad JSON, wrong content type, body too large,
//! bad path parameters) and anything else axum answers with a plain-text error.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The code of an error status the handlers do not name themselves.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "bad-request",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::TOO_MANY_REQUESTS => "rate-limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

/// A JSON-body rejection as a JSON error: syntax and shape errors are 400 `bad-request`, a
/// missing JSON content type 415, a body over the limit 413.
pub fn json_rejection(e: JsonRejection) -> Response {
    let status = match e.status() {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        s => s,
    };
    error_response(status, code_of(status), &e.body_text(), None)
}

/// Fallback for paths no route matches.
pub async fn no_such_route() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "no-such-route",
        "no such route; GET /v1/openapi.json describes the API",
        None,
    )
}

/// Fallback for a known path called with a method it does not serve. axum adds the `Allow`
/// header (the route's methods, as RFC 9110 requires) around this answer, outside every layer,
/// so the handler cannot name them itself.
pub async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this route does not serve that method; GET /v1/openapi.json describes the API",
        None,
    )
}

/// Marks an upstream's answer through the egress proxy, so [`ensure_json`] leaves it as it is.
#[derive(Clone, Copy, Debug)]
pub struct Forwarded;

/// Rewrites any plain-text error response (from an extractor or a layer) into the JSON shape.
pub async fn ensure_json(resp: Response) -> Response {
    // An upstream's answer through the egress proxy is the upstream's, errors included.
    if resp.extensions().get::<Forwarded>().is_some() {
        return resp;
    }
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = error_response(status, code_of(status), &message, None);
    // Keep headers such as Allow, Retry-After and WWW-Authenticate.
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// An error in the API's one shape, with `Retry-After` when the caller should wait.
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    retry_after: Option<u32>,
) -> Response {
    let mut body = serde_json::json!({ "error": { "code": code, "message": message } });
    if let Some(s) = retry_after {
        body["error"]["retry_after"] = s.into();
    }
    let mut resp = (status, Json(body)).into_response();
    if let Some(s) = retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}
