//! The HTTP access log: one event per request with target `airlock::access` (filter it with
//! `RUST_LOG=airlock::access=info`, or turn it off with `airlock::access=off`). It names the
//! matched route template, never the raw path (ids) or query (which may carry a token), and the
//! principal once `auth::require` knows it. Each request also runs in a `request` span, so the
//! invocations it starts log its request id too; the id is returned as `x-request-id`.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The target operators filter on.
pub const TARGET: &str = "airlock::access";

/// The route of a request no route matched (its raw path is not logged).
const UNMATCHED: &str = "(no route)";

/// Who made the request: set by `auth::require` once the token checked out, read by the access
/// log after the answer (the principal travels inward with the request, the answer outward).
#[derive(Clone, Default)]
pub struct Caller(Arc<OnceLock<String>>);

impl Caller {
    /// Records the principal's label (`token:NAME`, `oauth:EMAIL`).
    pub fn set(&self, label: String) {
        let _ = self.0.set(label);
    }

    fn label(&self) -> &str {
        self.0.get().map(String::as_str).unwrap_or("-")
    }
}

/// The middleware (outermost, so it sees the final status of every route and fallback).
pub async fn log(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = ulid::Ulid::new().to_string();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| UNMATCHED.to_string());
    let caller = Caller::default();
    req.extensions_mut().insert(caller.clone());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %route,
    );
    let mut resp = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    // Time to the answer's head; a streamed body (MCP's SSE) may go on after it.
    let ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    tracing::info!(
        target: TARGET,
        method = %method,
        route = %route,
        status = resp.status().as_u16(),
        ms,
        principal = caller.label(),
        request_id = %request_id,
        "{method} {route} {}",
        resp.status().as_u16(),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_without_a_principal_is_a_dash_and_keeps_the_first_label() {
        let c = Caller::default();
        assert_eq!(c.label(), "-");
        c.set("token:ci".into());
        c.set("token:other".into());
        assert_eq!(c.label(), "token:ci");
    }
}
