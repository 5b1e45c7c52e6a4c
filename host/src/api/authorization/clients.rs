//! Who a client is. First as the MCP authorization specification prefers, a client ID metadata
//! document (draft-ietf-oauth-client-id-metadata-document): the `client_id` is an https URL, and
//! the JSON document there, fetched when the person is asked to sign in, names the client and its
//! redirect URIs and must carry that very URL as its `client_id`. As the fallback, dynamic
//! client registration (RFC 7591, `POST /oauth/register`): public clients only (no secrets), kept
//! in the store. Redirect URIs must be https, http on a loopback address (apps on the person's
//! machine, RFC 8252 §7.3), or a private-use scheme named like a domain (RFC 8252 §7.1).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};

use super::{no_store, oauth_error, own};
use crate::app::Airlock;
use crate::config::OwnServer;

/// The most a metadata document may weigh (the draft suggests servers limit it, e.g. to 5 KB).
const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Most redirect URIs one client may have, and the longest one.
const MAX_REDIRECT_URIS: usize = 10;
const MAX_URI_LEN: usize = 2000;
/// Most clients registered dynamically: the endpoint is open, so the table must not grow
/// without bound (clients with metadata documents are not stored at all).
const MAX_REGISTERED: i64 = 10_000;

/// A client as the sign-in page and the token endpoint know it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Client {
    pub id: String,
    /// What it calls itself (shown on the consent page, as the client's claim, beside its id).
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
    /// Identified by a metadata document (else registered here).
    pub by_document: bool,
}

/// Whether `id` names a client ID metadata document (rather than a registered client).
pub fn is_document_id(id: &str) -> bool {
    id.starts_with("https://") || id.starts_with("http://")
}

/// Finds the client `id` names: fetches its metadata document, or looks up its registration.
pub async fn resolve(a: &Arc<Airlock>, s: &OwnServer, id: &str) -> Result<Client, String> {
    if is_document_id(id) {
        return fetch_document(a, s, id).await;
    }
    let found = a.store.oauth_client(id).await.map_err(|e| {
        tracing::error!("OAuth client lookup failed: {e:#}");
        "the client cannot be looked up".to_string()
    })?;
    match found {
        Some(c) => Ok(Client {
            id: c.id,
            name: c.name,
            redirect_uris: c.redirect_uris,
            by_document: false,
        }),
        None => Err(format!("no client `{}` is registered here", shown(id))),
    }
}

/// An id or URL shortened and stripped for messages.
fn shown(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>()
}

/// Checks a client ID URL: https (or http on loopback when allowed), a path, no fragment, no
/// credentials, no dot segments (the draft's §3).
pub fn check_document_url(s: &OwnServer, id: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(id).map_err(|_| "the client_id is not a URL".to_string())?;
    let loopback = u.host().is_some_and(|h| match h {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(d) => d == "localhost",
    });
    match u.scheme() {
        "https" => {}
        "http" if s.allow_loopback_client_ids && loopback => {}
        _ => return Err("a client_id URL must be https".into()),
    }
    let raw_path = id
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map(|i| &rest[i..]).unwrap_or(""))
        .unwrap_or("");
    if u.path() == "/" || u.path().is_empty() {
        return Err("a client_id URL must have a path".into());
    }
    if u.fragment().is_some() || !u.username().is_empty() || u.password().is_some() {
        return Err("a client_id URL must have no fragment and no credentials".into());
    }
    if raw_path
        .split(['/', '?'])
        .any(|seg| seg == "." || seg == "..")
    {
        return Err("a client_id URL must have no dot segments".into());
    }
    // Exact string comparisons follow: the URL must already be in its normal form.
    if u.as_str() != id {
        return Err("the client_id URL is not in normal form".into());
    }
    Ok(u)
}

async fn fetch_document(a: &Arc<Airlock>, s: &OwnServer, id: &str) -> Result<Client, String> {
    check_document_url(s, id)?;
    let req = http::Request::get(id)
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|_| "the client_id URL cannot be requested".to_string())?;
    // Loopback documents only in test and development setups; otherwise the daemon's public
    // pool refuses private addresses, so a client_id cannot point Airlock at the inside.
    let client = a.net().client(s.allow_loopback_client_ids);
    let call = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("the client's metadata document cannot be fetched ({e})"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!(
                "the client's metadata document answered {status} (redirects are not followed)"
            ));
        }
        let body = Limited::new(resp.into_body(), MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map_err(|_| {
                format!(
                    "the client's metadata document is larger than {MAX_DOCUMENT_BYTES} bytes or unreadable"
                )
            })?
            .to_bytes();
        serde_json::from_slice::<Value>(&body)
            .map_err(|_| "the client's metadata document is not JSON".to_string())
    };
    let doc = tokio::time::timeout(FETCH_TIMEOUT, call)
        .await
        .map_err(|_| "the client's metadata document did not come in time".to_string())??;
    if doc["client_id"].as_str() != Some(id) {
        return Err("the client's metadata document names another client_id".into());
    }
    // A document is public: it cannot hold a secret, and only public clients are served here.
    if doc.get("client_secret").is_some() || doc.get("client_secret_expires_at").is_some() {
        return Err("a client metadata document must not carry a client secret".into());
    }
    match doc["token_endpoint_auth_method"].as_str() {
        None | Some("none") => {}
        Some(m) => {
            return Err(format!(
                "token_endpoint_auth_method `{}` is not supported here (public clients only: none)",
                shown(m)
            ));
        }
    }
    let uris = redirect_uris(&doc["redirect_uris"])?;
    Ok(Client {
        id: id.to_string(),
        name: client_name(&doc),
        redirect_uris: uris,
        by_document: true,
    })
}

fn client_name(doc: &Value) -> Option<String> {
    doc["client_name"]
        .as_str()
        .map(|n| shown(n).chars().take(100).collect::<String>())
        .filter(|n| !n.trim().is_empty())
}

/// The redirect URIs of a document or registration, each checked.
fn redirect_uris(v: &Value) -> Result<Vec<String>, String> {
    let list = v
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or("redirect_uris must list at least one URI")?;
    if list.len() > MAX_REDIRECT_URIS {
        return Err(format!("at most {MAX_REDIRECT_URIS} redirect_uris"));
    }
    list.iter()
        .map(|u| {
            let u = u.as_str().ok_or("redirect_uris must be strings")?;
            check_redirect_uri(u)?;
            Ok(u.to_string())
        })
        .collect()
}

/// Whether a redirect URI may be used at all (whether it is the client's is checked apart).
pub fn check_redirect_uri(s: &str) -> Result<(), String> {
    if s.len() > MAX_URI_LEN {
        return Err("a redirect URI is too long".into());
    }
    let u = url::Url::parse(s).map_err(|_| format!("`{}` is not a URI", shown(s)))?;
    if u.fragment().is_some() {
        return Err("a redirect URI must have no fragment".into());
    }
    let loopback = matches!(u.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(u.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
        || u.host_str() == Some("localhost");
    let ok = match u.scheme() {
        "https" => u.host().is_some(),
        "http" => loopback,
        // A private-use scheme in reverse-domain form (`com.example.app:/cb`), never one a
        // browser runs or reads (javascript:, data:, file:).
        other => other.contains('.'),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "redirect URI `{}` must be https, http on a loopback address, or a private-use scheme like com.example.app:",
            shown(s)
        ))
    }
}

/// `POST /oauth/register` (RFC 7591): registers a public client.
pub async fn register(State(a): State<Arc<Airlock>>, body: Bytes) -> Response {
    if let Err(r) = own(&a) {
        return r;
    }
    let bad = |e: &str, d: &str| oauth_error(StatusCode::BAD_REQUEST, e, d);
    let Ok(meta) = serde_json::from_slice::<Value>(&body) else {
        return bad("invalid_client_metadata", "the body is not a JSON object");
    };
    if !meta.is_object() {
        return bad("invalid_client_metadata", "the body is not a JSON object");
    }
    let uris = match redirect_uris(&meta["redirect_uris"]) {
        Ok(u) => u,
        Err(e) => return bad("invalid_redirect_uri", &e),
    };
    match meta["token_endpoint_auth_method"].as_str() {
        None | Some("none") => {}
        Some(_) => {
            return bad(
                "invalid_client_metadata",
                "only public clients are registered here: token_endpoint_auth_method must be none",
            );
        }
    }
    let listed = |key: &str, allowed: &[&str]| {
        meta[key].as_array().is_none_or(|l| {
            l.iter()
                .all(|x| x.as_str().is_some_and(|x| allowed.contains(&x)))
        })
    };
    if !listed("grant_types", &["authorization_code", "refresh_token"]) {
        return bad(
            "invalid_client_metadata",
            "grant_types may be authorization_code and refresh_token",
        );
    }
    if !listed("response_types", &["code"]) {
        return bad("invalid_client_metadata", "response_types may be code");
    }
    let name = client_name(&meta);
    let made = a
        .store
        .register_oauth_client(name.as_deref(), &uris, MAX_REGISTERED)
        .await;
    match made {
        Ok(None) => oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "no more clients can be registered here; use a client ID metadata document",
        ),
        Ok(Some(c)) => {
            tracing::info!(client = %c.id, "OAuth client registered");
            let mut out = json!({
                "client_id": c.id,
                "client_id_issued_at": chrono::Utc::now().timestamp(),
                "redirect_uris": uris,
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            });
            if let Some(n) = name {
                out["client_name"] = json!(n);
            }
            no_store((StatusCode::CREATED, Json(out)).into_response())
        }
        Err(e) => {
            tracing::error!("OAuth client registration failed: {e:#}");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the client cannot be registered",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(loopback: bool) -> OwnServer {
        OwnServer {
            access_token_ttl: Duration::from_secs(600),
            refresh_token_ttl: Duration::from_secs(3600),
            allow_loopback_client_ids: loopback,
            upstream: None,
            api_token_sign_in: true,
        }
    }

    #[test]
    fn client_id_urls_are_https_with_a_path_and_loopback_http_only_when_allowed() {
        let s = server(false);
        assert!(check_document_url(&s, "https://app.example.com/oauth/client.json").is_ok());
        for bad in [
            "https://app.example.com/",
            "https://app.example.com",
            "http://app.example.com/client.json",
            "http://127.0.0.1:8000/client.json",
            "https://app.example.com/client.json#x",
            "https://u:p@app.example.com/client.json",
            "https://app.example.com/a/../client.json",
            "https://APP.example.com/client.json",
        ] {
            assert!(check_document_url(&s, bad).is_err(), "{bad}");
        }
        assert!(check_document_url(&server(true), "http://127.0.0.1:8000/client.json").is_ok());
        assert!(check_document_url(&server(true), "http://10.0.0.1/client.json").is_err());
    }

    #[test]
    fn redirect_uris_are_https_loopback_http_or_a_private_use_scheme() {
        for ok in [
            "https://claude.ai/api/mcp/auth_callback",
            "http://127.0.0.1:33418/callback",
            "http://localhost/cb",
            "http://[::1]:9/cb",
            "com.example.app:/oauth",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://evil.example/cb",
            "javascript:alert(1)",
            "data:text/html,x",
            "https://a.example/cb#frag",
            "file:///etc/passwd",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }
}
