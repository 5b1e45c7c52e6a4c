//! The gate in front of every upstream route: request counting, the 429 knob (Atlassian's
//! rate-limit headers) and Basic auth with the account email and API token.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

use super::Confluence;
use crate::common::{atlassian_rate_limited, basic_auth_ok, json_reply, set_header};

/// Counts the request, applies the rate-limit knob, then checks Basic auth (control routes skip all three).
pub(super) async fn gate(State(c): State<Arc<Confluence>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if crate::control::is_control(&path) {
        return next.run(req).await;
    }
    if c.core.record(&path) {
        return atlassian_rate_limited(1, "confluence-quota-global-based");
    }
    if !basic_auth_ok(req.headers(), &c.email, &c.api_token) {
        let mut resp = json_reply(
            StatusCode::UNAUTHORIZED,
            json!({"code": 401, "message": "Unauthorized; scope does not match"}),
        );
        set_header(
            &mut resp,
            "www-authenticate",
            "Basic realm=\"Atlassian Confluence\"",
        );
        return resp;
    }
    next.run(req).await
}
