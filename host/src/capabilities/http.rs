//! The outbound gate: every `wasi:http` request a connector makes arrives here
//! (`WasiHttpHooks::send_request`). Deny by default: match a grant, check the address, strip
//! guest-set credential headers, inject the grant's auth, send on the pooled client with
//! timeouts and a response-size cap, and audit the decision either way. Redirects are returned
//! to the connector, never followed here.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use http::{HeaderName, Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

use super::grant::Grant;
use crate::cassette::{self, GateCassette};
use crate::limits::Limits;
use crate::scrub::Scrubber;
use crate::store::audit::{AuditEvent, AuditLog};

use super::address::is_metadata_host;
use super::auth::{GrantAuth, TokenLimits};
use super::breaker::{Admit, Breaker, BreakerState};
use super::budget::{GrantBudget, NotBefore};
use super::cache::{self, ResponseCache};
use super::decode;
use super::denials::{self, DenialBudget, Spend};
use super::net::{Net, check_literal_ip, error_chain, find_address_denied};
use super::path::{method_override_param, normalize};
use super::policy::{HostPattern, Target, find_grant, is_write_method};
use super::retry;
use crate::metrics::{GrantLabels, GrantOutcomeLabels};

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
    /// Per grant (same order as `grants`): budget, breaker, cache.
    states: Vec<GrantState>,
    /// Record every exchange, or answer from a cassette instead of the network.
    cassette: Option<GateCassette>,
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
        let states = grants
            .iter()
            .map(|g| GrantState {
                budget: GrantBudget::new(&g.resilience),
                breaker: Breaker::new(g.resilience.breaker_failures, g.resilience.breaker_cooldown),
                cache: g.resilience.cache_ttl.map(ResponseCache::new),
                labels: GrantLabels {
                    connector: connector.clone(),
                    grant: g.name.clone(),
                },
            })
            .collect();
        ConnectorGate {
            states,
            connector,
            grants,
            auths,
            net,
            audit,
            scrubber,
            limits,
            metrics,
            credential_headers: Arc::new(credential_headers),
            cassette: None,
        }
    }

    /// Records into, or replays from, a cassette (see [`crate::cassette`]).
    pub fn with_cassette(mut self, cassette: Option<GateCassette>) -> ConnectorGate {
        self.cassette = cassette;
        self
    }

    /// The hooks for one invocation's store.
    /// `writes_action`: the invocation runs an action marked `writes`.
    pub fn hooks(
        self: &Arc<Self>,
        invocation: Arc<str>,
        principal: Option<Arc<str>>,
        writes_action: Option<Arc<str>>,
        approved_writes: bool,
        deadline: Instant,
    ) -> InvocationHooks {
        InvocationHooks {
            gate: self.clone(),
            invocation,
            principal,
            writes_action,
            approved_writes,
            deadline,
            denials: Arc::new(DenialBudget::new(self.limits.denial_budget)),
        }
    }

    /// An `http` row of an invocation; named explicitly with its principal, because the send
    /// future may run outside the task that holds the call context.
    fn event(&self, invocation: &str, principal: Option<&str>) -> AuditEvent {
        AuditEvent {
            connector: self.connector.clone(),
            invocation: invocation.to_string(),
            event: "http".into(),
            principal: principal.map(str::to_string),
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
        // Past the invocation's denial budget a denial costs no row (nor a log line): the
        // invocation is being stopped and its summary row counts these.
        if decision == "deny"
            && let Some(budget) = denials::current()
            && budget.spend() == Spend::Suppress
        {
            return err;
        }
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
                // Never the requested host: a guest could mint a series per name it asks for.
                grant: ev.grant.clone().unwrap_or_else(|| "none".into()),
                status: status.to_string(),
            })
            .inc();
    }

    async fn send(
        self: Arc<Self>,
        Caller {
            invocation,
            principal,
        }: Caller,
        writes_action: Option<Arc<str>>,
        approved_writes: bool,
        deadline: Instant,
        req: Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> SendResult {
        let started = Instant::now();
        let (mut parts, body) = req.into_parts();
        let mut ev = self.event(&invocation, principal.as_deref());
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

        if host.is_empty() {
            return Err(self.deny(ev, started, "request has no host".into()));
        }
        if is_metadata_host(&host) {
            let reason = format!("{host} is a cloud metadata host name; never reachable");
            return Err(self.deny(ev, started, reason));
        }
        // One normal form: matched against the grants, audited and sent.
        let path = match normalize(&raw_path) {
            Ok(p) => p,
            Err(reason) => return Err(self.deny(ev, started, format!("path refused: {reason}"))),
        };
        ev.path = Some(path.clone());
        if let Some(reason) = method_override(&parts) {
            return Err(self.deny(ev, started, reason));
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
        ev.grant = Some(grant.name.clone());
        // Write actions stay off by default: their write requests need a grant with writes,
        // and an approved invocation; a writes grant carries no other write.
        let write_method = is_write_method(&parts.method);
        if write_method
            && let Some(reason) = write_refusal(grant, writes_action.as_deref(), approved_writes)
        {
            return Err(self.deny(ev, started, reason));
        }
        // Literal IPs never reach the resolver, so check them here.
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            let named = matches!(&grant.host, HostPattern::Exact(h) if h.parse() == Ok(ip));
            if let Some(class) = check_literal_ip(ip, grant.allow_private, named) {
                let reason = format!("{ip} is {class}; grant[{}] does not allow it", grant.index);
                return Err(self.deny(ev, started, reason));
            }
        }
        if path != raw_path {
            match with_path(&parts.uri, &path) {
                Ok(uri) => parts.uri = uri,
                Err(reason) => return Err(self.deny(ev, started, reason)),
            }
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
        let recording = match &self.cassette {
            // Replay answers once the grant allowed the request, without credentials, budget,
            // breaker, cache or retries: the answer depends on the request alone.
            Some(GateCassette::Replay(r)) => {
                return self.replay(r, &parts, &body, grant.index, ev, started);
            }
            // The connector's own request, taken before any credential goes in.
            Some(GateCassette::Record(r)) => Some((
                r.clone(),
                parts.method.to_string(),
                parts.uri.to_string(),
                parts.headers.clone(),
                body.clone(),
            )),
            None => None,
        };
        // A credentialed request is one whose answer may echo the credential: the gate decides
        // how that answer is encoded, so the scrubber sees it whole and decoded.
        let credentialed = self.auths[idx].injects();
        if credentialed {
            prepare_credentialed(&mut parts.headers);
        }
        let client = self.net.client(grant.allow_private);
        let timeout = first_byte_timeout(&self.limits, options.as_ref());
        let audit = self.audit.clone();
        let token_event = self.event(&invocation, principal.as_deref());
        // The token fetch runs under the host's own timeout: a guest's tiny first-byte timeout
        // must not make every request re-post the client secret.
        let token_limits = TokenLimits {
            timeout: self.limits.first_byte_timeout,
            budget: &self.states[idx].budget,
            deadline,
        };
        if let Err(e) = self.auths[idx]
            .apply(
                &mut parts.headers,
                client,
                grant.allow_private,
                token_limits,
                move |f| {
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

        let result = self
            .send_with_resilience(
                Outgoing {
                    deadline,
                    idx,
                    parts,
                    body,
                    timeout,
                    client,
                    credentialed,
                },
                ev,
                started,
            )
            .await;
        match recording {
            Some((rec, method, url, headers, body)) => {
                let creds: Vec<HeaderName> = self.credential_headers.iter().cloned().collect();
                record(result, |outcome| {
                    rec.record(&method, &url, headers, body, outcome, creds)
                })
                .await
            }
            None => result,
        }
    }

    /// The answer a cassette recorded for this request, or a 599 `no-recording` when it has none;
    /// audited like a live answer, with the cassette in the reason.
    fn replay(
        &self,
        replay: &cassette::Replay,
        parts: &http::request::Parts,
        body: &Bytes,
        grant: usize,
        mut ev: AuditEvent,
        started: Instant,
    ) -> SendResult {
        let url = parts.uri.to_string();
        let Some(served) = replay.next(parts.method.as_str(), &url, body) else {
            let with_body = if body.is_empty() {
                String::new()
            } else {
                format!(" with this {}-byte body", body.len())
            };
            let message = format!(
                "no recorded exchange for {} {url}{with_body} in cassette {}",
                parts.method,
                replay.path().display()
            );
            tracing::warn!(connector = %self.connector, invocation = %ev.invocation, "{message}");
            self.count(&ev, "no-recording");
            ev.status = Some(cassette::NO_RECORDING_STATUS);
            ev.decision = "no-recording".into();
            ev.reason = format!("grant[{grant}]; replay: {message}");
            ev.latency_ms = Some(ms(started.elapsed()));
            self.audit.record(ev);
            let mut headers = http::HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            headers.insert(
                HeaderName::from_static("x-airlock-gate"),
                http::HeaderValue::from_static("no-recording"),
            );
            let body = serde_json::json!({"error": {"code": "no-recording", "message": message}});
            return Ok(respond(
                http::StatusCode::from_u16(cassette::NO_RECORDING_STATUS)
                    .unwrap_or(http::StatusCode::BAD_GATEWAY),
                headers,
                Bytes::from(body.to_string()),
            ));
        };
        let reason = format!(
            "grant[{grant}]; replayed exchanges[{}] of {}{}",
            served.index,
            replay.path().display(),
            if served.repeat { " (again)" } else { "" }
        );
        match served.answer {
            cassette::Answer::Response {
                status,
                headers,
                body,
            } => {
                self.count(&ev, status.as_str());
                ev.status = Some(status.as_u16());
                ev.bytes = Some(body.len() as u64);
                ev.decision = "allow".into();
                ev.reason = reason;
                ev.latency_ms = Some(ms(started.elapsed()));
                self.audit.record(ev);
                Ok(respond(*status, headers.clone(), body.clone()))
            }
            cassette::Answer::Error(kind) => {
                let code = cassette::error_code(kind)
                    .unwrap_or(HttpError::InternalError(Some(kind.clone())));
                Err(self.fail(
                    ev,
                    started,
                    format!("{reason}: recorded transport error `{kind}`"),
                    code,
                ))
            }
        }
    }

    /// Cache lookup, then attempts under the grant's breaker and budget, retrying transient
    /// failures of idempotent requests while the invocation's deadline allows.
    async fn send_with_resilience(
        &self,
        out: Outgoing<'_>,
        ev: AuditEvent,
        started: Instant,
    ) -> SendResult {
        let Outgoing {
            deadline,
            idx,
            parts,
            body,
            timeout,
            client,
            credentialed,
        } = out;
        let grant = &self.grants[idx];
        let state = &self.states[idx];
        let r = &grant.resilience;
        let labels = &state.labels;

        let cache_key = match &state.cache {
            Some(_) if parts.method == http::Method::GET => {
                Some(cache::key(&parts.uri, &parts.headers))
            }
            _ => None,
        };
        if let (Some(c), Some(k)) = (&state.cache, &cache_key) {
            let hit = c.get(k);
            self.metrics
                .cache
                .get_or_create(&labels.outcome(if hit.is_some() { "hit" } else { "miss" }))
                .inc();
            if let Some(hit) = hit {
                let mut ev = ev;
                ev.status = Some(hit.status.as_u16());
                ev.bytes = Some(hit.body.len() as u64);
                ev.decision = "allow".into();
                ev.reason = format!("grant[{}]; served from the response cache", grant.index);
                ev.latency_ms = Some(ms(started.elapsed()));
                self.count(&ev, hit.status.as_str());
                self.audit.record(ev);
                return Ok(respond(hit.status, hit.headers, hit.body));
            }
        }

        let retry_ok = retry::idempotent(&parts.method);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let attempt_started = Instant::now();
            let mut ev = ev.clone();
            if attempt > 1 {
                ev.reason = format!("attempt {attempt}");
            }
            // An open circuit fails fast without spending budget.
            let (admit, transition) = state.breaker.admit();
            if let Some(t) = transition {
                self.breaker_moved(state, t);
            }
            if let Admit::FailFast(wait) = admit {
                self.metrics.breaker_fail_fast.get_or_create(labels).inc();
                let reason = format!(
                    "grant[{}] circuit is open after repeated upstream failures; failing fast for {}s",
                    grant.index,
                    secs_ceil(wait)
                );
                return Ok(self.synthetic(ev, started, 503, wait, "circuit-open", reason));
            }
            let mut waited = Duration::ZERO;
            let permit = match state.budget.acquire(deadline, &mut waited).await {
                Ok(p) => p,
                Err(not_before) => {
                    state.breaker.release_probe();
                    self.metrics.rate_limited.get_or_create(labels).inc();
                    let why = match not_before {
                        NotBefore::Paused(_) => "is paused by the upstream's rate-limit signal",
                        NotBefore::Budget(_) => "has no rate budget left",
                    };
                    let reason = format!(
                        "grant[{}] {why} for {}s, past the invocation's deadline; answered rate-limited",
                        grant.index,
                        secs_ceil(not_before.wait())
                    );
                    return Ok(self.synthetic(
                        ev,
                        started,
                        429,
                        not_before.wait(),
                        "rate-limited",
                        reason,
                    ));
                }
            };
            if !waited.is_zero() {
                self.metrics
                    .budget_wait_seconds
                    .get_or_create(labels)
                    .inc_by(waited.as_secs_f64());
            }
            let req = build_request(&parts, body.clone());
            let outcome = self.exchange(client, req, timeout, credentialed).await;
            drop(permit);
            let can_retry = retry_ok && attempt < r.retry_attempts;
            match outcome {
                Ok((rparts, bytes, scrubbed)) => {
                    let status = rparts.status.as_u16();
                    // A success that declares JSON but does not parse (cut short, or garbage from
                    // a proxy) is an upstream fault; a GET can be asked again safely.
                    if can_retry
                        && rparts.status.is_success()
                        && malformed_json(&rparts.headers, &bytes)
                    {
                        let wait = retry::backoff(attempt, r.backoff, r.max_backoff);
                        if fits_before(wait, deadline) {
                            ev.status = Some(status);
                            let _ = self.fail(
                                ev,
                                attempt_started,
                                format!("grant[{}]; {status} response declared JSON but is malformed or truncated", grant.index),
                                HttpError::HttpProtocolError,
                            );
                            tokio::time::sleep(wait).await;
                            self.metrics.retries.get_or_create(labels).inc();
                            continue;
                        }
                    }
                    let t = if retry::breaker_failure_status(status) {
                        state.breaker.failure()
                    } else {
                        state.breaker.success()
                    };
                    if let Some(t) = t {
                        self.breaker_moved(state, t);
                    }
                    let signalled = if matches!(status, 429 | 503) {
                        retry::retry_after(&rparts.headers)
                    } else {
                        None
                    }
                    .or_else(|| retry::exhausted_window(&rparts.headers));
                    if let Some(p) = signalled {
                        state.budget.pause(p);
                        self.metrics.grant_pauses.get_or_create(labels).inc();
                    }
                    self.count(&ev, rparts.status.as_str());
                    ev.status = Some(status);
                    ev.decision = "allow".into();
                    let mut notes = vec![format!("grant[{}] {}", grant.index, grant.name)];
                    if !ev.reason.is_empty() {
                        notes.push(std::mem::take(&mut ev.reason));
                    }
                    if scrubbed {
                        notes.push("secret value removed from the response".into());
                    }
                    ev.reason = notes.join("; ");
                    ev.bytes = Some(bytes.len() as u64);
                    ev.latency_ms = Some(ms(attempt_started.elapsed()));
                    self.audit.record(ev);

                    if can_retry && retry::retryable_status(status) {
                        // A signalled pause is waited out (or refused) by the budget on the next
                        // attempt; otherwise back off with jitter.
                        let wait = match signalled {
                            Some(p) => p,
                            None => retry::backoff(attempt, r.backoff, r.max_backoff),
                        };
                        if fits_before(wait, deadline) {
                            if signalled.is_none() {
                                tokio::time::sleep(wait).await;
                            }
                            self.metrics.retries.get_or_create(labels).inc();
                            continue;
                        }
                    }
                    if let (Some(c), Some(k)) = (&state.cache, cache_key) {
                        c.put(
                            k,
                            cache::Cached {
                                status: rparts.status,
                                headers: rparts.headers.clone(),
                                body: bytes.clone(),
                            },
                        );
                    }
                    return Ok(respond(rparts.status, rparts.headers, bytes));
                }
                Err(Failure::Denied(reason)) => {
                    state.breaker.release_probe();
                    let reason = format!("{reason}; grant[{}] does not allow it", grant.index);
                    return Err(self.deny(ev, attempt_started, reason));
                }
                Err(Failure::Withheld {
                    reason,
                    code,
                    status,
                }) => {
                    if let Some(t) = state.breaker.success() {
                        self.breaker_moved(state, t);
                    }
                    ev.status = Some(status);
                    return Err(self.fail(
                        ev,
                        attempt_started,
                        format!("grant[{}]; {reason}", grant.index),
                        code,
                    ));
                }
                Err(Failure::Failed {
                    reason,
                    code,
                    connection,
                    status,
                }) => {
                    ev.status = status;
                    if let Some(t) = state.breaker.failure() {
                        self.breaker_moved(state, t);
                    }
                    let err = self.fail(ev, attempt_started, reason, code);
                    if can_retry && connection {
                        let wait = retry::backoff(attempt, r.backoff, r.max_backoff);
                        if fits_before(wait, deadline) {
                            tokio::time::sleep(wait).await;
                            self.metrics.retries.get_or_create(labels).inc();
                            continue;
                        }
                    }
                    return Err(err);
                }
            }
        }
    }

    /// One upstream exchange: send, read the (capped) body, decode it when the request carried
    /// a credential (`credentialed`), scrub echoed secrets, and withhold an answer that still
    /// reveals one under some encoding.
    async fn exchange(
        &self,
        client: &super::net::UpstreamClient,
        req: Request<Full<Bytes>>,
        timeout: Duration,
        credentialed: bool,
    ) -> Result<(http::response::Parts, Bytes, bool), Failure> {
        let response = match tokio::time::timeout(timeout, client.request(req)).await {
            Err(_) => {
                return Err(Failure::Failed {
                    reason: format!("no response headers within {timeout:?}"),
                    code: HttpError::HttpResponseTimeout,
                    connection: false,
                    status: None,
                });
            }
            Ok(Err(e)) => {
                if let Some(d) = find_address_denied(&e) {
                    return Err(Failure::Denied(d.to_string()));
                }
                let code = if e.is_connect() {
                    HttpError::ConnectionRefused
                } else {
                    HttpError::HttpProtocolError
                };
                return Err(Failure::Failed {
                    reason: format!("connection failed: {}", error_chain(&e)),
                    code,
                    connection: true,
                    status: None,
                });
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
                    return Err(if too_big {
                        Failure::Failed {
                            reason: format!(
                                "{} response body larger than {max} bytes",
                                rparts.status.as_u16()
                            ),
                            code: HttpError::HttpResponseBodySize(Some(max as u64)),
                            connection: false,
                            status: Some(rparts.status.as_u16()),
                        }
                    } else {
                        // A connection cut mid-body is a connection error: worth a retry.
                        Failure::Failed {
                            reason: format!("{} response body failed: {e}", rparts.status.as_u16()),
                            code: HttpError::HttpResponseIncomplete,
                            connection: true,
                            status: Some(rparts.status.as_u16()),
                        }
                    });
                }
                Err(_) => {
                    return Err(Failure::Failed {
                        reason: format!("{} response body timed out", rparts.status.as_u16()),
                        code: HttpError::HttpResponseTimeout,
                        connection: false,
                        status: Some(rparts.status.as_u16()),
                    });
                }
            };
        let status = rparts.status.as_u16();
        // Compressed, the echo of a credential would pass the scrubber untouched: decode first,
        // and refuse a coding the gate cannot decode rather than pass it through.
        let bytes = if credentialed {
            match decode::decode_body(&mut rparts.headers, bytes, max) {
                Ok(b) => b,
                Err(e) => {
                    let code = match &e {
                        decode::DecodeError::TooLarge(_) => {
                            HttpError::HttpResponseBodySize(Some(max as u64))
                        }
                        decode::DecodeError::Unsupported(c) | decode::DecodeError::Corrupt(c) => {
                            HttpError::HttpResponseContentCoding(Some(c.clone()))
                        }
                    };
                    return Err(Failure::Withheld {
                        reason: format!("{status} response refused by the gate: {e}"),
                        code,
                        status,
                    });
                }
            }
        } else {
            bytes
        };
        if self.scrubber.is_empty() {
            return Ok((rparts, bytes, false));
        }
        // An upstream that echoes a credential back must not hand it to the connector.
        let (bytes, scrubbed) = match self.scrubber.scrub_bytes_if_needed(&bytes) {
            Some(clean) => (Bytes::from(clean), true),
            None => (bytes, false),
        };
        // What is left may still reveal the injected credential under an encoding that cannot
        // be redacted in place (JSON `\u` escapes, percent-encoding, quoted-printable...):
        // withhold it. (Without an injected credential there is nothing to reflect.)
        let revealed = credentialed
            .then(|| {
                rparts
                    .headers
                    .values()
                    .find_map(|v| self.scrubber.reveals(v.as_bytes()))
                    .or_else(|| self.scrubber.reveals(&bytes))
            })
            .flatten();
        if let Some(how) = revealed {
            return Err(Failure::Withheld {
                reason: format!(
                    "{status} response withheld by the gate: it reveals a secret value ({how})"
                ),
                code: HttpError::InternalError(Some(
                    "response withheld by the gate: it reveals a secret value".into(),
                )),
                status,
            });
        }
        if scrubbed && rparts.headers.contains_key(header::CONTENT_LENGTH) {
            rparts
                .headers
                .insert(header::CONTENT_LENGTH, http::HeaderValue::from(bytes.len()));
        }
        Ok((rparts, bytes, scrubbed))
    }

    /// An answer the gate gives in the upstream's stead (rate-limited, circuit open), with a
    /// `Retry-After` the SDK maps to `rate-limited(seconds)`. Audited with `decision`.
    fn synthetic(
        &self,
        mut ev: AuditEvent,
        started: Instant,
        status: u16,
        wait: Duration,
        decision: &str,
        reason: String,
    ) -> (
        Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) {
        tracing::info!(connector = %self.connector, invocation = %ev.invocation, "{reason}");
        self.count(&ev, decision);
        ev.status = Some(status);
        ev.decision = decision.into();
        ev.reason = reason.clone();
        ev.latency_ms = Some(ms(started.elapsed()));
        self.audit.record(ev);
        let mut headers = http::HeaderMap::new();
        headers.insert(
            header::RETRY_AFTER,
            http::HeaderValue::from(secs_ceil(wait)),
        );
        headers.insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            HeaderName::from_static("x-airlock-gate"),
            http::HeaderValue::from_str(decision)
                .unwrap_or(http::HeaderValue::from_static("limited")),
        );
        let body = serde_json::json!({"error": {"code": decision, "message": reason}}).to_string();
        respond(
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE),
            headers,
            Bytes::from(body),
        )
    }

    fn breaker_moved(&self, state: &GrantState, to: BreakerState) {
        tracing::warn!(
            connector = %self.connector,
            grant = %state.labels.grant,
            "circuit breaker {}",
            to.as_str()
        );
        self.metrics
            .breaker_state
            .get_or_create(&state.labels)
            .set(to.gauge());
        self.metrics
            .breaker_transitions
            .get_or_create(&state.labels.outcome(to.as_str()))
            .inc();
    }

    /// Breaker, budget and cache state of each grant, for the API and dashboard.
    pub fn grant_status(&self) -> Vec<GrantStatus> {
        self.grants
            .iter()
            .zip(&self.states)
            .map(|(g, s)| GrantStatus {
                grant: g.index,
                name: g.name.clone(),
                breaker: s.breaker.state().as_str(),
                paused_for_secs: s.budget.paused_for().map(|d| d.as_secs_f64()),
                in_flight: s.budget.in_flight(),
                rate_per_second: g.resilience.rate_per_second,
                burst: g.resilience.burst,
                concurrency: g.resilience.concurrency,
                cache_ttl_secs: g.resilience.cache_ttl.map(|d| d.as_secs_f64()),
            })
            .collect()
    }
}

/// What `send` hands to the resilience loop once the request is allowed and credentialed.
struct Outgoing<'a> {
    deadline: Instant,
    idx: usize,
    parts: http::request::Parts,
    body: Bytes,
    timeout: Duration,
    client: &'a super::net::UpstreamClient,
    /// The grant injected a credential: the answer is decoded before it is scrubbed.
    credentialed: bool,
}

/// Why one exchange produced no response.
enum Failure {
    /// The resolved address is not allowed for the grant.
    Denied(String),
    Failed {
        reason: String,
        code: HttpError,
        /// A connection error (refused, reset, cut mid-body): retryable for idempotent requests.
        connection: bool,
        /// The status, when headers arrived before the failure.
        status: Option<u16>,
    },
    /// The upstream answered, but the gate will not hand the answer over (a coding it cannot
    /// decode, or a secret it cannot redact). Not an upstream failure: the breaker is not fed.
    Withheld {
        reason: String,
        code: HttpError,
        status: u16,
    },
}

/// Grant state the gate keeps across invocations.
struct GrantState {
    budget: GrantBudget,
    breaker: Breaker,
    cache: Option<ResponseCache>,
    labels: GrantLabels,
}

trait OutcomeLabel {
    fn outcome(&self, o: &str) -> GrantOutcomeLabels;
}

impl OutcomeLabel for GrantLabels {
    fn outcome(&self, o: &str) -> GrantOutcomeLabels {
        GrantOutcomeLabels {
            connector: self.connector.clone(),
            grant: self.grant.clone(),
            outcome: o.to_string(),
        }
    }
}

/// One grant's live resilience state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GrantStatus {
    /// Position in the config file (`grant[N]`).
    pub grant: usize,
    /// The configured name (`name = "..."`, default `grant-N`).
    pub name: String,
    pub breaker: &'static str,
    pub paused_for_secs: Option<f64>,
    pub in_flight: u32,
    pub rate_per_second: f64,
    pub burst: u32,
    pub concurrency: u32,
    pub cache_ttl_secs: Option<f64>,
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

/// Readies a request that will carry an injected credential against reflection: the gate, not
/// the connector, picks the answer's encoding (`identity`: nothing the scrubber cannot read),
/// and a `Range` slice, which could cut an echoed credential into pieces too short to
/// recognise, is never asked for. `TE` would let the upstream add transfer codings.
fn prepare_credentialed(headers: &mut http::HeaderMap) {
    headers.remove(header::RANGE);
    headers.remove(header::IF_RANGE);
    headers.remove(header::TE);
    headers.insert(
        header::ACCEPT_ENCODING,
        http::HeaderValue::from_static("identity"),
    );
}

/// Whether a body whose `Content-Type` says JSON fails to parse.
fn malformed_json(headers: &http::HeaderMap, bytes: &[u8]) -> bool {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let ct = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            ct == "application/json" || ct.ends_with("+json")
        })
        .unwrap_or(false);
    json && !bytes.is_empty() && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err()
}

/// Hands what the connector gets to the recorder, and passes it on unchanged.
async fn record(result: SendResult, sink: impl FnOnce(cassette::Outcome)) -> SendResult {
    match result {
        Ok((resp, _io)) => {
            let (rparts, body) = resp.into_parts();
            // The gate's answers are in memory already; collecting them cannot block.
            let bytes = body.collect().await?.to_bytes();
            sink(cassette::Outcome::Response {
                status: rparts.status,
                headers: rparts.headers.clone(),
                body: bytes.clone(),
            });
            Ok(respond(rparts.status, rparts.headers, bytes))
        }
        Err(e) => {
            sink(cassette::Outcome::Error(cassette::error_name(&e).into()));
            Err(e)
        }
    }
}

fn build_request(parts: &http::request::Parts, body: Bytes) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    req
}

fn respond(
    status: http::StatusCode,
    headers: http::HeaderMap,
    bytes: Bytes,
) -> (
    Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
) {
    let body: WasiBody = Full::new(bytes)
        .map_err(|never: std::convert::Infallible| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> = Box::new(async { Ok(()) });
    (resp, io)
}

/// Whether a wait starting now ends by `deadline` (an overflowing wait does not).
fn fits_before(wait: Duration, deadline: Instant) -> bool {
    Instant::now()
        .checked_add(wait)
        .is_some_and(|end| end <= deadline)
}

fn secs_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Time left to a connector after the gate's last answer, to act on it before its deadline.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

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

/// Which invocation a request belongs to and who asked for it (both named in its audit rows).
struct Caller {
    invocation: Arc<str>,
    principal: Option<Arc<str>>,
}

/// The `WasiHttpHooks` of one invocation.
pub struct InvocationHooks {
    gate: Arc<ConnectorGate>,
    invocation: Arc<str>,
    /// Who asked for the invocation (named in its audit rows).
    principal: Option<Arc<str>>,
    /// The action's name when the invocation runs an action marked `writes`.
    writes_action: Option<Arc<str>>,
    /// Whether a write action's writes were approved (or run by the operator's own code).
    approved_writes: bool,
    /// When the invocation will be stopped; the gate never waits past it (less a margin for
    /// the connector to act on the answer).
    deadline: Instant,
    /// How many more denials this invocation may cause before it is stopped.
    denials: Arc<DenialBudget>,
}

impl InvocationHooks {
    /// The invocation's denial budget (the runtime stops the invocation once it is spent).
    pub fn denials(&self) -> Arc<DenialBudget> {
        self.denials.clone()
    }
}

impl WasiHttpHooks for InvocationHooks {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        let creds = self.gate.credential_headers.clone();
        let gate = self.gate.clone();
        let invocation = self.invocation.clone();
        let principal = self.principal.clone();
        let denials = self.denials.clone();
        Arc::new(move |name: &HeaderName| {
            if creds.contains(name) {
                if denials.stopped() {
                    denials.refuse();
                    return true;
                }
                if denials.spend() == Spend::Suppress {
                    return true;
                }
                let mut ev = gate.event(&invocation, principal.as_deref());
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
        let deadline = self
            .deadline
            .checked_sub(DEADLINE_MARGIN)
            .unwrap_or(self.deadline);
        let caller = Caller {
            invocation,
            principal: self.principal.clone(),
        };
        let seen = Seen::of(&request);
        let send = gate.clone().send(
            caller,
            self.writes_action.clone(),
            self.approved_writes,
            deadline,
            request,
            options,
        );
        let (invocation, principal) = (self.invocation.clone(), self.principal.clone());
        let budget = self.denials.clone();
        if budget.stopped() {
            // The invocation spent its denial budget: refuse everything, without a row.
            budget.refuse();
            return Box::new(std::future::ready::<SendResult>(Err(
                HttpError::HttpRequestDenied,
            )));
        }
        let send = denials::CURRENT.scope(budget, send);
        Box::new(async move {
            // Dropped before it finished (the invocation timed out or was stopped while the
            // request was in flight): the guard still writes its row.
            let mut guard = Unfinished {
                gate: gate.clone(),
                invocation: invocation.clone(),
                principal: principal.clone(),
                seen: Some(seen),
            };
            // Nothing an upstream sends may take the host down or lose the audit row: a panic
            // anywhere in the gate becomes an audited `error` and a failed request.
            let outcome = AssertUnwindSafe(send).catch_unwind().await;
            let seen = guard.seen.take();
            match outcome {
                Ok(result) => result,
                Err(panic) => Err(gate.panicked(
                    &invocation,
                    principal.as_deref(),
                    seen,
                    &format!("internal error in the gate ({})", panic_text(&*panic)),
                )),
            }
        })
    }
}

/// Writes the row of a request whose handling was dropped before it finished.
struct Unfinished {
    gate: Arc<ConnectorGate>,
    invocation: Arc<str>,
    principal: Option<Arc<str>>,
    /// Taken when the handling finished (or panicked, which writes its own row).
    seen: Option<Seen>,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(seen) = self.seen.take() {
            let _ = self.gate.panicked(
                &self.invocation,
                self.principal.as_deref(),
                Some(seen),
                "request abandoned before the gate finished it (the invocation ended or the connector dropped it)",
            );
        }
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// What the gate knew of a request before sending it, for the row of a request that panicked.
struct Seen {
    method: String,
    scheme: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    path: String,
}

impl Seen {
    fn of(req: &Request<WasiBody>) -> Seen {
        let uri = req.uri();
        Seen {
            method: req.method().to_string(),
            scheme: uri.scheme_str().map(str::to_ascii_lowercase),
            host: uri.host().map(str::to_ascii_lowercase),
            port: uri.port_u16(),
            path: uri.path().to_string(),
        }
    }
}

impl ConnectorGate {
    /// The audit row and error of a request whose handling did not finish: it panicked (a bug,
    /// never expected) or was dropped. The upstream may have seen the request, so the row says so.
    fn panicked(
        &self,
        invocation: &str,
        principal: Option<&str>,
        seen: Option<Seen>,
        what: &str,
    ) -> HttpError {
        let mut ev = self.event(invocation, principal);
        if let Some(seen) = seen {
            ev.method = Some(seen.method);
            ev.scheme = seen.scheme;
            ev.host = seen.host;
            ev.port = seen.port;
            ev.path = Some(seen.path);
        }
        let reason = format!("{what}; the request may have reached the upstream");
        tracing::error!(connector = %self.connector, invocation, "{}", self.scrubber.scrub(&reason));
        self.count(&ev, "error");
        ev.decision = "error".into();
        ev.reason = reason;
        self.audit.record(ev);
        HttpError::InternalError(Some("internal error in the gate".into()))
    }
}
