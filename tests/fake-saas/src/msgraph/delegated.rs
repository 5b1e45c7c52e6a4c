//! Delegated (user) sign-in at the fake's Azure AD v2 endpoints: `GET /{tenant}/oauth2/v2.0/authorize`
//! (authorization code flow; PKCE S256 required; the fake has no sign-in page, so the account
//! is the `login_hint`, which must be a user's UPN), the token endpoint's `authorization_code`
//! (the code once, its redirect URI and PKCE verifier checked) and `refresh_token` grants (every
//! refresh rotates: the refresh token used is refused from then on), and an RFC 7009 revocation
//! endpoint `POST /{tenant}/oauth2/v2.0/revoke` that ends the whole sign-in (its access tokens
//! too). Microsoft Entra ID itself has no RFC 7009 endpoint (sign-in sessions are revoked through
//! Graph's `revokeSignInSessions`); the fake offers one so that revocation can be tested.
//!
//! The token endpoint also takes the on-behalf-of grant (`grant_type=urn:ietf:params:oauth:
//! grant-type:jwt-bearer`, `requested_token_use=on_behalf_of`): a middle-tier application
//! trades the access token a person signed in to it with (the `assertion`) for a Graph token of
//! that person. Accepted once a test names the assertions' issuer and audience
//! ([`RunningFake::accept_obo_assertions`]); the assertion's issuer, audience (the middle tier's
//! application id URI, as Entra requires) and lifetime are checked, and its person
//! (`preferred_username`/`upn`) must be a user of the directory whose sign-ins are not revoked
//! ([`RunningFake::revoke_sign_ins`]). Its signature is not checked: the fake trusts whoever
//! minted it (the OIDC fake in tests).
//!
//! A user's token sees what the user may open: each drive item is readable by the users its
//! permissions name (its author and the next user in the directory) and by everyone when an
//! organization-wide sharing link exists (`/drives/{d}/items/{i}/permissions`), and `POST /search/query` with a user
//! token answers only those (Graph trims delegated searches per user; app-only ones are not).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::MsGraph;
use super::data::Data;
use crate::aad::aad_error;
use crate::common::{QueryParams, set_header};

const CODE_TTL: Duration = Duration::from_secs(600);

struct Code {
    upn: String,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    expires: Instant,
}

/// One sign-in (a code's exchange and the refreshes that follow it).
struct Family {
    upn: String,
    scope: String,
    revoked: bool,
}

struct Refresh {
    family: u64,
    used: bool,
}

/// What the fake's delegated sign-in has done, for tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegatedCounts {
    pub codes_issued: u64,
    pub codes_redeemed: u64,
    pub refreshes: u64,
    /// Refresh tokens refused because they were used before (or revoked).
    pub refused_refreshes: u64,
    pub revocations: u64,
    /// On-behalf-of exchanges answered with a token.
    pub obo_exchanges: u64,
    /// On-behalf-of exchanges refused (audience, lifetime, revoked, unknown person).
    pub refused_obo: u64,
}

#[derive(Default)]
pub(super) struct Delegated {
    n: u64,
    codes: HashMap<String, Code>,
    families: HashMap<u64, Family>,
    access: HashMap<String, (u64, Instant)>,
    refresh: HashMap<String, Refresh>,
    /// Drive item id -> the UPNs that may open it (fixed at start).
    readers: BTreeMap<String, Vec<String>>,
    counts: DelegatedCounts,
    /// On-behalf-of: the (issuer, audience) assertions must carry; None refuses the grant.
    obo: Option<(String, String)>,
    /// Users whose sign-ins were revoked: their assertions are refused.
    revoked_users: std::collections::HashSet<String>,
}

impl Delegated {
    pub(super) fn new(d: &Data) -> Delegated {
        let upns: Vec<String> = d
            .users
            .live()
            .filter_map(|u| u.json["userPrincipalName"].as_str().map(str::to_lowercase))
            .collect();
        // The users its permissions name, everyone for an organization-wide link.
        let upn_of = |id: &Value| {
            let u = d.users.live().find(|u| &u.json["id"] == id);
            u.and_then(|u| u.json["userPrincipalName"].as_str().map(str::to_lowercase))
        };
        let readers = d
            .drive
            .iter()
            .map(|item| {
                let id = item["id"].as_str().unwrap_or("").to_string();
                let perms = item["permissions"].as_array().cloned().unwrap_or_default();
                let who = if perms.iter().any(|p| p["link"]["scope"] == "organization") {
                    upns.clone()
                } else {
                    perms
                        .iter()
                        .filter_map(|p| upn_of(&p["grantedToV2"]["user"]["id"]))
                        .collect()
                };
                (id, who)
            })
            .collect();
        Delegated {
            readers,
            ..Delegated::default()
        }
    }

    /// The user a live, unrevoked access token was issued to.
    pub(super) fn user_of(&self, token: &str) -> Option<Result<&str, &'static str>> {
        let (family, exp) = self.access.get(token)?;
        let f = self.families.get(family)?;
        Some(if f.revoked {
            Err("The user or administrator has revoked the token.")
        } else if Instant::now() >= *exp {
            Err("Lifetime validation failed, the token is expired.")
        } else {
            Ok(f.upn.as_str())
        })
    }

    /// Whether `upn` may open drive item `id`.
    pub(super) fn may_read(&self, upn: &str, id: &str) -> bool {
        self.readers
            .get(id)
            .is_some_and(|r| r.iter().any(|u| u.eq_ignore_ascii_case(upn)))
    }

    fn issue(&mut self, family: u64, lifetime: u64) -> serde_json::Value {
        self.n += 1;
        let n = self.n;
        let access = format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.fake-user-{family}-{n}.sig");
        let refresh = format!("0.fake-refresh-{family}-{n}-{}", random_part());
        self.access.insert(
            access.clone(),
            (family, Instant::now() + Duration::from_secs(lifetime)),
        );
        self.refresh.insert(
            refresh.clone(),
            Refresh {
                family,
                used: false,
            },
        );
        let scope = self
            .families
            .get(&family)
            .map(|f| f.scope.clone())
            .unwrap_or_default();
        json!({"token_type": "Bearer", "scope": scope, "expires_in": lifetime,
            "ext_expires_in": lifetime, "access_token": access, "refresh_token": refresh})
    }
}

/// An Entra ID v2 id_token for `upn` (`openid` was asked): the claims a client reads the
/// signed-in account from. Its signature is not a real one: a client that took it straight from
/// the token endpoint over TLS need not check it (OpenID Connect Core 3.1.3.7).
fn id_token(g: &MsGraph, upn: &str) -> String {
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    let d = g.data();
    let user = d.users.live().find(|u| {
        u.json["userPrincipalName"]
            .as_str()
            .is_some_and(|x| x.eq_ignore_ascii_case(upn))
    });
    let (oid, name) = user
        .map(|u| {
            (
                u.json["id"].as_str().unwrap_or_default().to_string(),
                u.json["displayName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = json!({
        "aud": g.opts.client_id,
        "iss": format!("https://login.microsoftonline.com/{}/v2.0", g.opts.tenant),
        "iat": now, "nbf": now, "exp": now + 3600,
        "name": name, "oid": oid, "preferred_username": upn, "sub": format!("sub-{oid}"),
        "tid": g.opts.tenant, "ver": "2.0",
    });
    format!(
        "{}.{}.fake-signature",
        b64(json!({"typ": "JWT", "alg": "RS256", "kid": "fake"})),
        b64(claims)
    )
}

/// `GET /v1.0/me` with a user's token: the signed-in user (app-only tokens have no `me`).
pub(super) async fn me(State(g): State<Arc<MsGraph>>, headers: axum::http::HeaderMap) -> Response {
    let upn = super::auth::bearer(&headers).and_then(|t| {
        g.delegated()
            .user_of(t)
            .and_then(Result::ok)
            .map(str::to_string)
    });
    let Some(upn) = upn else {
        return super::errors::graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        );
    };
    let d = g.data();
    match d.users.live().find(|u| {
        u.json["userPrincipalName"]
            .as_str()
            .is_some_and(|x| x.eq_ignore_ascii_case(&upn))
    }) {
        Some(u) => Json(u.json.clone()).into_response(),
        None => super::errors::graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            "The signed-in user no longer exists.",
        ),
    }
}

fn random_part() -> String {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 12];
    // A failed draw leaves zeros: the counter in each token keeps it unique all the same.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `GET /{tenant}/oauth2/v2.0/authorize`.
pub(super) async fn authorize(
    State(g): State<Arc<MsGraph>>,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let field = |k: &str| q.one(k).unwrap_or_default().to_string();
    let bad = StatusCode::BAD_REQUEST;
    if tenant != g.opts.tenant {
        return aad_error(
            bad,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    if field("client_id") != g.opts.client_id {
        let msg = "Application was not found in the directory.";
        return aad_error(bad, "unauthorized_client", 700016, msg);
    }
    if field("response_type") != "code" {
        return aad_error(
            bad,
            "unsupported_response_type",
            700054,
            "response_type must be code.",
        );
    }
    let redirect_uri = field("redirect_uri");
    if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://")) {
        return aad_error(
            bad,
            "invalid_request",
            50011,
            "The redirect URI is not valid.",
        );
    }
    if field("code_challenge_method") != "S256" || field("code_challenge").len() < 43 {
        return aad_error(
            bad,
            "invalid_request",
            501491,
            "Invalid code_challenge (S256 required).",
        );
    }
    let d = g.data();
    let hint = field("login_hint").to_lowercase();
    let Some(upn) = d
        .users
        .live()
        .filter_map(|u| u.json["userPrincipalName"].as_str())
        .find(|u| u.eq_ignore_ascii_case(&hint))
        .map(str::to_lowercase)
    else {
        return aad_error(
            bad,
            "interaction_required",
            50058,
            "No account was selected (this fake signs in the user named by login_hint).",
        );
    };
    drop(d);
    let code = format!("0.fake-code-{}", random_part());
    {
        let mut del = g.delegated();
        del.counts.codes_issued += 1;
        del.codes.insert(
            code.clone(),
            Code {
                upn,
                client_id: field("client_id"),
                redirect_uri: redirect_uri.clone(),
                challenge: field("code_challenge"),
                scope: field("scope"),
                expires: Instant::now() + CODE_TTL,
            },
        );
    }
    let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let back = format!(
        "{redirect_uri}{sep}code={}&state={}",
        enc(&code),
        enc(&field("state"))
    );
    let mut resp = StatusCode::FOUND.into_response();
    set_header(&mut resp, "location", &back);
    resp
}

/// The token endpoint's delegated grants (`authorization_code`, `refresh_token`); the caller
/// has checked the tenant.
pub(super) fn token(g: &MsGraph, form: &BTreeMap<String, String>) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let bad = StatusCode::BAD_REQUEST;
    if field("client_id") != g.opts.client_id {
        let msg = "Application was not found in the directory.";
        return aad_error(bad, "unauthorized_client", 700016, msg);
    }
    if field("client_secret") != g.opts.client_secret {
        let msg = "Invalid client secret provided.";
        return aad_error(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, msg);
    }
    let lifetime = g.token_lifetime_secs.load(Ordering::Relaxed);
    // The directory's UPNs, read before the delegated lock (searches take the two the other
    // way round).
    let upns: Vec<String> = match field("grant_type") {
        OBO_GRANT => g
            .data()
            .users
            .live()
            .filter_map(|u| u.json["userPrincipalName"].as_str().map(str::to_lowercase))
            .collect(),
        _ => Vec::new(),
    };
    let mut del = g.delegated();
    // Who the id_token names: written once the lock is let go (it reads the directory, and
    // the search takes the two locks the other way round).
    let mut id_token_for = None;
    let mut reply = match field("grant_type") {
        "authorization_code" => {
            let Some(code) = del.codes.remove(field("code")) else {
                let msg = "The provided authorization code or refresh token has expired or was already used.";
                return aad_error(bad, "invalid_grant", 70008, msg);
            };
            if Instant::now() >= code.expires || code.client_id != field("client_id") {
                return aad_error(bad, "invalid_grant", 70008, "The code has expired.");
            }
            if code.redirect_uri != field("redirect_uri") {
                let msg = "The redirect URI does not match the one the code was issued to.";
                return aad_error(bad, "invalid_grant", 50148, msg);
            }
            if s256(field("code_verifier")) != code.challenge {
                let msg = "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.";
                return aad_error(bad, "invalid_grant", 501481, msg);
            }
            del.counts.codes_redeemed += 1;
            del.n += 1;
            let family = del.n;
            let openid = code.scope.split_whitespace().any(|s| s == "openid");
            let upn = code.upn.clone();
            del.families.insert(
                family,
                Family {
                    upn: code.upn,
                    scope: code.scope,
                    revoked: false,
                },
            );
            if openid {
                id_token_for = Some(upn);
            }
            del.issue(family, lifetime)
        }
        "refresh_token" => {
            let live = del.refresh.get(field("refresh_token")).and_then(|r| {
                let revoked = del.families.get(&r.family).is_none_or(|f| f.revoked);
                (!r.used && !revoked).then_some(r.family)
            });
            let Some(family) = live else {
                del.counts.refused_refreshes += 1;
                let msg = "The refresh token has been used or revoked; sign in again.";
                return aad_error(bad, "invalid_grant", 70000, msg);
            };
            if let Some(r) = del.refresh.get_mut(field("refresh_token")) {
                r.used = true;
            }
            del.counts.refreshes += 1;
            del.issue(family, lifetime)
        }
        OBO_GRANT => {
            let upn = match on_behalf_of(&del, &upns, form) {
                Ok(upn) => upn,
                Err((error, code, msg)) => {
                    del.counts.refused_obo += 1;
                    return aad_error(bad, error, code, msg);
                }
            };
            del.counts.obo_exchanges += 1;
            del.n += 1;
            let family = del.n;
            del.families.insert(
                family,
                Family {
                    upn,
                    scope: field("scope").to_string(),
                    revoked: false,
                },
            );
            del.issue(family, lifetime)
        }
        _ => {
            let msg = "The app requested an unsupported grant type.";
            return aad_error(bad, "unsupported_grant_type", 70003, msg);
        }
    };
    drop(del);
    if let Some(upn) = id_token_for {
        reply["id_token"] = json!(id_token(g, &upn));
    }
    Json(reply).into_response()
}

pub(super) const OBO_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Why the on-behalf-of grant was refused: AAD's error, code and description.
type Refusal = (&'static str, u32, &'static str);

/// Checks an on-behalf-of request; the person (UPN, lower-cased) the new token is for.
fn on_behalf_of(
    del: &Delegated,
    upns: &[String],
    form: &BTreeMap<String, String>,
) -> Result<String, Refusal> {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("requested_token_use") != "on_behalf_of" {
        let msg = "The request body must contain the parameter requested_token_use = on_behalf_of.";
        return Err(("invalid_request", 900144, msg));
    }
    let Some((issuer, audience)) = del.obo.clone() else {
        let msg = "The application is not allowed to use the on-behalf-of flow.";
        return Err(("unauthorized_client", 70001, msg));
    };
    let claims = field("assertion")
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter(Value::is_object);
    let Some(claims) = claims else {
        let msg = "JWT token is invalid or malformed.";
        return Err(("invalid_request", 50027, msg));
    };
    if claims["iss"] != issuer.as_str() {
        let msg = "The assertion was issued by another tenant or issuer.";
        return Err(("invalid_grant", 50013, msg));
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => *a == audience,
        Value::Array(a) => a.iter().any(|x| x == audience.as_str()),
        _ => false,
    };
    if !aud_ok {
        let msg = "Assertion audience does not match the Client app.";
        return Err(("invalid_grant", 50013, msg));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
        let msg = "Assertion is not within its valid time range.";
        return Err(("invalid_grant", 500133, msg));
    }
    let named = ["preferred_username", "upn"]
        .iter()
        .find_map(|c| claims[*c].as_str())
        .unwrap_or_default()
        .to_lowercase();
    let Some(upn) = upns.iter().find(|u| **u == named).cloned() else {
        let msg = "The user account does not exist in the directory.";
        return Err(("invalid_grant", 50034, msg));
    };
    if del.revoked_users.contains(&upn) {
        let msg = "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.";
        return Err(("invalid_grant", 50173, msg));
    }
    Ok(upn)
}

/// `POST /{tenant}/oauth2/v2.0/revoke` (RFC 7009): ends the sign-in the token belongs to; an
/// unknown token is not an error (RFC 7009 §2.2).
pub(super) async fn revoke(
    State(g): State<Arc<MsGraph>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if tenant != g.opts.tenant {
        let msg = format!("Tenant '{tenant}' not found.");
        return aad_error(StatusCode::BAD_REQUEST, "invalid_request", 90002, &msg);
    }
    if field("client_id") != g.opts.client_id || field("client_secret") != g.opts.client_secret {
        let msg = "Invalid client secret provided.";
        return aad_error(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, msg);
    }
    let mut del = g.delegated();
    let token = field("token");
    let family = del
        .refresh
        .get(token)
        .map(|r| r.family)
        .or_else(|| del.access.get(token).map(|(f, _)| *f));
    if let Some(f) = family.and_then(|f| del.families.get_mut(&f)) {
        f.revoked = true;
    }
    if family.is_some() {
        del.counts.revocations += 1;
    }
    StatusCode::OK.into_response()
}

impl crate::server::RunningFake<MsGraph> {
    /// Accepts on-behalf-of assertions from `issuer` whose audience is `audience` (the middle
    /// tier's application id URI).
    pub fn accept_obo_assertions(&self, issuer: &str, audience: &str) {
        self.state.delegated().obo = Some((issuer.to_string(), audience.to_string()));
    }
    /// Revokes `upn`'s sign-ins (Graph's `revokeSignInSessions`): their assertions and the
    /// tokens issued for them are refused from now on.
    pub fn revoke_sign_ins(&self, upn: &str) {
        let upn = upn.to_lowercase();
        let mut d = self.state.delegated();
        for f in d.families.values_mut().filter(|f| f.upn == upn) {
            f.revoked = true;
        }
        d.revoked_users.insert(upn);
    }
    /// The user each live (unrevoked, unexpired) delegated access token is for.
    pub fn user_of_token(&self, token: &str) -> Option<String> {
        self.state
            .delegated()
            .user_of(token)
            .and_then(Result::ok)
            .map(str::to_string)
    }
    /// `{base_url}/{tenant}/oauth2/v2.0/authorize`.
    pub fn authorize_url(&self) -> String {
        self.token_url().replace("/token", "/authorize")
    }
    /// `{base_url}/{tenant}/oauth2/v2.0/revoke`.
    pub fn revoke_url(&self) -> String {
        self.token_url().replace("/token", "/revoke")
    }
    /// What the delegated sign-in has done so far.
    pub fn delegated_counts(&self) -> DelegatedCounts {
        self.state.delegated().counts.clone()
    }
    /// Every user access and refresh token issued so far (for canary checks).
    pub fn issued_user_tokens(&self) -> Vec<String> {
        let d = self.state.delegated();
        d.access.keys().chain(d.refresh.keys()).cloned().collect()
    }
    /// The refresh tokens already used (a rotation replaced them).
    pub fn used_refresh_tokens(&self) -> Vec<String> {
        let d = self.state.delegated();
        d.refresh
            .iter()
            .filter(|(_, r)| r.used)
            .map(|(t, _)| t.clone())
            .collect()
    }
    /// The ids of the drive items `upn` may open whose name or content hold every word of
    /// `query` (what a delegated search answers), in listing order.
    pub fn delegated_search_truth(&self, upn: &str, query: &str) -> Vec<String> {
        let drive = self.state.data().drive.clone();
        let del = self.state.delegated();
        super::sharepoint::search_matches(&drive, query)
            .into_iter()
            .filter_map(|i| i["id"].as_str())
            .filter(|id| del.may_read(upn, id))
            .map(str::to_string)
            .collect()
    }
}
