//! The token endpoint (`POST /oauth/token`: a code and its PKCE verifier, or a refresh token,
//! for an access token) and the revocation endpoint (`POST /oauth/revoke`, RFC 7009).
//!
//! Access tokens are ES256 JWTs for this resource only (`aud`), naming the person (`sub`,
//! `preferred_username`), their tenant and groups (the API token's), the scopes granted, the
//! client and the grant (`sid`), short-lived. Refresh tokens are opaque, stored hashed and
//! rotated on every use; a spent one presented again revokes the whole grant (RFC 9700 §4.14).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{audit, keys, no_store, oauth_error, own};
use crate::app::Airlock;
use crate::config::{OAuth, OwnServer};
use crate::store::oauth_grants::{Grant, REFRESH_PREFIX, Refused};

/// The form `POST /oauth/token` takes (every field a string; which are needed depends on the
/// grant type). Not `Debug`: it carries codes, verifiers and refresh tokens.
#[derive(Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    resource: Option<String>,
    scope: Option<String>,
}

fn bad(error: &str, description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, error, description)
}

fn server_error(e: anyhow::Error) -> Response {
    tracing::error!("OAuth token endpoint: {e:#}");
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the token cannot be issued now",
    )
}

/// `POST /oauth/token`.
pub async fn token(State(a): State<Arc<Airlock>>, Form(f): Form<TokenForm>) -> Response {
    let (o, s) = match own(&a) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(client_id) = f.client_id.clone().filter(|c| !c.is_empty()) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id is missing (public clients identify themselves with it)",
        );
    };
    // RFC 8707: a token only for this server's resource.
    if f.resource.as_deref().is_some_and(|r| r != o.resource) {
        return bad(
            "invalid_target",
            "this server issues tokens only for its own resource",
        );
    }
    match f.grant_type.as_deref() {
        Some("authorization_code") => by_code(&a, &o, &s, f, client_id).await,
        Some("refresh_token") => by_refresh(&a, &o, &s, f, client_id).await,
        Some(_) => bad(
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        ),
        None => bad("invalid_request", "grant_type is missing"),
    }
}

fn refused(r: Refused) -> Response {
    let why = match r {
        Refused::Unknown => "unknown",
        Refused::Expired => "expired",
        Refused::Replayed => "already used; the grant is revoked",
        Refused::OtherClient => "issued to another client",
        Refused::Revoked => "revoked (or the API token it was signed in with is)",
    };
    bad("invalid_grant", &format!("the grant is {why}"))
}

async fn by_code(
    a: &Arc<Airlock>,
    o: &OAuth,
    s: &OwnServer,
    f: TokenForm,
    client_id: String,
) -> Response {
    let (Some(code), Some(verifier)) = (f.code, f.code_verifier) else {
        return bad("invalid_request", "code and code_verifier are required");
    };
    // RFC 7636 §4.1: 43 to 128 unreserved characters.
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !well_formed {
        return bad("invalid_request", "code_verifier is not a PKCE verifier");
    }
    let redeemed = match a.store.redeem_oauth_code(&code, &client_id).await {
        Ok(Ok(r)) => r,
        Ok(Err(Refused::Replayed)) => {
            audit(
                a,
                "oauth-revoked",
                "deny",
                None,
                format!(
                    "an authorization code of client {client_id} was replayed: its grant is revoked"
                ),
            );
            return refused(Refused::Replayed);
        }
        Ok(Err(r)) => return refused(r),
        Err(e) => return server_error(e),
    };
    if f.redirect_uri.as_deref() != Some(redeemed.redirect_uri.as_str()) {
        return bad(
            "invalid_grant",
            "redirect_uri is not the one the code was issued for",
        );
    }
    let computed = super::signin::b64url(&Sha256::digest(verifier.as_bytes()));
    if computed != redeemed.code_challenge {
        return bad(
            "invalid_grant",
            "code_verifier does not match the code_challenge",
        );
    }
    issue(a, o, s, &redeemed.grant, &redeemed.grant.scopes, None).await
}

async fn by_refresh(
    a: &Arc<Airlock>,
    o: &OAuth,
    s: &OwnServer,
    f: TokenForm,
    client_id: String,
) -> Response {
    let Some(old) = f.refresh_token else {
        return bad("invalid_request", "refresh_token is required");
    };
    let ttl = s.refresh_token_ttl.as_millis() as i64;
    let rotated = match a.store.rotate_oauth_refresh(&old, &client_id, ttl).await {
        Ok(Ok(r)) => r,
        Ok(Err(Refused::Replayed)) => {
            audit(
                a,
                "oauth-revoked",
                "deny",
                None,
                format!(
                    "a spent refresh token of client {client_id} was replayed: its grant is revoked"
                ),
            );
            return refused(Refused::Replayed);
        }
        Ok(Err(r)) => return refused(r),
        Err(e) => return server_error(e),
    };
    let (grant, next) = rotated;
    // A refresh may narrow the scopes, never widen them (RFC 6749 §6).
    let scopes: Vec<String> = match f.scope.as_deref().map(str::trim).filter(|x| !x.is_empty()) {
        None => grant.scopes.clone(),
        Some(asked) => {
            let asked: Vec<&str> = asked.split_whitespace().collect();
            if asked.iter().any(|x| !grant.scopes.iter().any(|g| g == x)) {
                return bad("invalid_scope", "a refresh cannot add scopes to the grant");
            }
            asked.into_iter().map(str::to_string).collect()
        }
    };
    issue(a, o, s, &grant, &scopes, Some(next)).await
}

/// Signs an access token and answers with it (and a refresh token: the rotated one, or a first
/// one for a new grant).
async fn issue(
    a: &Arc<Airlock>,
    o: &OAuth,
    s: &OwnServer,
    grant: &Grant,
    scopes: &[String],
    refresh: Option<String>,
) -> Response {
    let refresh = match refresh {
        Some(r) => r,
        None => {
            let (id, ttl) = (grant.id.clone(), s.refresh_token_ttl.as_millis() as i64);
            match a.store.issue_oauth_refresh(&id, ttl).await {
                Ok(r) => r,
                Err(e) => return server_error(e),
            }
        }
    };
    let key = match keys::signing_key(a).await {
        Ok(k) => k,
        Err(e) => return server_error(e),
    };
    let now = chrono::Utc::now().timestamp();
    let ttl = s.access_token_ttl.as_secs();
    let p = &grant.principal;
    let claims = json!({
        "iss": o.issuer,
        "aud": o.resource,
        "sub": p.name,
        "preferred_username": p.name,
        "tenant": p.tenant,
        "groups": p.groups,
        "scope": scopes.join(" "),
        "client_id": grant.client_id,
        "sid": grant.id,
        "iat": now,
        "nbf": now,
        "exp": now + ttl as i64,
        "jti": ulid::Ulid::new().to_string(),
    });
    let access = match key.sign(&claims) {
        Ok(t) => t,
        Err(e) => return server_error(e),
    };
    tracing::info!(
        client = %grant.client_id,
        principal = %p.name,
        grant = %grant.id,
        "OAuth access token issued"
    );
    no_store(
        Json(json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
            "refresh_token": refresh,
            "scope": scopes.join(" "),
        }))
        .into_response(),
    )
}

/// The form `POST /oauth/revoke` takes (not `Debug`: it carries a token).
#[derive(Deserialize)]
pub struct RevokeForm {
    token: Option<String>,
    client_id: Option<String>,
}

/// `POST /oauth/revoke` (RFC 7009): revokes the grant behind a refresh or access token, ending
/// every token of that sign-in. Answers 200 whether or not the token was known (§2.2).
pub async fn revoke(State(a): State<Arc<Airlock>>, Form(f): Form<RevokeForm>) -> Response {
    let (o, _) = match own(&a) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(token) = f.token.filter(|t| !t.is_empty()) else {
        return bad("invalid_request", "token is required");
    };
    let grant = match token.starts_with(REFRESH_PREFIX) {
        true => match a.store.grant_of_oauth_refresh(&token).await {
            Ok(g) => g,
            Err(e) => return server_error(e),
        },
        false => grant_of_access_token(&a, &o, &token).await,
    };
    // A public client proves nothing but holding the token; when it names itself, the token
    // must be its own.
    if let Some((id, client)) = grant
        && f.client_id.as_deref().is_none_or(|c| c == client)
    {
        let done = a
            .store
            .revoke_oauth_grant(&id, "revoked by the client")
            .await;
        if let Err(e) = done {
            return server_error(e);
        }
    }
    no_store(StatusCode::OK.into_response())
}

/// The grant and client of one of our access tokens (expired ones too: revoking one is still
/// meant to end its sign-in); None for anything else.
async fn grant_of_access_token(a: &Airlock, o: &OAuth, token: &str) -> Option<(String, String)> {
    let key = keys::signing_key(a).await.ok()?;
    let jwk = key.jwks().keys.first()?.clone();
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).ok()?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_issuer(&[o.issuer.as_str()]);
    v.set_audience(&[o.resource.as_str()]);
    v.validate_exp = false;
    let claims = jsonwebtoken::decode::<Value>(token, &decoding, &v)
        .ok()?
        .claims;
    Some((
        claims["sid"].as_str()?.to_string(),
        claims["client_id"].as_str()?.to_string(),
    ))
}
