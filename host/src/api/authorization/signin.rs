//! The authorization endpoint: `GET /oauth/authorize` checks the request (client, exact
//! redirect URI, PKCE S256, resource, scopes) and shows the sign-in and consent page — which
//! client asks (its name as it claims it, and its id), for which scopes, where it will send the
//! person back — where the person pastes their Airlock API token; `POST /oauth/authorize`
//! signs them in and redirects back with a one-time code (or `access_denied`).
//!
//! With `[oauth.upstream]` the page offers "sign in with" the company's OpenID Connect provider
//! instead of (or beside) the token field: see `upstream.rs`.
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
use serde::Deserialize;

use super::clients;
use super::pending::{
    BIND_COOKIE, Pending, UpstreamStart, back_to, cannot_now, cookie, issue_code, refuse_here, same,
};
use super::upstream;
use super::{audit, no_store, own, scope_names};
use crate::app::Airlock;
use crate::config::OAUTH_SCOPES as SCOPES;
use crate::config::{OAuth, OwnServer};
use crate::store::oauth_grants::new_secret;
use crate::store::tokens::hash_token;

/// How long a sign-in may take, and how many tokens a person may try.
const PENDING_TTL: Duration = Duration::from_secs(600);
const MAX_TRIES: u32 = 5;
/// Most sign-ins waiting at once (beyond it, the oldest expired ones are dropped first, then
/// new ones refused: the endpoint is open).
const MAX_PENDING: i64 = 10_000;
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
        upstream: s.upstream.as_ref().map(|_| UpstreamStart::new()),
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
        Ok(true) => render(&o, &s, &id, &p, None, true),
        Ok(false) => refuse_here("too many sign-ins are waiting; try again in a few minutes"),
        Err(e) => cannot_now(e),
    }
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
    let (o, s) = match own(&a) {
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
    if d.decision == "upstream" {
        return match (&s.upstream, &p.upstream) {
            (Some(up), Some(start)) => upstream::redirect(&a, &o, up, &d.request, start).await,
            _ => refuse_here("this server signs people in with an API token only"),
        };
    }
    if d.decision == "allow" && !s.api_token_sign_in {
        return refuse_here(
            "this server signs people in through their organisation's account only",
        );
    }
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
                &s,
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
    let by = format!("API token {}", principal.token_id);
    issue_code(
        &a,
        &o,
        &p,
        &principal.name,
        (&principal.token_id, None),
        &by,
    )
    .await
}

fn csrf_cookie(headers: &HeaderMap) -> Option<String> {
    cookie(headers, CSRF_COOKIE)
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
fn render(
    o: &OAuth,
    s: &OwnServer,
    id: &str,
    p: &Pending,
    error: Option<&str>,
    set_cookie: bool,
) -> Response {
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
{upstream}{token_field}<button type="submit" name="decision" value="deny">Deny</button>
</form>
</body></html>
"#,
        name = esc(name),
        client_id = esc(&p.client.id),
        resource = esc(&o.resource),
        back = esc(&back),
        id = esc(id),
        csrf = esc(&p.csrf),
        upstream = match &s.upstream {
            Some(up) => format!(
                "<button type=\"submit\" name=\"decision\" value=\"upstream\">Sign in with {} and allow</button><br>\n",
                esc(&up.display_name)
            ),
            None => String::new(),
        },
        token_field = match s.api_token_sign_in {
            true =>
                "<label for=\"token\">Your Airlock API token</label>\n\
<input type=\"password\" id=\"token\" name=\"token\" placeholder=\"alk_…\" autocomplete=\"off\">\n\
<button type=\"submit\" name=\"decision\" value=\"allow\">Sign in and allow</button>\n",
            false => "",
        },
    );
    let mut r = Html(html).into_response();
    let h = r.headers_mut();
    // No script at all; the one style by nonce; the form posts here, and the redirect after it
    // goes to the client or to the OpenID provider (browsers apply form-action to redirects too).
    let mut form_action = match back.is_empty() {
        true => "'self'".to_string(),
        false => format!("'self' {back}"),
    };
    if let Some(origin) = s.upstream.as_ref().and_then(upstream::form_origin) {
        form_action.push(' ');
        form_action.push_str(&origin);
    }
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
        if s.upstream.is_some() {
            let bind = format!(
                "{BIND_COOKIE}={}; Path={}; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
                p.csrf,
                super::CALLBACK,
                PENDING_TTL.as_secs()
            );
            if let Ok(v) = HeaderValue::from_str(&bind) {
                h.append(header::SET_COOKIE, v);
            }
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
