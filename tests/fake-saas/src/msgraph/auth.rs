//! Authentication and throttling: the AAD v2 client-credentials token endpoint (its delegated
//! grants are `delegated.rs`'s) and the gate in front of every `/v1.0/` route (request counting,
//! the 429 knob, Bearer token checks, app or user tokens).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::MsGraph;
use super::errors::graph_error;
use crate::aad::{GRAPH_SCOPE, aad_error, check_scope};
use crate::common::set_header;

/// `POST /{tenant}/oauth2/v2.0/token` (form-encoded client credentials).
pub(super) async fn token(
    State(g): State<Arc<MsGraph>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let n = g.token_requests.fetch_add(1, Ordering::Relaxed) + 1;
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let bad = StatusCode::BAD_REQUEST;
    if tenant != g.opts.tenant {
        let msg = format!("Tenant '{tenant}' not found.");
        return aad_error(bad, "invalid_request", 90002, &msg);
    }
    if matches!(
        field("grant_type"),
        "authorization_code" | "refresh_token" | super::delegated::OBO_GRANT
    ) {
        return super::delegated::token(&g, &form);
    }
    if field("grant_type") != "client_credentials" {
        let msg = "The app requested an unsupported grant type.";
        return aad_error(bad, "unsupported_grant_type", 70003, msg);
    }
    if field("client_id") != g.opts.client_id {
        let msg = "Application was not found in the directory.";
        return aad_error(bad, "unauthorized_client", 700016, msg);
    }
    if field("client_secret") != g.opts.client_secret {
        let msg = "Invalid client secret provided.";
        return aad_error(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, msg);
    }
    if let Some(refused) = check_scope(field("scope"), GRAPH_SCOPE) {
        return refused;
    }
    let lifetime = g.token_lifetime_secs.load(Ordering::Relaxed);
    let access_token = format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.fake-graph-{n}.sig");
    g.tokens().insert(
        access_token.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    );
    Json(
        json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
        "access_token": access_token}),
    )
    .into_response()
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Graph routes: counted, 429 knob, Bearer token issued here and not expired. The token endpoint
/// is counted but not checked; `/_fake/` is neither.
pub(super) async fn gate(State(g): State<Arc<MsGraph>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if crate::control::is_control(&path) {
        return next.run(req).await;
    }
    let limited = g.core.record(&path);
    if !path.starts_with("/v1.0/") {
        return next.run(req).await;
    }
    if limited {
        let mut resp = graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests have been made. Please retry later.",
        );
        let secs = g.retry_after_secs.load(Ordering::Relaxed);
        set_header(&mut resp, "retry-after", &secs.to_string());
        return resp;
    }
    let message = {
        let tokens = g.tokens();
        match bearer(req.headers()) {
            None => Some("Access token is empty."),
            Some(t) => match tokens.get(t) {
                // A user's token (delegated sign-in, `delegated.rs`).
                None => match g.delegated().user_of(t) {
                    Some(Ok(_)) => None,
                    Some(Err(why)) => Some(why),
                    None => Some("IDX14100: JWT is not well formed, there are no dots (.)."),
                },
                Some(exp) if Instant::now() >= *exp => {
                    Some("Lifetime validation failed, the token is expired.")
                }
                Some(_) => None,
            },
        }
    };
    let Some(message) = message else {
        return next.run(req).await;
    };
    let mut resp = graph_error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
    );
    set_header(
        &mut resp,
        "www-authenticate",
        &format!(
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"{}\"",
            g.opts.client_id
        ),
    );
    resp
}
