//! The policy step: everything decided before a byte leaves. The request's target is read and
//! put in one normal form, matched against the grants (deny by default), checked for method
//! overrides, writes outside an approved write action and literal addresses the grant does not
//! allow; then its body is buffered, bounded. A refusal is the reason, audited as `deny`.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use wasmtime_wasi_http::WasiBody;

use super::super::address::is_metadata_host;
use super::super::grant::Grant;
use super::super::net::check_literal_ip;
use super::super::path::{method_override_param, normalize};
use super::super::policy::{HostPattern, Target, find_grant, is_write_method};
use super::ConnectorGate;
use crate::store::audit::AuditEvent;

/// A request the grants allow, ready for credentials.
pub(super) struct Admitted {
    pub parts: http::request::Parts,
    pub body: Bytes,
    /// The grant it goes through (index into the gate's grants).
    pub grant: usize,
}

/// What the invocation may do with write methods.
pub(super) struct WriteScope<'a> {
    /// The action's name when the invocation runs an action marked `writes`.
    pub action: Option<&'a str>,
    /// Whether that action's writes were approved (or run by the operator's own code).
    pub approved: bool,
}

/// The request's target, lowercased, with the port its scheme implies.
struct Aim {
    scheme: String,
    host: String,
    port: u16,
    raw_path: String,
}

impl ConnectorGate {
    /// Admits the request through one of the grants, or says why not. Fills the audit row's
    /// target as it learns it (the normalised path once there is one, and the grant's name).
    pub(super) async fn admit(
        &self,
        ev: &mut AuditEvent,
        mut parts: http::request::Parts,
        body: WasiBody,
        writes: WriteScope<'_>,
    ) -> Result<Admitted, String> {
        let aim = aim(&parts, ev);
        if aim.host.is_empty() {
            return Err("request has no host".into());
        }
        if is_metadata_host(&aim.host) {
            return Err(format!(
                "{} is a cloud metadata host name; never reachable",
                aim.host
            ));
        }
        // One normal form: matched against the grants, audited and sent.
        let path = normalize(&aim.raw_path).map_err(|reason| format!("path refused: {reason}"))?;
        ev.path = Some(path.clone());
        if let Some(reason) = method_override(&parts) {
            return Err(reason);
        }
        let target = Target {
            method: &parts.method,
            scheme: &aim.scheme,
            host: &aim.host,
            port: aim.port,
            path: &path,
        };
        let idx = find_grant(&self.grants, &target)?;
        let grant = &self.grants[idx];
        ev.grant = Some(grant.name.clone());
        // Write actions stay off by default: their write requests need a grant with writes,
        // and an approved invocation; a writes grant carries no other write.
        if is_write_method(&parts.method)
            && let Some(reason) = write_refusal(grant, writes.action, writes.approved)
        {
            return Err(reason);
        }
        literal_ip_allowed(grant, &aim.host)?;
        if path != aim.raw_path {
            parts.uri = with_path(&parts.uri, &path)?;
        }
        let body = self.buffer(body).await?;
        Ok(Admitted {
            parts,
            body,
            grant: idx,
        })
    }

    /// The grant a request with this method and URI would go through, if any (what the egress
    /// proxy reads to tell a write that needs approval from a request that may go at once; the
    /// request itself is admitted by `ConnectorGate::admit` like any other).
    pub fn grant_for(&self, method: &http::Method, uri: &http::Uri) -> Option<&Grant> {
        let (parts, ()) = http::Request::builder()
            .method(method.clone())
            .uri(uri.clone())
            .body(())
            .ok()?
            .into_parts();
        let aim = aim(&parts, &mut AuditEvent::default());
        let path = normalize(&aim.raw_path).ok()?;
        let target = Target {
            method,
            scheme: &aim.scheme,
            host: &aim.host,
            port: aim.port,
            path: &path,
        };
        find_grant(&self.grants, &target)
            .ok()
            .map(|i| &self.grants[i])
    }

    /// The whole body, bounded: it makes the size limit exact and keeps the request replayable
    /// for retries.
    async fn buffer(&self, body: WasiBody) -> Result<Bytes, String> {
        let max = self.limits.max_request_bytes;
        match Limited::new(body, max).collect().await {
            Ok(b) => Ok(b.to_bytes()),
            Err(e) => Err(format!(
                "request body unreadable or larger than {max} bytes: {e}"
            )),
        }
    }
}

/// Reads the target into the audit row as sent (before normalising).
fn aim(parts: &http::request::Parts, ev: &mut AuditEvent) -> Aim {
    let scheme = parts
        .uri
        .scheme_str()
        .unwrap_or("https")
        .to_ascii_lowercase();
    let host = parts
        .uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = parts
        .uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let raw_path = parts.uri.path().to_string();
    ev.method = Some(parts.method.to_string());
    ev.scheme = Some(scheme.clone());
    ev.host = Some(host.clone());
    ev.port = Some(port);
    ev.path = Some(raw_path.clone());
    Aim {
        scheme,
        host,
        port,
        raw_path,
    }
}

/// Literal IPs never reach the resolver, so their address class is checked here.
fn literal_ip_allowed(grant: &Grant, host: &str) -> Result<(), String> {
    let Ok(ip) = host.parse::<std::net::IpAddr>() else {
        return Ok(());
    };
    let named = matches!(&grant.host, HostPattern::Exact(h) if h.parse() == Ok(ip));
    match check_literal_ip(ip, grant.allow_private, named) {
        Some(class) => Err(format!(
            "{ip} is {class}; grant[{}] does not allow it",
            grant.index
        )),
        None => Ok(()),
    }
}

/// Headers that ask the upstream (or a proxy in front of it) to treat the request as another
/// method: a GET or a permitted POST could then act as a DELETE the grant never allowed.
const METHOD_OVERRIDE_HEADERS: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Why a request asking for another method is refused, if it does.
fn method_override(parts: &http::request::Parts) -> Option<String> {
    if let Some(h) = METHOD_OVERRIDE_HEADERS
        .iter()
        .find(|h| parts.headers.contains_key(**h))
    {
        return Some(format!(
            "header `{h}` is refused: the request's method is the one the grant checks"
        ));
    }
    let param = method_override_param(parts.uri.query()?)?;
    Some(format!(
        "query parameter `{param}` is refused: the request's method is the one the grant checks"
    ))
}

/// `uri` with its path replaced by the normalised one (the query kept as sent).
fn with_path(uri: &http::Uri, path: &str) -> Result<http::Uri, String> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut p = uri.clone().into_parts();
    p.path_and_query = Some(
        pq.parse()
            .map_err(|e| format!("normalised path is not a valid URI path: {e}"))?,
    );
    http::Uri::from_parts(p).map_err(|e| format!("normalised URI is invalid: {e}"))
}

/// Why a write request (POST, PUT, PATCH, DELETE...) may not go through `grant`, if it may not.
fn write_refusal(grant: &Grant, writes_action: Option<&str>, approved: bool) -> Option<String> {
    match (writes_action, grant.writes) {
        (Some(action), false) => Some(format!(
            "action `{action}` writes, and grant[{}] does not allow writes (set writes = true on the grant)",
            grant.index
        )),
        (Some(action), true) if !approved && !grant.writes_preapproved => Some(format!(
            "action `{action}` writes and this invocation was not approved (see `airlock approvals`), and grant[{}] does not pre-approve writes",
            grant.index
        )),
        (None, true) => Some(format!(
            "grant[{}] allows writes only inside an approved write action",
            grant.index
        )),
        _ => None,
    }
}
