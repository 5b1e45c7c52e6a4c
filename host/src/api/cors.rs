//! Cross-origin access (CORS) for pages running in a browser.
//!
//! - The OAuth discovery and token endpoints (both metadata documents, `/oauth/token`,
//!   `/oauth/register`, `/oauth/revoke`, `/oauth/jwks`) answer any origin: browser-based MCP
//!   clients (the Inspector's web page, single-page assistants) sign in from their own origin,
//!   and these endpoints take no cookie, so another site gains nothing by calling them.
//! - The REST API and `/mcp` answer only the origins listed in `[server] cors_origins` (none by
//!   default); they take bearer tokens, never cookies, so no credentials are allowed.
//! - The sign-in page (`/oauth/authorize`) and the dashboard never answer another origin: the
//!   page sets a CSRF cookie and is navigated to, not fetched.
//!
//! The origin list is read per request, so a config reload changes it at once. Only requests
//! that carry an `Origin` go through the CORS layer, and an `OPTIONS` without
//! `Access-Control-Request-Method` is no preflight: tower-http's layer answers every `OPTIONS`
//! itself, which would hide the egress proxy's forwarded `OPTIONS` and the API's 405s.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header, request::Parts};
use axum::middleware::Next;
use axum::response::Response;
use tower::{Layer as _, ServiceExt as _};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::app::Airlock;

/// Paths any origin may call (no cookies, public or self-authenticating requests).
fn open_to_any_origin(path: &str) -> bool {
    use crate::api::authorization as az;
    path.starts_with("/.well-known/oauth-protected-resource")
        || path.starts_with(az::METADATA)
        || [az::TOKEN, az::REVOKE, az::REGISTER, az::JWKS].contains(&path)
}

/// Paths that never answer another origin.
fn same_origin_only(path: &str) -> bool {
    use crate::api::authorization as az;
    path == az::AUTHORIZE
        || !(path.starts_with("/v1/") || path == "/mcp" || path == "/openapi.json")
}

/// Whether a page at `origin` may read the answer to a request for `path`.
pub fn allowed(origin: &str, path: &str, configured: &[String]) -> bool {
    if open_to_any_origin(path) {
        return true;
    }
    !same_origin_only(path) && configured.iter().any(|o| o == origin)
}

/// The daemon's CORS middleware: requests from a page at another origin (and their
/// preflights) through [`layer`], everything else untouched.
pub async fn apply(State(a): State<Arc<Airlock>>, req: Request, next: Next) -> Response {
    let h = req.headers();
    let bare_options =
        req.method() == Method::OPTIONS && !h.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if !h.contains_key(header::ORIGIN) || bare_options {
        return next.run(req).await;
    }
    match layer(a).layer(next).oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// The CORS layer of the daemon's router.
pub fn layer(a: Arc<Airlock>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(
            move |origin: &HeaderValue, parts: &Parts| {
                origin
                    .to_str()
                    .is_ok_and(|o| allowed(o, parts.uri.path(), &a.config().server.cors_origins))
            },
        ))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            HeaderName::from_static("mcp-session-id"),
        ])
        .max_age(Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_and_token_endpoints_answer_any_origin_the_api_only_configured_ones() {
        let conf = vec!["https://app.example".to_string()];
        let other = "https://evil.example";
        for open in [
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-authorization-server",
            "/oauth/token",
            "/oauth/register",
            "/oauth/revoke",
            "/oauth/jwks",
        ] {
            assert!(allowed(other, open, &[]), "{open}");
        }
        for api in ["/mcp", "/v1/search", "/openapi.json"] {
            assert!(allowed("https://app.example", api, &conf), "{api}");
            assert!(!allowed(other, api, &conf), "{api}");
            assert!(
                !allowed("https://app.example", api, &[]),
                "{api}: none by default"
            );
        }
        for never in ["/oauth/authorize", "/", "/dashboard", "/metrics", "/readyz"] {
            assert!(!allowed("https://app.example", never, &conf), "{never}");
        }
    }
}
