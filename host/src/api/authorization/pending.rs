//! A sign-in waiting for the person, and how it ends: back to the client with a one-time code
//! (the grant recorded) or an error, or an error shown here. Shared by the API-token form
//! (`signin.rs`) and the OpenID provider's round trip (`upstream.rs`).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::audit;
use super::clients::Client;
use super::no_store;
use crate::app::Airlock;
use crate::config::OAuth;
use crate::store::oauth_grants::{NewGrant, Person, new_secret};

/// The same value as the CSRF cookie, sent only to the upstream sign-in's callback: `Lax`, so
/// the provider's redirect back carries it (a `Strict` cookie stays home on a cross-site
/// navigation). It binds the sign-in to the browser that started it.
pub(super) const BIND_COOKIE: &str = "airlock_oauth_bind";

/// A sign-in waiting for the person: what is stored as its request (the CSRF token only as
/// a digest, beside it).
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Pending {
    pub(super) client: Client,
    pub(super) redirect_uri: String,
    pub(super) state: Option<String>,
    pub(super) scopes: Vec<String>,
    pub(super) code_challenge: String,
    pub(super) resource: String,
    /// The sign-in through the company's OpenID provider, when it has one.
    #[serde(default)]
    pub(super) upstream: Option<UpstreamStart>,
    #[serde(skip)]
    pub(super) csrf: String,
}

/// An error shown to the person (not sent to a redirect URI that is not known to be the
/// client's, RFC 6749 §4.1.2.1).
pub(super) fn refuse_here(message: &str) -> Response {
    no_store(crate::api::errors::error_response(
        StatusCode::BAD_REQUEST,
        "invalid-request",
        message,
        None,
    ))
}

/// The redirect back to the client with `params` (plus `state` and `iss`, RFC 9207).
pub(super) fn back_to(
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

/// The store failed: the cause is logged, the person asked to try again.
pub(super) fn cannot_now(e: anyhow::Error) -> Response {
    tracing::error!("OAuth sign-in state cannot be stored or read: {e:#}");
    refuse_here("the sign-in cannot be handled now; try again")
}

/// Records the grant of a finished sign-in of `name` — by an API token, or a person signed in
/// upstream (`who` = (token id, person)) — and sends the browser back to the client with the
/// one-time code.
pub(super) async fn issue_code(
    a: &Airlock,
    o: &OAuth,
    p: &Pending,
    name: &str,
    who: (&str, Option<&Person>),
    by: &str,
) -> Response {
    let started = a
        .store
        .start_oauth_grant(&NewGrant {
            client_id: &p.client.id,
            api_token_id: who.0,
            person: who.1,
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
                a,
                "oauth-sign-in",
                "allow",
                Some(format!("oauth:{name}")),
                format!(
                    "client {} granted {} (grant {grant}, {by})",
                    p.client.id,
                    p.scopes.join(" "),
                ),
            );
            tracing::info!(
                client = %p.client.id,
                principal = %name,
                grant = %grant,
                "OAuth sign-in: code issued"
            );
            back_to(
                o,
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
pub(super) fn same(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// How long a code may wait for its exchange.
const CODE_TTL_MS: i64 = 60_000;

/// What a waiting sign-in keeps for the provider's round trip (made with the page, so answering
/// the form needs no second write).
#[derive(Clone, Serialize, Deserialize)]
pub struct UpstreamStart {
    pub(super) state: String,
    pub(super) verifier: String,
    pub(super) nonce: String,
}

impl UpstreamStart {
    /// Fresh random values for one sign-in (not `Default`: each call must differ).
    #[allow(clippy::new_without_default)]
    pub fn new() -> UpstreamStart {
        UpstreamStart {
            state: new_secret(""),
            verifier: new_secret(""),
            nonce: new_secret(""),
        }
    }
}
