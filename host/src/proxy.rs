//! The egress proxy: code that is not a connector (a Python service, a script) sends its own
//! HTTP requests upstream through a connector's gate. `/v1/proxy/{connector}/{path…}` goes to
//! the connector's `base_url` setting joined with `path`, under that connector's grants: the
//! same credential injection, path and method rules, budgets, retries, breaker, response
//! scrubbing and audit rows (naming the caller's principal) as the connector's own requests.
//! Only tokens with the `proxy` scope for the connector may use it (checked by the API).
//!
//! A write (a write method through a grant with `writes = true`) goes at once only when the
//! grant pre-approves writes; otherwise it waits as an approval (action [`APPROVAL_ACTION`]),
//! and approving it sends it once, with the approval's id as the invocation id.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error as HttpError, WasiHttpHooks};

use crate::app::Airlock;
use crate::capabilities::policy::is_write_method;
use crate::runtime::connector::InvokeError;
use crate::store::approvals::Approval;
use crate::store::audit::AuditEvent;

/// The `action` of an approval that holds a proxied write (not a connector action: the name
/// cannot be one, actions are named without `@`).
pub const APPROVAL_ACTION: &str = "@proxy";

/// The header that names the invocation (and so the audit rows) of a proxied request.
pub const INVOCATION_HEADER: &str = "x-airlock-invocation";

/// Headers that describe one hop, never forwarded either way (RFC 9110 §7.6.1), plus the
/// caller's own credentials for Airlock and what the host sets itself.
const HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "authorization",
    "cookie",
    "set-cookie",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// A caller's request, as the proxy forwards it (and an approval keeps it).
#[derive(Debug, Clone)]
pub struct ProxyRequest {
    pub method: Method,
    /// The path below the connector's `base_url`, without the leading `/`.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The upstream's answer (or the gate's, in its stead: 429 without budget, 503 breaker open).
#[derive(Debug)]
pub struct ProxyAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The invocation id its audit rows carry.
    pub invocation: String,
}

/// What asking the proxy produced.
pub enum Proxied {
    Answered(ProxyAnswer),
    /// A write waiting for an approval.
    Pending(Box<Approval>),
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request cannot be forwarded as asked (no `base_url`, a bad path).
    #[error("{0}")]
    BadRequest(String),
    /// The gate refused it (the reason is the audit row's).
    #[error("refused by the gate: {reason}")]
    Refused { reason: String, invocation: String },
    /// Allowed, but no answer came: the upstream failed, timed out, or the gate withheld it.
    #[error("{reason}")]
    Failed {
        status: StatusCode,
        reason: String,
        invocation: String,
    },
    #[error(transparent)]
    Invoke(#[from] InvokeError),
}

/// How a proxied request may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// Not a write (or the grant refuses it anyway).
    No,
    /// Through a grant that pre-approves writes.
    Preapproved,
    /// Approved by an admin.
    Approved,
}

/// Forwards `req` for `principal` (`token:NAME`), or queues it for approval when it writes.
/// The caller checked the token's scope and tenant.
pub async fn request(
    a: &Airlock,
    principal: &str,
    tenant: &str,
    connector: &str,
    req: ProxyRequest,
) -> Result<Proxied, ProxyError> {
    let c = a.connector(connector)?;
    let uri = target(a, connector, &req)?;
    let grant = c.ctx.gate.grant_for(&req.method, &uri);
    let writes = match grant {
        Some(g) if g.writes && is_write_method(&req.method) => match g.writes_preapproved {
            true => Writes::Preapproved,
            false => return queue(a, principal, tenant, connector, &req).await,
        },
        _ => Writes::No,
    };
    let invocation = ulid::Ulid::new().to_string();
    let answer = send(a, connector, principal, &invocation, req, writes).await?;
    Ok(Proxied::Answered(answer))
}

/// A request the host makes itself under the connector's grants (keeping a push subscription
/// alive, `crate::subscriptions`): the same gate, budgets and audit rows (under `principal`),
/// never queued for approval because the operator configured it; the grants still decide.
pub async fn host_request(
    a: &Airlock,
    principal: &str,
    connector: &str,
    req: ProxyRequest,
) -> Result<ProxyAnswer, ProxyError> {
    let uri = target(a, connector, &req)?;
    // Through a grant that takes writes, the operator's config is the approval; through one
    // without (`exact_paths`), it is an ordinary request.
    let writes = match a
        .connector(connector)?
        .ctx
        .gate
        .grant_for(&req.method, &uri)
    {
        Some(g) if g.writes && is_write_method(&req.method) => Writes::Approved,
        _ => Writes::No,
    };
    let invocation = ulid::Ulid::new().to_string();
    send(a, connector, principal, &invocation, req, writes).await
}

/// Sends an approved write (see `crate::approvals::approve`); the result is what the approval
/// keeps: `{status, headers, body}` (`body_base64` when the body is not UTF-8).
pub async fn run_approved(
    a: &Airlock,
    approval: &Approval,
    by: &str,
) -> Result<serde_json::Value, ProxyError> {
    let req = from_json(&approval.input).map_err(ProxyError::BadRequest)?;
    let answer = send(
        a,
        &approval.connector,
        by,
        &approval.id,
        req,
        Writes::Approved,
    )
    .await?;
    let mut headers = serde_json::Map::new();
    for (k, v) in &answer.headers {
        if let Ok(v) = v.to_str() {
            headers.insert(k.to_string(), v.into());
        }
    }
    let mut out = serde_json::json!({"status": answer.status.as_u16(), "headers": headers});
    put_body(&mut out, &answer.body);
    Ok(out)
}

/// The upstream URL: the connector's `base_url` setting joined with the caller's path.
fn target(a: &Airlock, connector: &str, req: &ProxyRequest) -> Result<http::Uri, ProxyError> {
    let c = a.connector(connector)?;
    let Some(base) = c.ctx.settings.get("base_url") else {
        return Err(ProxyError::BadRequest(format!(
            "connector `{connector}` has no `base_url` setting, so it has no upstream to proxy to"
        )));
    };
    let mut url = format!("{}/{}", base.trim_end_matches('/'), req.path);
    if let Some(q) = req.query.as_deref().filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(q);
    }
    url.parse()
        .map_err(|e| ProxyError::BadRequest(format!("not a valid upstream URL: {e}")))
}

/// One request through the connector's gate, under the connector's deadline; answered only once
/// its audit row is durable.
async fn send(
    a: &Airlock,
    connector: &str,
    principal: &str,
    invocation: &str,
    req: ProxyRequest,
    writes: Writes,
) -> Result<ProxyAnswer, ProxyError> {
    let c = a.connector(connector)?;
    let uri = target(a, connector, &req)?;
    let deadline = Instant::now() + c.limits.timeout;
    let writes_action: Option<Arc<str>> = (writes != Writes::No).then(|| Arc::from("proxy"));
    let mut hooks = c.ctx.gate.hooks(
        Arc::from(invocation),
        Some(Arc::from(principal)),
        writes_action,
        writes == Writes::Approved,
        deadline,
    );
    let mut upstream = http::Request::builder().method(req.method).uri(&uri);
    if let Some(h) = upstream.headers_mut() {
        *h = forwardable(&req.headers);
        if let Some(Ok(host)) = uri.authority().map(|a| HeaderValue::from_str(a.as_str())) {
            h.insert(header::HOST, host);
        }
    }
    let body = Full::new(req.body)
        .map_err(|never| match never {})
        .boxed_unsync();
    let upstream = upstream
        .body(body)
        .map_err(|e| ProxyError::BadRequest(format!("cannot build the request: {e}")))?;
    let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
        Box::new(std::future::ready(Ok(())));
    let sent = Box::into_pin(hooks.send_request(upstream, None, done)).await;
    let answer = match sent {
        Ok((response, _)) => {
            let (parts, body) = response.into_parts();
            match body.collect().await {
                Ok(b) => Ok((parts, b.to_bytes())),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    // Rows first, then the answer (as for every invocation).
    a.audit_durable().await?;
    match answer {
        Ok((parts, body)) => {
            let mut headers = forwardable(&parts.headers);
            if let Ok(v) = HeaderValue::from_str(invocation) {
                headers.insert(HeaderName::from_static(INVOCATION_HEADER), v);
            }
            Ok(ProxyAnswer {
                status: parts.status,
                headers,
                body,
                invocation: invocation.to_string(),
            })
        }
        Err(e) => Err(failure(a, connector, invocation, &e).await),
    }
}

/// Why the gate gave no answer, with the reason its audit row holds.
async fn failure(a: &Airlock, connector: &str, invocation: &str, e: &HttpError) -> ProxyError {
    let row = a
        .store
        .audit_latest_of(connector, invocation)
        .await
        .ok()
        .flatten();
    let reason = row.map_or_else(|| e.to_string(), |(_, reason)| reason);
    let reason = a.scrubber.scrub(&reason);
    let invocation = invocation.to_string();
    let status = match e {
        HttpError::HttpRequestDenied => return ProxyError::Refused { reason, invocation },
        HttpError::HttpResponseTimeout
        | HttpError::ConnectionTimeout
        | HttpError::ConnectionReadTimeout
        | HttpError::ConnectionWriteTimeout
        | HttpError::DnsTimeout => StatusCode::GATEWAY_TIMEOUT,
        HttpError::InternalError(Some(m)) if m.contains("audit unavailable") => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::BAD_GATEWAY,
    };
    ProxyError::Failed {
        status,
        reason,
        invocation,
    }
}

/// The headers that may cross the proxy (either way): all but hop-by-hop ones and credentials
/// for Airlock itself (the gate injects the upstream's).
fn forwardable(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in headers {
        let name = k.as_str();
        if !HOP_HEADERS.contains(&name) && !name.starts_with("x-airlock-") {
            out.append(k.clone(), v.clone());
        }
    }
    out
}

/// Queues a write for approval: what it would send is kept (scrubbed), nothing leaves.
async fn queue(
    a: &Airlock,
    principal: &str,
    tenant: &str,
    connector: &str,
    req: &ProxyRequest,
) -> Result<Proxied, ProxyError> {
    let mut input = to_json(req);
    a.scrubber.scrub_json(&mut input);
    let approval = Approval::pending(principal, tenant, connector, APPROVAL_ACTION, input);
    a.store
        .insert_approval(&approval)
        .await
        .map_err(|e| InvokeError::Trap {
            message: format!("cannot record the approval: {e:#}"),
        })?;
    a.audit.record(AuditEvent {
        connector: connector.to_string(),
        invocation: approval.id.clone(),
        event: "approval".into(),
        decision: "pending".into(),
        reason: format!(
            "`{principal}` asked to send {} /{} through the proxy",
            req.method, req.path
        ),
        principal: Some(principal.to_string()),
        ..Default::default()
    });
    a.audit_durable().await?;
    Ok(Proxied::Pending(Box::new(approval)))
}

/// A request as an approval keeps it: `{method, path, query, headers, body | body_base64}`.
fn to_json(req: &ProxyRequest) -> serde_json::Value {
    let mut headers = serde_json::Map::new();
    for (k, v) in &forwardable(&req.headers) {
        if let Ok(v) = v.to_str() {
            headers.insert(k.to_string(), v.into());
        }
    }
    let mut out = serde_json::json!({"method": req.method.as_str(), "path": req.path,
        "query": req.query, "headers": headers});
    put_body(&mut out, &req.body);
    out
}

fn put_body(out: &mut serde_json::Value, body: &[u8]) {
    match std::str::from_utf8(body) {
        Ok(text) => out["body"] = text.into(),
        Err(_) => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(body);
            out["body_base64"] = b64.into();
        }
    }
}

/// The request an approval keeps, read back.
fn from_json(v: &serde_json::Value) -> Result<ProxyRequest, String> {
    let text = |k: &str| v.get(k).and_then(|x| x.as_str());
    let method = text("method")
        .and_then(|m| m.parse().ok())
        .ok_or("the approval holds no valid method")?;
    let path = text("path")
        .ok_or("the approval holds no path")?
        .to_string();
    let mut headers = HeaderMap::new();
    for (k, val) in v
        .get("headers")
        .and_then(|h| h.as_object())
        .into_iter()
        .flatten()
    {
        if let (Ok(k), Some(Ok(val))) = (
            HeaderName::from_bytes(k.as_bytes()),
            val.as_str().map(HeaderValue::from_str),
        ) {
            headers.append(k, val);
        }
    }
    let body = match (text("body"), text("body_base64")) {
        (Some(b), _) => Bytes::from(b.to_string()),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map(Bytes::from)
            .map_err(|e| format!("the approval's body is not base64: {e}"))?,
        (None, None) => Bytes::new(),
    };
    Ok(ProxyRequest {
        method,
        path,
        query: text("query").map(str::to_string),
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_headers_and_airlock_credentials_are_never_forwarded() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer alk_secret"),
            ("cookie", "s=1"),
            ("connection", "close"),
            ("host", "127.0.0.1:8080"),
            ("x-airlock-invocation", "x"),
            ("accept", "application/json"),
            ("content-type", "application/json"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let out = forwardable(&h);
        let names: Vec<_> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept", "content-type"]);
    }

    #[test]
    fn a_kept_request_reads_back_the_same_including_binary_bodies() {
        for body in [
            Bytes::from_static(b"{\"a\":1}"),
            Bytes::from_static(&[0xff, 0, 1]),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            let req = ProxyRequest {
                method: Method::POST,
                path: "api/v3/tickets/7/comments".into(),
                query: Some("x=1".into()),
                headers,
                body: body.clone(),
            };
            let back = from_json(&to_json(&req)).unwrap();
            assert_eq!(
                (back.method, back.path, back.query, back.body),
                (req.method, req.path, req.query, body)
            );
            assert_eq!(back.headers[header::CONTENT_TYPE], "text/plain");
        }
        assert!(from_json(&serde_json::json!({"path": "x"})).is_err());
    }
}
