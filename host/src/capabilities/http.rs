//! The outbound gate: every `wasi:http` request a connector makes arrives here
//! (`WasiHttpHooks::send_request`). Deny by default: match a grant, check the address, strip
//! guest-set credential headers, inject the grant's auth, send on the pooled client with
//! timeouts and a response-size cap, and audit the decision either way. Redirects are returned
//! to the connector, never followed here.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

use crate::config::{Grant, Limits};
use crate::scrub::Scrubber;
use crate::store::audit::{AuditEvent, AuditLog};

use super::auth::GrantAuth;
use super::net::{Net, check_ip, error_chain, find_address_denied};
use super::policy::{Target, find_grant};

type SendResult = Result<
    (
        Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

/// The gate of one connector: its grants, their credentials, and the shared client.
pub struct ConnectorGate {
    pub connector: String,
    grants: Vec<Grant>,
    auths: Vec<GrantAuth>,
    net: Arc<Net>,
    audit: AuditLog,
    scrubber: Scrubber,
    limits: Limits,
    metrics: Arc<crate::metrics::Metrics>,
    /// Headers a guest may never set: credentials in general and each grant's auth header.
    credential_headers: Arc<HashSet<HeaderName>>,
}

/// What every connector's gate shares: the pooled client and where decisions are reported.
#[derive(Clone)]
pub struct GateDeps {
    pub net: Arc<Net>,
    pub audit: AuditLog,
    pub scrubber: Scrubber,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl ConnectorGate {
    pub fn new(
        connector: String,
        grants: Vec<Grant>,
        auths: Vec<GrantAuth>,
        limits: Limits,
        deps: GateDeps,
    ) -> ConnectorGate {
        let GateDeps {
            net,
            audit,
            scrubber,
            metrics,
        } = deps;
        let mut credential_headers: HashSet<HeaderName> = [
            header::AUTHORIZATION,
            header::COOKIE,
            header::PROXY_AUTHORIZATION,
        ]
        .into_iter()
        .collect();
        credential_headers.extend(auths.iter().filter_map(GrantAuth::header_name));
        ConnectorGate {
            connector,
            grants,
            auths,
            net,
            audit,
            scrubber,
            limits,
            metrics,
            credential_headers: Arc::new(credential_headers),
        }
    }

    /// The hooks for one invocation's store.
    /// `writes_action`: the invocation runs an action marked `writes`.
    pub fn hooks(
        self: &Arc<Self>,
        invocation: Arc<str>,
        writes_action: Option<Arc<str>>,
    ) -> InvocationHooks {
        InvocationHooks {
            gate: self.clone(),
            invocation,
            writes_action,
        }
    }

    fn event(&self, invocation: &str) -> AuditEvent {
        AuditEvent {
            connector: self.connector.clone(),
            invocation: invocation.to_string(),
            event: "http".into(),
            ..Default::default()
        }
    }

    /// A refused request: audited as `deny`, answered with HttpRequestDenied.
    fn deny(&self, ev: AuditEvent, started: Instant, reason: String) -> HttpError {
        self.reject(ev, started, "deny", reason, HttpError::HttpRequestDenied)
    }

    /// An allowed request that failed upstream: audited as `error`.
    fn fail(&self, ev: AuditEvent, started: Instant, reason: String, err: HttpError) -> HttpError {
        self.reject(ev, started, "error", reason, err)
    }

    fn reject(
        &self,
        mut ev: AuditEvent,
        started: Instant,
        decision: &str,
        reason: String,
        err: HttpError,
    ) -> HttpError {
        tracing::warn!(
            connector = %self.connector,
            invocation = %ev.invocation,
            "outbound request {}: {}",
            if decision == "deny" { "denied" } else { "failed" },
            self.scrubber.scrub(&reason)
        );
        self.count(
            &ev,
            if decision == "deny" {
                "denied"
            } else {
                "error"
            },
        );
        if decision == "deny" {
            self.metrics
                .denials
                .get_or_create(&crate::metrics::ConnectorLabel {
                    connector: self.connector.clone(),
                })
                .inc();
        }
        ev.decision = decision.into();
        ev.reason = reason;
        ev.latency_ms = Some(ms(started.elapsed()));
        self.audit.record(ev);
        err
    }

    fn count(&self, ev: &AuditEvent, status: &str) {
        self.metrics
            .outbound
            .get_or_create(&crate::metrics::OutboundLabels {
                connector: self.connector.clone(),
                host: ev.host.clone().unwrap_or_default(),
                status: status.to_string(),
            })
            .inc();
    }

    async fn send(
        self: Arc<Self>,
        invocation: Arc<str>,
        writes_action: Option<Arc<str>>,
        req: Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> SendResult {
        let started = Instant::now();
        let (mut parts, body) = req.into_parts();
        let mut ev = self.event(&invocation);
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
        let path = parts.uri.path().to_string();
        ev.method = Some(parts.method.to_string());
        ev.scheme = Some(scheme.clone());
        ev.host = Some(host.clone());
        ev.port = Some(port);
        ev.path = Some(path.clone());

        if host.is_empty() {
            return Err(self.deny(ev, started, "request has no host".into()));
        }
        let target = Target {
            method: &parts.method,
            scheme: &scheme,
            host: &host,
            port,
            path: &path,
        };
        let idx = match find_grant(&self.grants, &target) {
            Ok(i) => i,
            Err(reason) => return Err(self.deny(ev, started, reason)),
        };
        let grant = &self.grants[idx];
        // Write actions stay off by default: their write requests need a grant with writes.
        if let Some(action) = &writes_action
            && !matches!(
                parts.method,
                http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
            )
            && !grant.writes
        {
            let reason = format!(
                "action `{action}` writes, and grant[{}] does not allow writes (set writes = true on the grant)",
                grant.index
            );
            return Err(self.deny(ev, started, reason));
        }
        // Literal IPs never reach the resolver, so check them here.
        if let Ok(ip) = host.parse::<std::net::IpAddr>()
            && let Some(class) = check_ip(ip, grant.allow_private)
        {
            let reason = format!("{ip} is {class}; grant[{}] does not allow it", grant.index);
            return Err(self.deny(ev, started, reason));
        }

        // Buffer the body (bounded): it makes the size limit exact and keeps the request
        // replayable for retries.
        let body = match Limited::new(body, self.limits.max_request_bytes)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                let reason = format!(
                    "request body unreadable or larger than {} bytes: {e}",
                    self.limits.max_request_bytes
                );
                return Err(self.deny(ev, started, reason));
            }
        };

        // Guest-set credentials are dropped (the wasi:http layer already refuses them; this is
        // the second line), then the grant's own credentials go in.
        for name in self.credential_headers.iter() {
            parts.headers.remove(name);
        }
        let client = self.net.client(grant.allow_private);
        let timeout = first_byte_timeout(&self.limits, options.as_ref());
        let audit = self.audit.clone();
        let token_event = self.event(&invocation);
        if let Err(e) = self.auths[idx]
            .apply(
                &mut parts.headers,
                client,
                grant.allow_private,
                timeout,
                |f| {
                    let mut t = token_event;
                    t.event = "oauth-token".into();
                    t.method = Some("POST".into());
                    t.scheme = f.url.scheme_str().map(str::to_string);
                    t.host = f.url.host().map(str::to_string);
                    t.port = f.url.port_u16();
                    t.path = Some(f.url.path().to_string());
                    t.status = f.status;
                    t.latency_ms = Some(ms(f.latency));
                    t.decision = if f.error.is_some() { "error" } else { "ok" }.into();
                    t.reason = f.error.unwrap_or_else(|| "token fetched".into());
                    audit.record(t);
                },
            )
            .await
        {
            return Err(self.fail(
                ev,
                started,
                format!("credentials for grant[{}] unavailable: {e}", grant.index),
                HttpError::InternalError(Some("credentials unavailable".into())),
            ));
        }

        let upstream_req = Request::from_parts(parts, Full::new(body));
        let response = match tokio::time::timeout(timeout, client.request(upstream_req)).await {
            Err(_) => {
                return Err(self.fail(
                    ev,
                    started,
                    format!("no response headers within {timeout:?}"),
                    HttpError::HttpResponseTimeout,
                ));
            }
            Ok(Err(e)) => {
                if let Some(d) = find_address_denied(&e) {
                    let reason = format!("{d}; grant[{}] does not allow it", grant.index);
                    return Err(self.deny(ev, started, reason));
                }
                let reason = format!("connection failed: {}", error_chain(&e));
                let code = if e.is_connect() {
                    HttpError::ConnectionRefused
                } else {
                    HttpError::HttpProtocolError
                };
                return Err(self.fail(ev, started, reason, code));
            }
            Ok(Ok(r)) => r,
        };
        let (mut rparts, rbody) = response.into_parts();
        // Header values echoing a credential are scrubbed like bodies.
        if !self.scrubber.is_empty() {
            for v in rparts.headers.values_mut() {
                if let Some(clean) = self.scrubber.scrub_bytes_if_needed(v.as_bytes())
                    && let Ok(nv) = http::HeaderValue::from_bytes(&clean)
                {
                    *v = nv;
                }
            }
        }
        ev.status = Some(rparts.status.as_u16());
        let max = self.limits.max_response_bytes;
        let bytes: Bytes =
            match tokio::time::timeout(self.limits.timeout, Limited::new(rbody, max).collect())
                .await
            {
                Ok(Ok(b)) => b.to_bytes(),
                Ok(Err(e)) => {
                    let too_big = e
                        .downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some();
                    let (reason, code) = if too_big {
                        (
                            format!("response body larger than {max} bytes"),
                            HttpError::HttpResponseBodySize(Some(max as u64)),
                        )
                    } else {
                        (
                            format!("response body failed: {e}"),
                            HttpError::HttpResponseIncomplete,
                        )
                    };
                    return Err(self.fail(ev, started, reason, code));
                }
                Err(_) => {
                    return Err(self.fail(
                        ev,
                        started,
                        "response body timed out".into(),
                        HttpError::HttpResponseTimeout,
                    ));
                }
            };
        // An upstream that echoes a credential back must not hand it to the connector.
        let bytes = if self.scrubber.is_empty() {
            bytes
        } else {
            match self.scrubber.scrub_bytes_if_needed(&bytes) {
                Some(clean) => {
                    ev.reason = "secret value removed from the response".into();
                    Bytes::from(clean)
                }
                None => bytes,
            }
        };
        self.count(&ev, rparts.status.as_str());
        ev.decision = "allow".into();
        ev.reason = if ev.reason.is_empty() {
            format!("grant[{}]", grant.index)
        } else {
            format!("grant[{}]; {}", grant.index, ev.reason)
        };
        ev.bytes = Some(bytes.len() as u64);
        ev.latency_ms = Some(ms(started.elapsed()));
        self.audit.record(ev);

        let body: WasiBody = Full::new(bytes)
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed_unsync();
        let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(async { Ok(()) });
        Ok((Response::from_parts(rparts, body), io))
    }
}

fn first_byte_timeout(limits: &Limits, options: Option<&RequestOptions>) -> Duration {
    let guest = options.and_then(|o| o.first_byte_timeout);
    match guest {
        Some(g) => g.min(limits.first_byte_timeout),
        None => limits.first_byte_timeout,
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// The `WasiHttpHooks` of one invocation.
pub struct InvocationHooks {
    gate: Arc<ConnectorGate>,
    invocation: Arc<str>,
    /// The action's name when the invocation runs an action marked `writes`.
    writes_action: Option<Arc<str>>,
}

impl WasiHttpHooks for InvocationHooks {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        let creds = self.gate.credential_headers.clone();
        let gate = self.gate.clone();
        let invocation = self.invocation.clone();
        Arc::new(move |name: &HeaderName| {
            if creds.contains(name) {
                let mut ev = gate.event(&invocation);
                ev.event = "header".into();
                ev.decision = "deny".into();
                ev.reason = format!(
                    "connector tried to set credential header `{name}`; the host injects credentials"
                );
                gate.audit.record(ev);
                return true;
            }
            DEFAULT_FORBIDDEN_HEADERS.contains(name)
        })
    }

    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let gate = self.gate.clone();
        let invocation = self.invocation.clone();
        Box::new(gate.send(invocation, self.writes_action.clone(), request, options))
    }
}
