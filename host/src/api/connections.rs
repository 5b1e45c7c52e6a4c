//! `/v1/connections`: people connect their own upstream accounts for `oauth2-user` grants (see
//! `capabilities::delegated`). `GET …/{connector}/authorize` starts a connect for the calling
//! principal and redirects to the upstream's sign-in; the upstream sends the browser back to
//! `GET …/{connector}/callback`, which carries no Airlock token: the single-use `state` names
//! the principal that started the connect. `GET /v1/connections` lists the caller's connections
//! (never a token), `DELETE …/{connector}` disconnects at once and revokes upstream.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::auth::{Principal, may_use};
use super::errors::error_response;
use crate::app::Airlock;
use crate::capabilities::delegated::{CallbackError, UserGrant, plausible_state};
use crate::capabilities::oauth_exchange::CallbackQuery;
use crate::store::audit::AuditEvent;

/// The connector's `oauth2-user` grant, when the principal may use the connector.
#[allow(clippy::result_large_err)]
fn user_grant(a: &Airlock, p: Option<&Principal>, id: &str) -> Result<Arc<UserGrant>, Response> {
    let missing = || {
        error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("connector `{id}` has no `oauth2-user` grant to connect"),
            None,
        )
    };
    if p.is_some_and(|p| !may_use(a, p, id)) {
        return Err(missing());
    }
    let c = a.connector(id).map_err(|_| missing())?;
    c.ctx.gate.user_grant().ok_or_else(missing)
}

fn audit(a: &Airlock, connector: &str, principal: &str, decision: &str, reason: String) {
    a.audit.record(AuditEvent {
        connector: connector.to_string(),
        invocation: ulid::Ulid::new().to_string(),
        event: "connection".into(),
        decision: decision.into(),
        reason: a.scrubber.scrub(&reason),
        principal: Some(principal.to_string()),
        ..Default::default()
    });
}

/// `GET /v1/connections`: the caller's connection to every connector of its tenant that has an
/// `oauth2-user` grant.
pub async fn list(State(a): State<Arc<Airlock>>, Extension(p): Extension<Principal>) -> Response {
    let label = p.label();
    let mut out = Vec::new();
    for id in super::auth::tenant_connectors(&a, &p) {
        let Ok(g) = user_grant(&a, Some(&p), &id) else {
            continue;
        };
        match g.status(&label).await {
            Ok(s) => out.push(s),
            Err(e) => return super::internal_error(&a, &e),
        }
    }
    Json(json!({ "principal": label, "connections": out })).into_response()
}

#[derive(Deserialize)]
pub struct AuthorizeQuery {
    /// Passed on to the upstream's sign-in (Microsoft Entra ID and most OpenID providers use it
    /// to pick the account).
    login_hint: Option<String>,
}

/// `GET /v1/connections/{connector}/authorize`: 302 to the upstream's authorize endpoint (the
/// body names the same URL, for callers that read it instead of following).
pub async fn authorize(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    Path(connector): Path<String>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    let g = match user_grant(&a, Some(&p), &connector) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let email = super::auth::email(&p);
    if g.verifies_account() && email.is_none() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!(
                "`{}` has no email, and the `{connector}` grant connects only an upstream account whose email or UPN is the principal's own (`verify_account`); connect with a token named after the person's email, or an OAuth sign-in",
                p.label()
            ),
            None,
        );
    }
    // The upstream's sign-in picks the principal's own account unless told otherwise.
    let hint = q
        .login_hint
        .filter(|h| !h.trim().is_empty() && h.len() <= 256)
        .or(email);
    match g.authorize(&p.label(), hint.as_deref()).await {
        Ok(url) => {
            let mut r = (
                StatusCode::FOUND,
                Json(json!({ "connector": connector, "authorize_url": url })),
            )
                .into_response();
            if let Ok(v) = header::HeaderValue::from_str(&url) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            r
        }
        Err(e) => super::internal_error(&a, &e),
    }
}

/// `GET /v1/connections/{connector}/callback`: where the upstream sends the browser back.
pub async fn callback(
    State(a): State<Arc<Airlock>>,
    Path(connector): Path<String>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let g = match user_grant(&a, None, &connector) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let bad = |m: String| error_response(StatusCode::BAD_REQUEST, "bad_request", &m, None);
    let Some(state) = q.state.filter(|s| plausible_state(s)) else {
        return bad("the callback needs the `state` the connect started with".into());
    };
    if let Some(err) = q.error {
        // The person declined, or the upstream refused: the state is spent all the same.
        g.abandon(&state).await;
        let detail = q
            .error_description
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        return bad(a.scrubber.scrub(&format!(
            "the upstream did not connect the account: {err}{detail}; start again at GET {}",
            g.connect_path()
        )));
    }
    let Some(code) = q.code.filter(|c| !c.is_empty()) else {
        return bad("the callback needs a `code`".into());
    };
    match g.callback(&state, &code).await {
        Ok(principal) => {
            audit(&a, &connector, &principal, "ok", "connected".into());
            let wants_html = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/html"));
            if wants_html {
                Html(format!(
                    "<!doctype html><meta charset=utf-8><title>Connected</title>\
                     <p>Your <b>{}</b> account is connected to Airlock. You can close this page.</p>",
                    html_escape(&connector)
                ))
                .into_response()
            } else {
                Json(json!({ "connector": connector, "connected": true, "principal": principal }))
                    .into_response()
            }
        }
        Err(CallbackError::Bad(e)) => bad(e),
        Err(CallbackError::NotTheirs { principal, message }) => {
            audit(&a, &connector, &principal, "denied", message.clone());
            error_response(StatusCode::FORBIDDEN, "forbidden", &message, None)
        }
    }
}

/// `DELETE /v1/connections/{connector}`: the caller's connection goes at once; the upstream is
/// asked to revoke its refresh token when the grant names a `revoke_url`.
pub async fn disconnect(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    Path(connector): Path<String>,
) -> Response {
    let g = match user_grant(&a, Some(&p), &connector) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let label = p.label();
    match g.disconnect(&label).await {
        Ok((existed, revoke_error)) => {
            if existed {
                let reason = match &revoke_error {
                    None => "disconnected".to_string(),
                    Some(e) => format!("disconnected; upstream revocation failed: {e}"),
                };
                audit(&a, &connector, &label, "ok", reason);
            }
            Json(json!({
                "connector": connector,
                "disconnected": existed,
                "revoke_error": revoke_error,
            }))
            .into_response()
        }
        Err(e) => super::internal_error(&a, &e),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
