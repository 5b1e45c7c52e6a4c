//! MCP authorization, the resource-server half (RFC 9728, RFC 8707, RFC 6750): access tokens
//! issued by the company's identity provider for this server are JWTs, checked per request
//! against the issuer's published keys (signature, issuer, audience = our resource, expiry),
//! and turned into a [`Principal`]: the person (email/UPN), their groups, the `[oauth]`
//! tenant, and the scopes that bound what the token may do. `/.well-known/oauth-protected-resource`
//! tells clients which authorization server to use; a refused `/mcp` request points there in
//! `WWW-Authenticate`.
//!
//! The JWT checks are `jsonwebtoken`'s; the keys are fetched (OpenID discovery, then JWKS)
//! through the daemon's outbound client and kept for an hour; a token naming a key not seen yet
//! (the issuer rotated) fetches them again, at most once every 30 s.
//!
//! With Airlock as its own authorization server (`crate::api::authorization`) the same checks
//! run against its own key, and a token also needs its grant (`sid`) and the API token behind it
//! to be live: revoking either ends the session at once, not when the token expires.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use super::errors::error_response;
use crate::app::Airlock;
use crate::config::OAUTH_SCOPES as SCOPES;
use crate::config::OAuth;
use crate::store::tokens::Principal;

/// Keys are used this long before they are fetched again.
const KEYS_TTL: Duration = Duration::from_secs(3600);
/// An unknown key id fetches the keys again, but not more often than this.
const REFETCH_GAP: Duration = Duration::from_secs(30);
/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 60;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What a route asks of an OAuth access token.
#[derive(Debug, PartialEq, Eq)]
pub enum Needs {
    /// Any valid token for this resource (`/mcp` itself: each tool call checks its own).
    Any,
    Scope(&'static str),
    /// Not open to access tokens at all (admin work, the egress proxy, hooks): API tokens only.
    Never,
}

/// The scope each route needs (by method and route pattern).
pub fn needs(method: &Method, route: &str) -> Needs {
    match (method.as_str(), route) {
        (_, "/mcp") => Needs::Any,
        ("POST", "/v1/search") | ("POST", "/v1/ask") | ("GET", "/v1/changes") => {
            Needs::Scope("search")
        }
        ("GET", "/v1/connectors")
        | ("GET", "/v1/whoami")
        | ("GET", "/v1/sync")
        | ("GET", "/v1/activity")
        | ("GET", "/v1/openapi.json")
        | ("GET", "/v1/documents/{connector}/{kind}/{id}") => Needs::Scope("read"),
        ("POST", "/v1/connectors/{id}/invoke") => Needs::Scope("actions"),
        // A person connects their own upstream account to run actions as themselves.
        ("GET", "/v1/connections") => Needs::Scope("read"),
        ("GET", "/v1/connections/{connector}/authorize")
        | ("DELETE", "/v1/connections/{connector}") => Needs::Scope("actions"),
        ("GET", "/v1/approvals") | ("GET", "/v1/approvals/{id}") => Needs::Scope("writes"),
        _ => Needs::Never,
    }
}

/// Whether the bearer looks like a JWT (three base64url parts), not an API token.
pub fn is_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty())
}

/// Why a token was refused: the RFC 6750 error code and a description for people.
#[derive(Debug)]
pub struct Refused {
    pub error: &'static str,
    pub description: String,
}

fn refused(error: &'static str, description: impl Into<String>) -> Refused {
    Refused {
        error,
        description: description.into(),
    }
}

/// Checks an access token and returns the person it stands for.
pub async fn principal(a: &Airlock, o: &OAuth, token: &str) -> Result<Principal, Refused> {
    let head = jsonwebtoken::decode_header(token)
        .map_err(|_| refused("invalid_token", "the access token is not a well-formed JWT"))?;
    // Only the issuer's public-key algorithms: a symmetric one would let anyone who read the
    // public key sign tokens.
    if matches!(
        head.alg,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return Err(refused(
            "invalid_token",
            "the access token is signed with a shared-secret algorithm",
        ));
    }
    let kid = head.kid.clone().unwrap_or_default();
    let set = match o.is_own() {
        true => super::authorization::keys::signing_key(a)
            .await
            .map(|k| k.jwks())
            .map_err(|e| {
                tracing::error!("the OAuth signing key cannot be loaded: {e:#}");
                refused("invalid_token", "cannot check the token")
            })?,
        false => issuer_keys(a, &Issuer::of(o), &kid)
            .await
            .map_err(|e| refused("invalid_token", format!("cannot check the token: {e}")))?,
    };
    let jwk = match kid.is_empty() {
        true if set.keys.len() == 1 => &set.keys[0],
        _ => set.find(&kid).ok_or_else(|| {
            refused(
                "invalid_token",
                "the access token is signed with a key the issuer does not publish",
            )
        })?,
    };
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|_| refused("invalid_token", "the issuer's key cannot be used"))?;
    let mut v = Validation::new(head.alg);
    v.set_issuer(&[o.issuer.as_str()]);
    v.set_audience(&[o.resource.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    let data = jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        let why = match e.kind() {
            K::ExpiredSignature => "the access token has expired",
            K::ImmatureSignature => "the access token is not valid yet",
            K::InvalidAudience => "the access token was issued for another resource (audience)",
            K::InvalidIssuer => "the access token comes from another issuer",
            K::InvalidSignature => "the access token's signature does not verify",
            K::MissingRequiredClaim(_) => "the access token lacks exp, iss or aud",
            _ => "the access token is not valid",
        };
        refused("invalid_token", why)
    })?;
    let claims = data.claims;
    let (name, mut groups) =
        person_in(&claims, &o.identity_claims, &o.groups_claim).map_err(|none_of| {
            refused(
                "invalid_token",
                format!("the access token names nobody (none of {none_of})"),
            )
        })?;
    // Entra puts delegated scopes in `scp`, others in `scope`; both space-separated.
    let scopes: Vec<String> = ["scp", "scope"]
        .iter()
        .find_map(|c| claims[*c].as_str())
        .unwrap_or("")
        .split_whitespace()
        .filter(|s| SCOPES.iter().any(|(k, _)| k == s))
        .map(str::to_string)
        .collect();
    if scopes.is_empty() {
        return Err(refused(
            "insufficient_scope",
            "the access token carries none of Airlock's scopes",
        ));
    }
    if !o.is_own() && super::entra_groups::overage(&claims, &o.groups_claim) {
        groups = super::entra_groups::resolve(a, o.groups_overage.as_ref(), &claims, &name).await;
    }
    let sub = claims["sub"].as_str().unwrap_or(&name).to_string();
    let tenant = match o.is_own() {
        true => own_session(a, &claims).await?,
        false => o.tenant.clone(),
    };
    let p = Principal {
        token_id: format!("oauth:{sub}"),
        name,
        tenant,
        groups,
        admin: false,
        proxy: Vec::new(),
        scopes: Some(scopes),
    };
    // The identity provider's token is what an on-behalf-of grant trades for the person's
    // upstream token; kept only when some grant does.
    let obo = a
        .config()
        .grants
        .iter()
        .any(|g| matches!(g.auth, crate::config::AuthConfig::OnBehalfOf(_)));
    if obo
        && !o.is_own()
        && let Some(exp) = claims["exp"].as_i64()
    {
        crate::capabilities::on_behalf_of::remember(&p.label(), token, exp);
    }
    Ok(p)
}

/// The person a token's claims name: the first of `identity_claims` present (trimmed, not
/// blank) and the list in `groups_claim`. Err: the claims looked for, for the message.
pub fn person_in(
    claims: &Value,
    identity_claims: &[String],
    groups_claim: &str,
) -> Result<(String, Vec<String>), String> {
    let name = identity_claims
        .iter()
        .find_map(|c| {
            claims[c.as_str()]
                .as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
        })
        .ok_or_else(|| identity_claims.join(", "))?
        .to_string();
    let groups = claims[groups_claim]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok((name, groups))
}

/// For a token of Airlock's own authorization server: its grant and the API token behind it
/// must be live; returns the tenant (the API token's).
async fn own_session(a: &Airlock, claims: &Value) -> Result<String, Refused> {
    let sid = claims["sid"].as_str().unwrap_or_default().to_string();
    let grant = a.store.live_oauth_grant(&sid).await.map_err(|e| {
        tracing::error!("OAuth grant lookup failed: {e:#}");
        refused("invalid_token", "cannot check the token")
    })?;
    match grant {
        Some(g) if claims["tenant"].as_str() == Some(g.principal.tenant.as_str()) => {
            Ok(g.principal.tenant)
        }
        _ => Err(refused(
            "invalid_token",
            "the sign-in behind the access token was revoked",
        )),
    }
}

struct Kept {
    set: Arc<JwkSet>,
    at: Instant,
    /// When an unknown key id last made us fetch again (bounds fetches a stream of made-up
    /// key ids could cause).
    refetched: Option<Instant>,
}

/// Keys per issuer, for this process.
static KEYS: LazyLock<tokio::sync::Mutex<HashMap<String, Kept>>> = LazyLock::new(Default::default);

/// An issuer of tokens this server checks: the company's identity provider for access tokens,
/// or the OpenID provider people sign in with at the own authorization server.
pub struct Issuer<'a> {
    pub issuer: &'a str,
    /// Where its keys are (default: `jwks_uri` of its OpenID configuration).
    pub jwks_url: Option<&'a str>,
    /// It may be reached on a private address.
    pub allow_private: bool,
}

impl<'a> Issuer<'a> {
    fn of(o: &'a OAuth) -> Issuer<'a> {
        Issuer {
            issuer: &o.issuer,
            jwks_url: o.jwks_url.as_deref(),
            allow_private: o.allow_private,
        }
    }
}

/// The issuer's OpenID configuration (discovery), which must name the issuer itself.
pub async fn openid_configuration(a: &Airlock, i: &Issuer<'_>) -> Result<Value, String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        i.issuer.trim_end_matches('/')
    );
    let doc = get_json(a, i.allow_private, &url).await?;
    // OpenID Connect Discovery §4.3: the document must be the issuer's own.
    if doc["issuer"].as_str() != Some(i.issuer) {
        return Err(format!(
            "the OpenID configuration at {url} names another issuer"
        ));
    }
    Ok(doc)
}

/// The issuer's keys: kept ones while fresh and naming `kid`, fetched otherwise.
pub async fn issuer_keys(a: &Airlock, i: &Issuer<'_>, kid: &str) -> Result<Arc<JwkSet>, String> {
    let mut map = KEYS.lock().await;
    let mut refetched = None;
    if let Some(k) = map.get(i.issuer) {
        let fresh = k.at.elapsed() < KEYS_TTL;
        let knows = kid.is_empty() || k.set.find(kid).is_some();
        let may_refetch = k.refetched.is_none_or(|t| t.elapsed() >= REFETCH_GAP);
        if fresh && (knows || !may_refetch) {
            return Ok(k.set.clone());
        }
        if fresh {
            refetched = Some(Instant::now());
        }
    }
    let jwks_url = match i.jwks_url {
        Some(u) => u.to_string(),
        None => openid_configuration(a, i).await?["jwks_uri"]
            .as_str()
            .ok_or_else(|| format!("the OpenID configuration of {} has no jwks_uri", i.issuer))?
            .to_string(),
    };
    let set: JwkSet = serde_json::from_value(get_json(a, i.allow_private, &jwks_url).await?)
        .map_err(|e| format!("the keys at {jwks_url} are not a JWK set ({e})"))?;
    let set = Arc::new(set);
    map.insert(
        i.issuer.to_string(),
        Kept {
            set: set.clone(),
            at: Instant::now(),
            refetched,
        },
    );
    Ok(set)
}

async fn get_json(a: &Airlock, allow_private: bool, url: &str) -> Result<Value, String> {
    let req = http::Request::get(url)
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("cannot ask {url}: {e}"))?;
    let client = a.net().client(allow_private);
    let call = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("cannot read {url}: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("{url} answered {status}"));
        }
        serde_json::from_slice(&body).map_err(|_| format!("{url} did not answer JSON"))
    };
    tokio::time::timeout(FETCH_TIMEOUT, call)
        .await
        .map_err(|_| format!("{url} did not answer within {FETCH_TIMEOUT:?}"))?
}

/// Where this resource's metadata is (RFC 9728 §3.1: the well-known path goes between the
/// host and the resource's path).
pub fn metadata_url(o: &OAuth) -> String {
    match url::Url::parse(&o.resource) {
        Ok(u) => {
            let origin = u.origin().ascii_serialization();
            let path = u.path().trim_end_matches('/');
            format!("{origin}/.well-known/oauth-protected-resource{path}")
        }
        Err(_) => o.resource.clone(),
    }
}

/// `GET /.well-known/oauth-protected-resource[/mcp]` (RFC 9728): open; 404 without `[oauth]`.
pub async fn resource_metadata(State(a): State<Arc<Airlock>>) -> Response {
    let Some(o) = a.config().oauth.clone() else {
        return error_response(
            StatusCode::NOT_FOUND,
            "not-found",
            "this server takes no OAuth access tokens (no [oauth] in its config)",
            None,
        );
    };
    let scopes: Vec<&str> = SCOPES.iter().map(|(s, _)| *s).collect();
    // With `authorization_server = "self"` the issuer is Airlock itself (this server's origin).
    Json(json!({
        "resource": o.resource,
        "authorization_servers": [o.issuer],
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
        "resource_name": "Airlock",
    }))
    .into_response()
}

/// The `WWW-Authenticate` challenge: where the metadata is, and the error when there is one.
pub fn challenge(o: &OAuth, error: Option<(&str, &str)>, scope: Option<&str>) -> HeaderValue {
    let mut v = format!(
        "Bearer resource_metadata=\"{}\"",
        metadata_url(o).replace('"', "")
    );
    if let Some((code, description)) = error {
        v.push_str(&format!(
            ", error=\"{code}\", error_description=\"{}\"",
            description.replace(['"', '\\'], "'")
        ));
    }
    if let Some(s) = scope {
        v.push_str(&format!(", scope=\"{s}\""));
    }
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_the_scope_of_what_they_do_and_admin_work_is_never_open_to_tokens() {
        assert_eq!(needs(&Method::POST, "/v1/search"), Needs::Scope("search"));
        assert_eq!(
            needs(&Method::GET, "/v1/documents/{connector}/{kind}/{id}"),
            Needs::Scope("read")
        );
        assert_eq!(
            needs(&Method::POST, "/v1/connectors/{id}/invoke"),
            Needs::Scope("actions")
        );
        assert_eq!(needs(&Method::POST, "/mcp"), Needs::Any);
        for (m, r) in [
            (Method::GET, "/v1/audit"),
            (Method::POST, "/v1/sync/{id}"),
            (Method::POST, "/v1/approvals/{id}/approve"),
            (Method::GET, "/v1/proxy/{connector}/{*path}"),
        ] {
            assert_eq!(needs(&m, r), Needs::Never, "{m} {r}");
        }
    }

    #[test]
    fn the_metadata_url_puts_the_well_known_path_before_the_resource_path() {
        let o = OAuth {
            issuer: "https://idp.example.com".into(),
            resource: "https://airlock.example.com/mcp".into(),
            jwks_url: None,
            tenant: "default".into(),
            identity_claims: vec!["email".into()],
            groups_claim: "groups".into(),
            allow_private: false,
            allow_insecure: false,
            own: None,
            groups_overage: None,
        };
        assert_eq!(
            metadata_url(&o),
            "https://airlock.example.com/.well-known/oauth-protected-resource/mcp"
        );
        let c = challenge(
            &o,
            Some(("invalid_token", "it \"expired\"")),
            Some("search"),
        );
        let c = c.to_str().expect("ascii");
        assert!(c.starts_with("Bearer resource_metadata=\"https://airlock.example.com/.well-known/oauth-protected-resource/mcp\""));
        assert!(c.contains("error=\"invalid_token\""));
        assert!(c.contains("error_description=\"it 'expired'\""));
        assert!(c.contains("scope=\"search\""));
    }

    #[test]
    fn only_three_part_bearers_are_taken_for_jwts() {
        assert!(is_jwt("a.b.c"));
        assert!(!is_jwt("alk_0123"));
        assert!(!is_jwt("a..c"));
    }
}
