//! The dashboard at `/`: one static page (HTML, CSS and JavaScript embedded in the binary, no
//! build step) that calls the `/v1` API from the browser with the operator's bearer token. The
//! page itself holds no data and needs no token; the token stays in the browser (URL fragment or
//! input box, then `sessionStorage`) and travels only in `Authorization` headers.
//!
//! Everything the page shows comes from connectors and upstreams and is treated as hostile: the
//! script renders it with `textContent` only, and the strict Content-Security-Policy below
//! (no inline script or style, no other origin) stops an injection that got through anyway.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const STYLE_CSS: &str = include_str!("dashboard/style.css");
const FAVICON_SVG: &str = include_str!("dashboard/favicon.svg");

/// Only this origin's script, style and API; nothing may frame the page, and forms and `<base>`
/// cannot redirect anything.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                       frame-ancestors 'none'";

/// The dashboard's paths (outside `/v1`, open, not in the OpenAPI description).
pub const PATHS: &[&str] = &[
    "/",
    "/dashboard/app.js",
    "/dashboard/style.css",
    "/dashboard/favicon.svg",
];

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The token lives in the fragment, which browsers never send; no referrer leaks the page.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// The dashboard routes, merged into the API router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/dashboard/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route(
            "/dashboard/favicon.svg",
            get(|| async { asset("image/svg+xml", FAVICON_SVG) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_script_and_style_and_has_no_inline_code() {
        assert!(INDEX_HTML.contains(r#"<script src="/dashboard/app.js""#));
        assert!(INDEX_HTML.contains(r#"href="/dashboard/style.css""#));
        // The CSP forbids inline script and style, so the page must carry none.
        assert_eq!(INDEX_HTML.matches("<script").count(), 1);
        assert!(!INDEX_HTML.contains("<style"));
        assert!(!INDEX_HTML.contains(" style="));
        let html = INDEX_HTML.to_lowercase();
        for (i, _) in html.match_indices(" on") {
            let name: String = html[i + 3..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            assert!(
                !html[i + 3 + name.len()..].starts_with('='),
                "inline event handler on{name}="
            );
        }
        // Data is rendered as text, never parsed as HTML.
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!APP_JS.contains(sink), "app.js uses {sink}");
        }
    }
}
