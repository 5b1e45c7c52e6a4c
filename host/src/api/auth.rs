//! Bearer-token principals for `/v1`: the middleware that turns `Authorization: Bearer <token>`
//! into a [`Principal`] (401 when missing, unknown or revoked; 403 when an admin route is called
//! without an admin token), and what a principal may see (its tenant's connectors and routes; the
//! names a document ACL must list).

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::errors::error_response;
use crate::app::Airlock;
pub use crate::store::documents::Readers;
pub use crate::store::tokens::Principal;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token (health, readiness, metrics).
    Open,
    /// Any valid token; the answer is scoped to the principal's tenant.
    Principal,
    /// A valid admin token; still scoped to the principal's tenant.
    Admin,
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

fn unauthorized(message: &str) -> Response {
    let mut r = error_response(StatusCode::UNAUTHORIZED, "unauthenticated", message, None);
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// 401 (or 403 for a missing scope) that, with `[oauth]` configured, names the resource
/// metadata so that an MCP client can start the sign-in (RFC 9728 §5.1, RFC 6750 §3).
fn challenged(
    a: &Airlock,
    status: StatusCode,
    error: Option<(&str, &str)>,
    scope: Option<&str>,
    message: &str,
) -> Response {
    let code = match status {
        StatusCode::FORBIDDEN => "forbidden",
        _ => "unauthenticated",
    };
    let mut r = error_response(status, code, message, None);
    let value = match a.config().oauth.as_ref() {
        Some(o) => super::oauth::challenge(o, error, scope),
        None => HeaderValue::from_static("Bearer"),
    };
    r.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    r
}

/// 403 for an OAuth access token without `scope`.
pub fn insufficient_scope(a: &Airlock, scope: &str) -> Response {
    let message = format!("the access token lacks the `{scope}` scope");
    challenged(
        a,
        StatusCode::FORBIDDEN,
        Some(("insufficient_scope", &message)),
        Some(scope),
        &message,
    )
}

/// The address the daemon listens on (set by `airlock serve`).
#[derive(Debug, Clone, Copy)]
pub struct Listening(pub std::net::SocketAddr);

/// Who may read `/metrics`: anyone on a loopback listener when no `metrics_token` is set;
/// otherwise a bearer that is the metrics token or an admin API token. Fails closed when the
/// token cannot be resolved.
pub async fn metrics_access(
    a: &Arc<Airlock>,
    listen: std::net::SocketAddr,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let config = a.config();
    let token_ref = config.server.metrics_token.clone();
    if token_ref.is_none() && listen.ip().is_loopback() {
        return Ok(());
    }
    let Some(given) = bearer(headers) else {
        return Err(unauthorized(
            "/metrics needs an `Authorization: Bearer <token>` header (the metrics token or an admin token)",
        ));
    };
    if let Some(r) = token_ref {
        let expected = match crate::store::vault::Vault::open(&config.server.data_dir) {
            Ok(vault) => Ok(crate::capabilities::secrets::resolve_in(&a.store, &vault, &r).await),
            Err(e) => Err(e),
        };
        match expected {
            Ok(Ok(v)) if same_secret(&v, &given) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(m)) => tracing::error!("server.metrics_token cannot be resolved: {m}"),
            Err(e) => tracing::error!("server.metrics_token cannot be resolved: {e:#}"),
        }
    }
    let found = a.store.authenticate(&given).await;
    match found {
        Ok(Some(p)) if p.admin => Ok(()),
        Ok(Some(_)) => Err(error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "/metrics needs the metrics token or an admin token",
            None,
        )),
        _ => Err(unauthorized(
            "the bearer token is neither the metrics token nor a valid admin token",
        )),
    }
}

/// Compares two secrets in time independent of where they differ (digests of equal length).
fn same_secret(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// Authenticates the request and, for admin routes, checks the principal is an admin. The
/// token itself never reaches a log line or an error message.
pub async fn require(
    State((a, access)): State<(Arc<Airlock>, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    if access == Access::Open {
        return next.run(req).await;
    }
    let Some(token) = bearer(req.headers()) else {
        return challenged(
            &a,
            StatusCode::UNAUTHORIZED,
            None,
            None,
            "this route needs an `Authorization: Bearer <token>` header",
        );
    };
    let oauth = a.config().oauth.clone();
    let principal = match oauth.filter(|_| super::oauth::is_jwt(&token)) {
        // An access token from the identity provider.
        Some(o) => match super::oauth::principal(&a, &o, &token).await {
            Ok(p) => p,
            Err(r) => {
                let status = match r.error {
                    "insufficient_scope" => StatusCode::FORBIDDEN,
                    _ => StatusCode::UNAUTHORIZED,
                };
                return challenged(
                    &a,
                    status,
                    Some((r.error, &r.description)),
                    None,
                    &r.description,
                );
            }
        },
        None => {
            // A read connection: token checks must not queue behind sync commits or each other.
            let found = a.store.authenticate(&token).await;
            match found {
                Ok(Some(p)) => p,
                Ok(None) => {
                    return challenged(
                        &a,
                        StatusCode::UNAUTHORIZED,
                        Some(("invalid_token", "unknown or revoked")),
                        None,
                        "the bearer token is not valid (unknown or revoked)",
                    );
                }
                Err(e) => {
                    tracing::error!("token lookup failed: {e:#}");
                    return error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "cannot check the token",
                        None,
                    );
                }
            }
        }
    };
    if principal.scopes.is_some() {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|| req.uri().path().to_string());
        match super::oauth::needs(req.method(), &route) {
            super::oauth::Needs::Any => {}
            super::oauth::Needs::Scope(s) if principal.has_scope(s) => {}
            super::oauth::Needs::Scope(s) => return insufficient_scope(&a, s),
            super::oauth::Needs::Never => {
                return error_response(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "OAuth access tokens cannot use this route; it needs an API token",
                    None,
                );
            }
        }
    }
    if access == Access::Admin && !principal.admin {
        return error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this route needs an admin token",
            None,
        );
    }
    if let Some(caller) = req.extensions().get::<super::access_log::Caller>() {
        caller.set(principal.label());
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// Whether the principal may use a connector or route: it must belong to the principal's
/// tenant (a route, all of its connectors).
pub fn may_use(a: &Airlock, p: &Principal, id: &str) -> bool {
    a.config().tenant_of(id) == Some(p.tenant.as_str())
}

/// The connectors of the principal's tenant.
pub fn tenant_connectors(a: &Airlock, p: &Principal) -> Vec<String> {
    a.config()
        .connectors
        .iter()
        .filter(|c| c.tenant == p.tenant)
        .map(|c| c.id.clone())
        .collect()
}

/// The connectors and routes of the principal's tenant (audit rows name either).
pub fn tenant_ids(a: &Airlock, p: &Principal) -> Vec<String> {
    let mut ids = tenant_connectors(a, p);
    ids.extend(
        a.config()
            .routes
            .iter()
            .filter(|r| may_use(a, p, &r.name))
            .map(|r| r.name.clone()),
    );
    ids
}

/// ACL prefixes of namespaced identities: a principal's name that starts with one is not taken
/// as an identity, and neither is a group that starts with `user:` or `nobody:`, so that a
/// token or an identity-provider group called `user:X` cannot pose as upstream user X.
const NAMESPACES: [&str; 4] = ["user:", "group:", "nobody:", "everyone:"];

/// The ACL entry every principal of the connector's tenant matches (a record the upstream shows
/// to everyone signed in).
pub const EVERYONE: &str = "everyone:";

/// The principal's email: its name when that is one (an OAuth principal's email or UPN, or a
/// token named after a person).
pub fn email(p: &Principal) -> Option<String> {
    crate::store::tokens::name_email(&p.name)
}

/// Whom a principal reads as: its name and groups for every connector of its tenant (a group
/// both bare and as `group:NAME`), per connector the upstream user id its email maps to
/// (`user:ID`) and what the connector resolved for it (`upstream`: `user:ID`, `group:ID`), and
/// the tenant's connectors whose records without an ACL are tenant-wide.
pub fn readers(
    a: &Airlock,
    p: &Principal,
    upstream: &super::upstream_identities::Upstream,
) -> Readers {
    let mut r = Readers {
        common: common_identities(p),
        ..Readers::default()
    };
    let email = email(p);
    for c in a
        .config()
        .connectors
        .iter()
        .filter(|c| c.tenant == p.tenant)
    {
        if c.permissions == crate::config::Permissions::Tenant {
            r.open.push(c.id.clone());
        }
        let mut own: Vec<String> = email
            .as_ref()
            .and_then(|e| c.users.get(e))
            .map(|id| format!("user:{id}"))
            .into_iter()
            .chain(upstream.identities(&c.id))
            .collect();
        own.sort();
        own.dedup();
        if !own.is_empty() {
            r.by_connector.insert(c.id.clone(), own);
        }
    }
    r
}

/// The identities a principal has for every connector: its name, and each group bare and as
/// `group:NAME`; reserved prefixes are not taken from names (see [`NAMESPACES`]).
fn common_identities(p: &Principal) -> Vec<String> {
    let reserved = |n: &str| NAMESPACES.iter().any(|ns| n.starts_with(ns));
    let mut common: Vec<String> = vec![EVERYONE.to_owned()];
    if !reserved(&p.name) {
        common.push(p.name.clone());
    }
    for g in &p.groups {
        if g.starts_with("group:") {
            // Already in ACL form.
            common.push(g.clone());
        } else if !reserved(g) {
            common.push(g.clone());
            common.push(format!("group:{g}"));
        }
    }
    common.sort();
    common.dedup();
    common
}

/// The principal's user id upstream at `connector` (what `check-permission` is asked about):
/// the one `[connector.users]` maps its email to, else the one the connector resolved.
pub fn upstream_user(
    a: &Airlock,
    p: &Principal,
    connector: &str,
    upstream: &super::upstream_identities::Upstream,
) -> Option<String> {
    let e = email(p)?;
    let config = a.config();
    let c = config.connector(connector)?;
    if c.tenant != p.tenant {
        return None;
    }
    c.users
        .get(&e)
        .cloned()
        .or_else(|| upstream.user(connector).map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_groups_cannot_pose_as_upstream_users() {
        let p = Principal {
            token_id: "t".into(),
            name: "user:557058:abc".into(),
            tenant: "default".into(),
            groups: vec![
                "eng".into(),
                "group:hr".into(),
                "user:x".into(),
                "nobody:".into(),
            ],
            admin: false,
            proxy: vec![],
            scopes: None,
        };
        assert_eq!(
            common_identities(&p),
            vec!["eng", "everyone:", "group:eng", "group:hr"]
        );
        assert_eq!(email(&p), None);
        let ada = Principal {
            name: "Ada.Adams@Contoso.com".into(),
            ..p
        };
        assert_eq!(email(&ada).as_deref(), Some("ada.adams@contoso.com"));
    }

    #[test]
    fn only_well_formed_bearer_headers_yield_a_token() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            bearer(&m)
        };
        assert_eq!(h("Bearer alk_x").as_deref(), Some("alk_x"));
        assert_eq!(h("bearer  alk_x ").as_deref(), Some("alk_x"));
        assert_eq!(h("Basic alk_x"), None);
        assert_eq!(h("Bearer "), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
