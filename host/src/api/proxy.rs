//! `/v1/proxy/{connector}/{path…}`: the egress proxy's face (see `crate::proxy`). The caller's
//! method, path, query, headers and body go upstream through the connector's gate; the
//! upstream's answer comes back as it was sent (status, headers, body), except that hop-by-hop
//! headers and cookies are dropped and `x-airlock-invocation` names the audit rows. Errors of
//! the proxy itself use the API's JSON shape.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;

use super::auth::{self, Principal};
use super::errors::{Forwarded, error_response};
use crate::app::Airlock;
use crate::proxy::{Proxied, ProxyError, ProxyRequest};

pub async fn proxy(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    Path((connector, _)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Another tenant's connector answers exactly like one that does not exist.
    if !auth::may_use(&a, &p, &connector) || !a.has_connector(&connector) {
        return error_response(
            StatusCode::NOT_FOUND,
            "no-such-connector",
            &format!("no connector `{connector}` is configured"),
            None,
        );
    }
    if !p.may_proxy(&connector) {
        return error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!(
                "this token has no `proxy` scope for connector `{connector}` (create one with \
                 `airlock tokens create --principal NAME --proxy {connector}`)"
            ),
            None,
        );
    }
    // The path as sent (still percent-encoded), not the decoded one: it goes upstream as is.
    let path = uri
        .path()
        .splitn(5, '/')
        .nth(4)
        .unwrap_or_default()
        .to_string();
    let req = ProxyRequest {
        method,
        path,
        query: uri.query().map(str::to_string),
        headers,
        body,
    };
    let principal = p.label();
    match crate::proxy::request(&a, &principal, &p.tenant, &connector, req).await {
        Ok(Proxied::Answered(answer)) => {
            let mut r = (answer.status, answer.headers, answer.body).into_response();
            r.extensions_mut().insert(Forwarded);
            r
        }
        Ok(Proxied::Pending(approval)) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "approval": approval })),
        )
            .into_response(),
        Err(e) => proxy_error(&a, e),
    }
}

fn proxy_error(a: &Airlock, e: ProxyError) -> Response {
    let message = a.scrubber.scrub(&e.to_string());
    let (status, code, invocation) = match e {
        ProxyError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid-input", None),
        ProxyError::Refused { invocation, .. } => {
            (StatusCode::FORBIDDEN, "denied", Some(invocation))
        }
        ProxyError::Failed {
            status, invocation, ..
        } => (status, "upstream", Some(invocation)),
        ProxyError::Invoke(e) => return super::invoke_error(a, e),
    };
    let mut r = error_response(status, code, &message, None);
    if let Some(Ok(v)) = invocation.map(|i| i.parse()) {
        r.headers_mut().insert(crate::proxy::INVOCATION_HEADER, v);
    }
    r
}
