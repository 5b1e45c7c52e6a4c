//! Signing people in at the own authorization server through the company's OpenID Connect
//! provider (`[oauth.upstream]`): the sign-in page's "Sign in with …" button sends the browser
//! to the provider (authorization code with PKCE S256 and a nonce, Airlock a confidential
//! client); the provider sends it back to `GET /oauth/callback`, where the code is exchanged, the
//! id_token checked against the provider's published keys (issuer, audience = our client id,
//! expiry, nonce) and its claims become the person: name, groups, and the configured tenant.
//! The grant then names that person itself (there is no API token behind it).
//!
//! The sign-in is bound to the browser that started it: the callback needs the `Lax` bind
//! cookie set with the page (the same value as its CSRF token), so a provider link someone else
//! finishes signs nobody in. The `state` sent to the provider is the waiting sign-in's id and a
//! random value kept with it; both are checked, and the sign-in is taken once.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenUrl,
};
use serde_json::Value;

use super::pending::{
    self, BIND_COOKIE, Pending, UpstreamStart, back_to, cannot_now, refuse_here, same,
};
use super::{audit, no_store, own};
use crate::api::oauth::{Issuer, issuer_keys, openid_configuration, person_in};
use crate::app::Airlock;
use crate::capabilities::oauth_exchange::{self, CallbackQuery, NewClient};
use crate::config::{OAuth, UpstreamSignIn};
use crate::store::oauth_grants::Person;
use crate::store::tokens::hash_token;

/// Clock skew allowed on the id_token's times.
const LEEWAY_SECS: u64 = 60;

/// The provider's endpoints, from its discovery document.
#[derive(Clone)]
struct Endpoints {
    authorization: url::Url,
    token: url::Url,
}

/// Endpoints per issuer, for this process (discovery documents rarely change; a failed
/// sign-in clears the issuer's entry).
static ENDPOINTS: LazyLock<Mutex<HashMap<String, Endpoints>>> = LazyLock::new(Default::default);

fn issuer(up: &UpstreamSignIn) -> Issuer<'_> {
    Issuer {
        issuer: &up.issuer,
        jwks_url: None,
        allow_private: up.allow_private,
    }
}

async fn endpoints(a: &Airlock, up: &UpstreamSignIn) -> Result<Endpoints, String> {
    if let Some(e) = lock().get(&up.issuer).cloned() {
        return Ok(e);
    }
    let doc = openid_configuration(a, &issuer(up)).await?;
    let url = |k: &str| -> Result<url::Url, String> {
        let u = doc[k]
            .as_str()
            .ok_or_else(|| format!("the provider's OpenID configuration has no {k}"))?;
        let u = url::Url::parse(u).map_err(|_| format!("the provider's {k} is not a URL"))?;
        match u.scheme() {
            "https" => Ok(u),
            "http" if up.allow_insecure => Ok(u),
            _ => Err(format!(
                "the provider's {k} is not https (allow_insecure is for local tests)"
            )),
        }
    };
    let e = Endpoints {
        authorization: url("authorization_endpoint")?,
        token: url("token_endpoint")?,
    };
    lock().insert(up.issuer.clone(), e.clone());
    Ok(e)
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<String, Endpoints>> {
    ENDPOINTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The origins the sign-in form may lead to at the provider (for the page's `form-action`).
pub fn form_origin(up: &UpstreamSignIn) -> Option<String> {
    let mut origins = vec![
        url::Url::parse(&up.issuer)
            .ok()?
            .origin()
            .ascii_serialization(),
    ];
    if let Some(e) = lock().get(&up.issuer) {
        let o = e.authorization.origin().ascii_serialization();
        if !origins.contains(&o) {
            origins.push(o);
        }
    }
    Some(origins.join(" "))
}

/// This server's callback, as registered with the provider.
fn redirect_uri(o: &OAuth) -> String {
    format!("{}{}", o.issuer.trim_end_matches('/'), super::CALLBACK)
}

fn client(
    up: &UpstreamSignIn,
    e: &Endpoints,
    o: &OAuth,
    secret: String,
) -> Result<oauth_exchange::Client, String> {
    let redirect =
        RedirectUrl::new(redirect_uri(o)).map_err(|e| format!("the callback URL: {e}"))?;
    Ok(NewClient::new(ClientId::new(up.client_id.clone()))
        .set_client_secret(ClientSecret::new(secret))
        .set_auth_type(AuthType::RequestBody)
        .set_auth_uri(AuthUrl::from_url(e.authorization.clone()))
        .set_token_uri(TokenUrl::from_url(e.token.clone()))
        .set_redirect_uri(redirect))
}

/// The person chose "Sign in with …": to the provider's authorization endpoint.
pub async fn redirect(
    a: &Airlock,
    o: &OAuth,
    up: &UpstreamSignIn,
    id: &str,
    start: &UpstreamStart,
) -> Response {
    let e = match endpoints(a, up).await {
        Ok(e) => e,
        Err(err) => {
            tracing::error!("the OpenID provider {} cannot be used: {err}", up.issuer);
            return refuse_here("your organisation's sign-in cannot be reached now; try again");
        }
    };
    // The secret is not needed to build the URL; the exchange resolves it.
    let c = match client(up, &e, o, String::new()) {
        Ok(c) => c,
        Err(err) => return refuse_here(&err),
    };
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
        start.verifier.clone(),
    ));
    let state = format!("{id}.{}", start.state);
    let (url, _) = c
        .authorize_url(|| CsrfToken::new(state))
        .add_scopes(up.scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge)
        .add_extra_param("nonce", start.nonce.clone())
        .url();
    let mut r = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(url.as_str()) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
            no_store(r)
        }
        Err(_) => refuse_here("the provider's sign-in URL cannot be used"),
    }
}

/// `GET /oauth/callback`: the provider sends the person back.
pub async fn callback(
    State(a): State<Arc<Airlock>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let (o, s) = match own(&a) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(up) = s.upstream.clone() else {
        return refuse_here("this server does not sign people in through an OpenID provider");
    };
    let Some((id, st)) = q.state.as_deref().and_then(|s| s.split_once('.')) else {
        return refuse_here(
            "the provider sent no sign-in state back; start again from the application",
        );
    };
    let stored = match a.store.oauth_pending(id).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return refuse_here("unknown or expired sign-in; start again from the application");
        }
        Err(e) => return cannot_now(e),
    };
    let p: Pending = match serde_json::from_str(&stored.request) {
        Ok(p) => p,
        Err(e) => return cannot_now(e.into()),
    };
    let Some(start) = p.upstream.clone().filter(|u| same(&u.state, st)) else {
        return refuse_here("the sign-in state does not match; start again from the application");
    };
    // The browser that finishes must be the one that started (see the module comment).
    let bound = pending::cookie(&headers, BIND_COOKIE)
        .is_some_and(|c| same(&hash_token(&c), &stored.csrf_hash));
    if !bound {
        audit(
            &a,
            "oauth-sign-in",
            "deny",
            None,
            format!(
                "an upstream sign-in for client {} was finished in another browser than the one that started it",
                p.client.id
            ),
        );
        return no_store(crate::api::errors::error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this sign-in was started in another browser; start again from your application",
            None,
        ));
    }
    if !a.store.take_oauth_pending(id).await.unwrap_or(false) {
        return refuse_here("this sign-in was already answered; start again from the application");
    }
    if let Some(err) = q.error {
        let why = q
            .error_description
            .map(|d| format!("{err}: {d}"))
            .unwrap_or(err);
        audit(
            &a,
            "oauth-sign-in",
            "deny",
            None,
            a.scrubber.scrub(&format!(
                "the OpenID provider did not sign the person in for client {} ({why})",
                p.client.id
            )),
        );
        return back_to(
            &o,
            &p.redirect_uri,
            p.state.as_deref(),
            &[
                ("error", "access_denied"),
                (
                    "error_description",
                    "the organisation's sign-in did not complete",
                ),
            ],
        );
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return refuse_here("the provider sent no code back");
    };
    match person(&a, &o, &up, &start, &code).await {
        Ok(person) => {
            let by = format!("signed in at {}", up.issuer);
            let name = person.name.clone();
            pending::issue_code(&a, &o, &p, &name, ("", Some(&person)), &by).await
        }
        Err(why) => {
            let why = a.scrubber.scrub(&why);
            tracing::warn!(client = %p.client.id, "upstream sign-in refused: {why}");
            audit(
                &a,
                "oauth-sign-in",
                "deny",
                None,
                format!("upstream sign-in for client {} refused: {why}", p.client.id),
            );
            back_to(
                &o,
                &p.redirect_uri,
                p.state.as_deref(),
                &[("error", "access_denied"), ("error_description", &why)],
            )
        }
    }
}

/// Exchanges the code and reads the person from the checked id_token.
async fn person(
    a: &Airlock,
    o: &OAuth,
    up: &UpstreamSignIn,
    start: &UpstreamStart,
    code: &str,
) -> Result<Person, String> {
    let e = endpoints(a, up).await?;
    let secret = a.resolve_secret(&up.client_secret).await?;
    let http = oauth_exchange::http(a.net().client(up.allow_private).clone(), a.scrubber.clone());
    let reply = client(up, &e, o, secret)?
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .set_pkce_verifier(PkceCodeVerifier::new(start.verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|err| {
            lock().remove(&up.issuer);
            oauth_exchange::token_error("the code exchange", err)
        })?;
    let id_token = reply
        .extra_fields()
        .id_token
        .as_deref()
        .ok_or("the provider's token response has no id_token")?;
    let claims = verified_id_token(a, up, id_token).await?;
    if !claims["nonce"]
        .as_str()
        .is_some_and(|n| same(n, &start.nonce))
    {
        return Err("the id_token's nonce is not this sign-in's".into());
    }
    let (name, groups) = person_in(&claims, &up.identity_claims, &up.groups_claim)
        .map_err(|none_of| format!("the id_token names nobody (none of {none_of})"))?;
    Ok(Person {
        name,
        tenant: up.tenant.clone(),
        groups,
    })
}

/// The id_token's claims once its signature (a key the provider publishes, never a shared
/// secret algorithm), issuer, audience and times check out.
async fn verified_id_token(a: &Airlock, up: &UpstreamSignIn, t: &str) -> Result<Value, String> {
    let head = jsonwebtoken::decode_header(t).map_err(|_| "the id_token is not a JWT")?;
    if matches!(
        head.alg,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return Err("the id_token is signed with a shared-secret algorithm".into());
    }
    let kid = head.kid.clone().unwrap_or_default();
    let set = issuer_keys(a, &issuer(up), &kid).await?;
    let jwk = match kid.is_empty() {
        true if set.keys.len() == 1 => &set.keys[0],
        _ => set
            .find(&kid)
            .ok_or("the id_token is signed with a key the provider does not publish")?,
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "the provider's key cannot be used")?;
    let mut v = Validation::new(head.alg);
    v.set_issuer(&[up.issuer.as_str()]);
    v.set_audience(&[up.client_id.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.leeway = LEEWAY_SECS;
    jsonwebtoken::decode::<Value>(t, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| format!("the id_token does not check out ({e})"))
}
