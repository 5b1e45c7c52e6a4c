//! Airlock's own minimal OAuth 2.1 authorization server, for installations without an identity
//! provider (`[oauth] authorization_server = "self"`), as the MCP authorization specification
//! asks of one: metadata (RFC 8414), the authorization code flow with PKCE (S256 only) and
//! exact redirect URIs, resource indicators (RFC 8707: tokens only for this server), clients
//! identified by a client ID metadata document first and dynamic registration (RFC 7591) as the
//! fallback, a sign-in page where a person pastes their Airlock API token, short-lived ES256
//! access tokens, rotating refresh tokens, and revocation (RFC 7009).
//!
//! The access tokens are checked by the resource-server code (`super::oauth`) like an external
//! issuer's. Every endpoint answers 404 unless the authorization server is configured.

pub mod clients;
pub mod keys;
pub mod pending;
pub mod signin;
pub mod token;
pub mod upstream;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::api::errors::error_response;
use crate::app::Airlock;
use crate::config::OAUTH_SCOPES as SCOPES;
use crate::config::{OAuth, OwnServer};

/// Where each endpoint is, below the issuer (this server's origin).
pub const AUTHORIZE: &str = "/oauth/authorize";
pub const TOKEN: &str = "/oauth/token";
pub const REVOKE: &str = "/oauth/revoke";
pub const REGISTER: &str = "/oauth/register";
pub const JWKS: &str = "/oauth/jwks";
/// Where the company's OpenID provider sends people back after signing them in.
pub const CALLBACK: &str = "/oauth/callback";
pub const METADATA: &str = "/.well-known/oauth-authorization-server";

/// The authorization server's routes (open: each checks what it is given).
pub fn routes() -> Router<Arc<Airlock>> {
    Router::new()
        .route(METADATA, get(metadata))
        .route(AUTHORIZE, get(signin::page).post(signin::decide))
        .route(TOKEN, post(token::token))
        .route(REVOKE, post(token::revoke))
        .route(REGISTER, post(clients::register))
        .route(JWKS, get(jwks))
        .route(CALLBACK, get(upstream::callback))
}

/// `[oauth]` when Airlock is its own authorization server, or the 404 every endpoint gives.
#[allow(clippy::result_large_err)]
pub fn own(a: &Airlock) -> Result<(OAuth, OwnServer), Response> {
    match a.config().oauth.clone() {
        Some(o) => match o.own.clone() {
            Some(s) => Ok((o, s)),
            None => Err(not_here()),
        },
        None => Err(not_here()),
    }
}

fn not_here() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not-found",
        "this server is not an OAuth authorization server (no [oauth] authorization_server = \"self\")",
        None,
    )
}

/// An OAuth error answer (RFC 6749 §5.2): `{"error", "error_description"}`, never cached.
pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    no_store(
        (
            status,
            Json(json!({"error": error, "error_description": description})),
        )
            .into_response(),
    )
}

/// Marks an answer that carries or leads to secrets as not to be cached (RFC 6749 §5.1).
pub fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// Records what the authorization server decided in the audit log (connector `airlock`): who
/// signed in for which client, refused sign-ins, ended grants. Never a token.
pub fn audit(a: &Airlock, event: &str, decision: &str, principal: Option<String>, reason: String) {
    a.audit.record(crate::store::audit::AuditEvent {
        connector: "airlock".into(),
        invocation: ulid::Ulid::new().to_string(),
        event: event.into(),
        decision: decision.into(),
        reason,
        principal,
        ..Default::default()
    });
}

/// The scope names Airlock's tokens can carry.
pub fn scope_names() -> Vec<&'static str> {
    SCOPES.iter().map(|(s, _)| *s).collect()
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
async fn metadata(State(a): State<Arc<Airlock>>) -> Response {
    let (o, _) = match own(&a) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let at = |p: &str| format!("{}{p}", o.issuer);
    Json(json!({
        "issuer": o.issuer,
        "authorization_endpoint": at(AUTHORIZE),
        "token_endpoint": at(TOKEN),
        "revocation_endpoint": at(REVOKE),
        "registration_endpoint": at(REGISTER),
        "jwks_uri": at(JWKS),
        "scopes_supported": scope_names(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

/// `GET /oauth/jwks`: the public key access tokens are signed with.
async fn jwks(State(a): State<Arc<Airlock>>) -> Response {
    if let Err(r) = own(&a) {
        return r;
    }
    match keys::signing_key(&a).await {
        Ok(k) => Json(k.jwks().as_ref().clone()).into_response(),
        Err(e) => {
            tracing::error!("the OAuth signing key cannot be loaded: {e:#}");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the signing key cannot be loaded",
                None,
            )
        }
    }
}
