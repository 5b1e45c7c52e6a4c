//! The gate in front of every upstream route: request counting, the 429 knob (with `Retry-After`)
//! and `X-API-KEY` or `Bearer` auth.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::Atera;
use super::shapes::problem;
use crate::common::set_header;

/// Counts, applies the 429 knob, then checks `X-API-KEY` or `Bearer`. `/_fake/` skips all of it.
pub(super) async fn gate(State(a): State<Arc<Atera>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if crate::control::is_control(&path) {
        return next.run(req).await;
    }
    if a.core.record(&path) {
        let mut resp = problem(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        set_header(&mut resp, "retry-after", "1");
        return resp;
    }
    if !a.authorized(req.headers()) {
        let mut resp = problem(StatusCode::UNAUTHORIZED, "Missing or invalid API key");
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
        return resp;
    }
    next.run(req).await
}
