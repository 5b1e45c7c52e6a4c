//! The authorization endpoint: `GET /oauth/authorize` checks the request (client, exact
//! redirect URI, PKCE S256, resource, scopes) and shows the sign-in and consent page — which
//! client asks (its name as it claims it, and its id), for which scopes, where it will send the
//! person back — where the person pastes their Airlock API token; `POST /oauth/authorize`
//! signs them in and redirects back with a one-time code (or `access_denied`).
//!
//! The request waits in the store (ten minutes, five tries of a token) under a random id, so
//! the form may be answered at another daemon of the installation and a restart loses none; the
//! form carries that id and a CSRF token that must equal the one in a `SameSite=Strict`,
//! `HttpOnly` cookie set with the page, so another site cannot post the form. The page has a
//! strict Content-Security-Policy (no script at all, its one style by nonce, forms only to here
//! and to the client's redirect origin, no framing). The pasted token never reaches a log line.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::clients::{self, Client};
use super::{audit, no_store, own, scope_names};
use crate::app::Airlock;
use crate::config::OAUTH_SCOPES as SCOPES;
use crate::config::OAuth;
use crate::store::oauth_grants::{NewGrant, new_secret};
use crate::store::tokens::hash_token;

/// How long a sign-in may take, and how many tokens a person may try.
const PENDING_TTL: Duration = Duration::from_secs(600);
const MAX_TRIES: u32 = 5;
/// Most sign-ins waiting at once (beyond it, the oldest expired ones are dropped first, then
/// new ones refused: the endpoint is open).
const MAX_PENDING: i64 = 10_000;
/// How long a code may wait for its exchange.
const CODE_TTL_MS: i64 = 60_000;
const CSRF_COOKIE: &str = "airlock_oauth_csrf";

/// The query of `GET /oauth/authorize`.
#[derive(Deserialize, Default)]
pub struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    scope: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    resource: Option<String>,
}

/// A sign-in waiting for the person: what is stored as its request (the CSRF token only as
/// a digest, beside it).
#[derive(Clone, Serialize, Deserialize)]
struct Pending {
    client: Client,
    redirect_uri: String,
    state: Option<String>,
    scopes: Vec<String>,
    code_challenge: String,
    resource: String,
    #[serde(skip)]
    csrf: String,
}

/// An error shown to the person (not sent to a redirect URI that is not known to be the
/// client's, RFC 6749 §4.1.2.1).
fn refuse_here(message: &str) -> Response {
    no_store(crate::api::errors::error_response(
        StatusCode::BAD_REQUEST,
        "invalid-request",
        message,
        None,
    ))
}

/// The redirect back to the client with `params` (plus `state` and `iss`, RFC 9207).
fn back_to(
    o: &OAuth,
    redirect_uri: &str,
    state: Option<&str>,
    params: &[(&str, &str)],
) -> Response {
    let Ok(mut u) = url::Url::parse(redirect_uri) else {
        return refuse_here("the redirect URI is not a URL");
    };
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &o.issuer);
    }
    let mut r = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(u.as_str()) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
            no_store(r)
        }
        Err(_) => refuse_here("the redirect URI cannot be used"),
    }
}

fn error_back(o: &OAuth, p: &AuthorizeQuery, redirect_uri: &str, error: &str, d: &str) -> Response {
    back_to(
        o,
        redirect_uri,
        p.state.as_deref(),
        &[("error", error), ("error_description", d)],
    )
}

/// `GET /oauth/authorize`.
pub async fn page(State(a): State<Arc<Airlock>>, Query(q): Query<AuthorizeQuery>) -> Response {
    let (o, s) = match own(&a) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(client_id) = q.client_id.as_deref().filter(|c| !c.is_empty()) else {
        return refuse_here("client_id is missing");
    };
    let client = match clients::resolve(&a, &s, client_id).await {
        Ok(c) => c,
        Err(e) => return refuse_here(&format!("the client cannot be used: {e}")),
    };
    // Exactly one of the client's own redirect URIs (when it has just one, it may be left out).
    let redirect_uri = match q.redirect_uri.as_deref() {
        Some(r) if client.redirect_uris.iter().any(|x| x == r) => r.to_string(),
        Some(_) => {
            return refuse_here(
                "redirect_uri is not one of the client's registered redirect URIs (exact match)",
            );
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return refuse_here("redirect_uri is missing"),
    };
    // From here on errors go back to the client.
    if q.response_type.as_deref() != Some("code") {
        return error_back(
            &o,
            &q,
            &redirect_uri,
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let challenge = match (
        q.code_challenge.as_deref(),
        q.code_challenge_method.as_deref(),
    ) {
        (Some(c), Some("S256")) if is_s256_challenge(c) => c.to_string(),
        (Some(_), Some("S256")) => {
            return error_back(
                &o,
                &q,
                &redirect_uri,
                "invalid_request",
                "code_challenge is not an S256 challenge (43 base64url characters)",
            );
        }
        _ => {
            return error_back(
                &o,
                &q,
                &redirect_uri,
                "invalid_request",
                "PKCE is required: code_challenge with code_challenge_method=S256",
            );
        }
    };
    if q.resource.as_deref().is_some_and(|r| r != o.resource) {
        return error_back(
            &o,
            &q,
            &redirect_uri,
            "invalid_target",
            "this server issues tokens only for its own resource",
        );
    }
    let scopes = match granted_scopes(q.scope.as_deref()) {
        Some(s) => s,
        None => {
            return error_back(
                &o,
                &q,
                &redirect_uri,
                "invalid_scope",
                "none of the scopes asked for exists here",
            );
        }
    };
    let id = new_secret("");
    let csrf = new_secret("");
    let p = Pending {
        client,
        redirect_uri,
        state: q.state.clone(),
        scopes,
        code_challenge: challenge,
        resource: o.resource.clone(),
        csrf: csrf.clone(),
    };
    let request = match serde_json::to_string(&p) {
        Ok(r) => r,
        Err(e) => return cannot_now(e.into()),
    };
    let ttl = PENDING_TTL.as_millis() as i64;
    match a
        .store
        .put_oauth_pending(&id, &request, &csrf, ttl, MAX_PENDING)
        .await
    {
        Ok(true) => render(&o, &id, &p, None, true),
        Ok(false) => refuse_here("too many sign-ins are waiting; try again in a few minutes"),
        Err(e) => cannot_now(e),
    }
}

/// The store failed: the cause is logged, the person asked to try again.
fn cannot_now(e: anyhow::Error) -> Response {
    tracing::error!("OAuth sign-in state cannot be stored or read: {e:#}");
    refuse_here("the sign-in cannot be handled now; try again")
}

/// Whether a PKCE S256 challenge has the shape of one (base64url of a SHA-256 digest).
fn is_s256_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The scopes to grant: those asked for that exist here (all when none were asked for); None
/// when some were asked for and none exists. Names outside ours (`openid`, `profile`) are
/// dropped rather than refused: clients commonly add them.
fn granted_scopes(asked: Option<&str>) -> Option<Vec<String>> {
    let ours = scope_names();
    match asked.map(str::trim).filter(|s| !s.is_empty()) {
        None => Some(ours.iter().map(|s| s.to_string()).collect()),
        Some(asked) => {
            let wanted: Vec<&str> = asked.split_whitespace().collect();
            let granted: Vec<String> = ours
                .iter()
                .filter(|s| wanted.contains(s))
                .map(|s| s.to_string())
                .collect();
            (!granted.is_empty()).then_some(granted)
        }
    }
}

/// The form `POST /oauth/authorize` takes.
#[derive(Deserialize)]
pub struct Decision {
    request: String,
    csrf: String,
    #[serde(default)]
    token: String,
    decision: String,
}

impl std::fmt::Debug for Decision {
    // The pasted API token never shows up in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decision")
            .field("decision", &self.decision)
            .finish_non_exhaustive()
    }
}

/// `POST /oauth/authorize`: the person's answer.
pub async fn decide(
    State(a): State<Arc<Airlock>>,
    headers: HeaderMap,
    Form(d): Form<Decision>,
) -> Response {
    let (o, _) = match own(&a) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let stored = match a.store.oauth_pending(&d.request).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return refuse_here("unknown or expired sign-in; start again from the application");
        }
        Err(e) => return cannot_now(e),
    };
    let mut p: Pending = match serde_json::from_str(&stored.request) {
        Ok(p) => p,
        Err(e) => return cannot_now(e.into()),
    };
    let cookie = csrf_cookie(&headers);
    let matches = |v: &str| same(&hash_token(v), &stored.csrf_hash);
    if !(matches(&d.csrf) && cookie.is_some_and(|c| matches(&c))) {
        return no_store(crate::api::errors::error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the sign-in form did not come from this page (CSRF check failed)",
            None,
        ));
    }
    p.csrf = d.csrf.clone();
    // Ends the sign-in; true for the one answer (of however many posted, to any daemon) that
    // ended it.
    let take = || async {
        a.store
            .take_oauth_pending(&d.request)
            .await
            .unwrap_or(false)
    };
    if d.decision != "allow" {
        take().await;
        tracing::info!(client = %p.client.id, "OAuth sign-in declined");
        return back_to(
            &o,
            &p.redirect_uri,
            p.state.as_deref(),
            &[
                ("error", "access_denied"),
                ("error_description", "the person declined"),
            ],
        );
    }
    let found = a.store.authenticate(d.token.trim()).await;
    let principal = match found {
        Ok(Some(pr)) => pr,
        Ok(None) => {
            // Unknown or unreadable counts as spent: fail closed.
            let tries = match a.store.add_oauth_pending_try(&d.request).await {
                Ok(Some(n)) => n,
                _ => MAX_TRIES,
            };
            tracing::info!(client = %p.client.id, tries, "OAuth sign-in with an invalid token");
            audit(
                &a,
                "oauth-sign-in",
                "deny",
                None,
                format!("an unknown or revoked API token for client {}", p.client.id),
            );
            if tries >= MAX_TRIES {
                take().await;
                return back_to(
                    &o,
                    &p.redirect_uri,
                    p.state.as_deref(),
                    &[
                        ("error", "access_denied"),
                        ("error_description", "too many invalid tokens"),
                    ],
                );
            }
            return render(
                &o,
                &d.request,
                &p,
                Some("That token is not valid (unknown or revoked). Paste an Airlock API token."),
                false,
            );
        }
        Err(e) => {
            tracing::error!("token lookup failed: {e:#}");
            return refuse_here("the token cannot be checked now; try again");
        }
    };
    if !take().await {
        return refuse_here("this sign-in was already answered; start again from the application");
    }
    let started = a
        .store
        .start_oauth_grant(&NewGrant {
            client_id: &p.client.id,
            api_token_id: &principal.token_id,
            scopes: &p.scopes,
            resource: &p.resource,
            redirect_uri: &p.redirect_uri,
            code_challenge: &p.code_challenge,
            code_ttl_ms: CODE_TTL_MS,
        })
        .await;
    match started {
        Ok((grant, code)) => {
            audit(
                &a,
                "oauth-sign-in",
                "allow",
                Some(format!("oauth:{}", principal.name)),
                format!(
                    "client {} granted {} (grant {grant}, API token {})",
                    p.client.id,
                    p.scopes.join(" "),
                    principal.token_id
                ),
            );
            tracing::info!(
                client = %p.client.id,
                principal = %principal.name,
                grant = %grant,
                "OAuth sign-in: code issued"
            );
            back_to(
                &o,
                &p.redirect_uri,
                p.state.as_deref(),
                &[("code", code.as_str())],
            )
        }
        Err(e) => {
            tracing::error!("OAuth grant cannot be stored: {e:#}");
            refuse_here("the sign-in cannot be completed now; try again")
        }
    }
}

/// Compares two secrets in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

fn csrf_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == CSRF_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Escapes text for HTML content and quoted attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The sign-in and consent page, with its security headers (and the CSRF cookie when new).
fn render(o: &OAuth, id: &str, p: &Pending, error: Option<&str>, set_cookie: bool) -> Response {
    let nonce = new_secret("");
    let described: String = p
        .scopes
        .iter()
        .map(|s| {
            let what = SCOPES
                .iter()
                .find(|(k, _)| k == s)
                .map(|(_, w)| *w)
                .unwrap_or("");
            format!("<li><b>{}</b>: {}</li>", esc(s), esc(what))
        })
        .collect();
    let name = p.client.name.as_deref().unwrap_or("An unnamed application");
    let back = url::Url::parse(&p.redirect_uri)
        .ok()
        .map(|u| match u.host_str() {
            Some(h) => format!("{}://{h}", u.scheme()),
            None => format!("{}:", u.scheme()),
        })
        .unwrap_or_default();
    let how = match p.client.by_document {
        true => "identified by its metadata document at",
        false => "registered here as",
    };
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer">
<title>Sign in to Airlock</title>
<style nonce="{nonce}">
body{{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222}}
code{{word-break:break-all;background:#f3f3f3;padding:0 .2rem}}
.error{{color:#a00;font-weight:600}} input[type=password]{{width:100%;padding:.4rem;font:inherit}}
button{{font:inherit;padding:.4rem 1rem;margin:.8rem .5rem 0 0}}
</style></head><body>
<h1>Sign in to Airlock</h1>
<p><b>{name}</b> (as it names itself; {how} <code>{client_id}</code>) asks to act as you at
<code>{resource}</code> with these permissions:</p>
<ul>{described}</ul>
<p>You will be sent back to <code>{back}</code>. Only allow applications you use and trust.</p>
{error}
<form method="post" action="/oauth/authorize" autocomplete="off">
<input type="hidden" name="request" value="{id}">
<input type="hidden" name="csrf" value="{csrf}">
<label for="token">Your Airlock API token</label>
<input type="password" id="token" name="token" placeholder="alk_…" autocomplete="off">
<button type="submit" name="decision" value="allow">Sign in and allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
</body></html>
"#,
        name = esc(name),
        client_id = esc(&p.client.id),
        resource = esc(&o.resource),
        back = esc(&back),
        id = esc(id),
        csrf = esc(&p.csrf),
    );
    let mut r = Html(html).into_response();
    let h = r.headers_mut();
    // No script at all; the one style by nonce; the form posts here, and the redirect after it
    // goes to the client (browsers apply form-action to that redirect too).
    let form_action = match back.is_empty() {
        true => "'self'".to_string(),
        false => format!("'self' {back}"),
    };
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if set_cookie {
        let secure = match o.issuer.starts_with("https://") {
            true => "; Secure",
            false => "",
        };
        let cookie = format!(
            "{CSRF_COOKIE}={}; Path=/oauth; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            p.csrf,
            PENDING_TTL.as_secs()
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            h.append(header::SET_COOKIE, v);
        }
    }
    no_store(r)
}

/// base64url without padding (PKCE's encoding).
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_asked_for_are_narrowed_to_ours_and_none_of_ours_is_refused() {
        assert_eq!(
            granted_scopes(None).unwrap(),
            ["search", "read", "actions", "writes"]
        );
        assert_eq!(
            granted_scopes(Some("openid search read")).unwrap(),
            ["search", "read"]
        );
        assert!(granted_scopes(Some("openid profile")).is_none());
    }

    #[test]
    fn what_a_client_claims_is_escaped_on_the_page() {
        assert_eq!(
            esc("<script>alert('x')</script>\"&"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"
        );
        assert!(is_s256_challenge(&b64url(&[7u8; 32])));
        assert!(!is_s256_challenge("short"));
    }
}
