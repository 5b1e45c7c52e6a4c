//! The outbound gate: every `wasi:http` request a connector makes arrives here
//! (`WasiHttpHooks::send_request`, in `hooks`) and runs one straight line. Deny by default:
//!
//! 1. `admission`: match a grant and check the target (path normal form, method overrides,
//!    writes, literal addresses), buffer the body;
//! 2. `credentials`: drop guest-set credential headers, inject the grant's own;
//! 3. `interceptors`: a cassette may answer (replay) or watch (record); the cache may answer;
//! 4. `resilience`: breaker, rate budget and retries around each attempt;
//! 5. `transport`: one exchange on the pooled client, with timeouts and a response-size cap,
//!    whose answer is decoded, scrubbed or withheld before the connector sees it;
//!
//! and every path ends in `outcome`, which writes the audit row and the metrics in one place.
//! Redirects are returned to the connector, never followed here.

mod admission;
mod credentials;
mod hooks;
mod interceptors;
mod outcome;
mod resilience;
mod transport;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderName, Request, Response, header};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

pub use hooks::{InvocationHooks, panic_text};

use super::auth::GrantAuth;
use super::breaker::Breaker;
use super::budget::{Class, GrantBudget};
use super::cache::ResponseCache;
use super::denials::DenialBudget;
use super::grant::Grant;
use super::net::Net;
use crate::cassette::GateCassette;
use crate::limits::Limits;
use crate::metrics::{GrantLabels, GrantOutcomeLabels};
use crate::scrub::Scrubber;
use crate::store::audit::{AuditEvent, AuditLog};
use admission::{Admitted, WriteScope};
use interceptors::Intercept;
use outcome::{Decision, Outcome};
use resilience::Outgoing;

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
    outbound_counters: outcome::OutboundCounters,
}

/// What every connector's gate shares: the pooled client and where decisions are reported.
#[derive(Clone)]
pub struct GateDeps {
    pub net: Arc<Net>,
    pub audit: AuditLog,
    pub scrubber: Scrubber,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where the grants' budgets take their share of a rate several daemons share.
    pub shares: Arc<crate::capabilities::budget_shares::BudgetShares>,
}

/// Which invocation a request belongs to and who asked for it (both named in its audit rows).
#[derive(Clone)]
struct Caller {
    invocation: Arc<str>,
    principal: Option<Arc<str>>,
    /// Whose turn comes first at the grant's budget (syncs are background).
    class: Class,
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
            shares,
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
            .collect::<Vec<GrantState>>();
        for (g, st) in grants.iter().zip(&states) {
            shares.hold(format!("{connector}/{}", g.name), &st.budget);
        }
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
            outbound_counters: Default::default(),
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
            caller: Caller {
                invocation,
                principal,
                class: Class::Interactive,
            },
            writes_action,
            approved_writes,
            deadline,
            denials: Arc::new(DenialBudget::new(self.limits.denial_budget)),
            header_filter: None,
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

    /// The gate's straight line for one request (see the module's steps).
    async fn send(
        self: Arc<Self>,
        caller: Caller,
        writes_action: Option<Arc<str>>,
        approved_writes: bool,
        deadline: Instant,
        req: Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> SendResult {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let mut ev = self.event(&caller.invocation, caller.principal.as_deref());
        if !self.audit.available() {
            // Fail closed: a request whose row cannot be written does not leave. (Its refusal
            // row waits in the queue and is written when the log recovers.)
            let reason = "audit unavailable: the audit log cannot be written".to_string();
            self.settle(ev, started, Outcome::new(Decision::Error, reason));
            return Err(HttpError::InternalError(Some("audit unavailable".into())));
        }
        let writes = WriteScope {
            action: writes_action.as_deref(),
            approved: approved_writes,
        };
        let Admitted {
            mut parts,
            body,
            grant: idx,
        } = match self.admit(&mut ev, parts, body, writes).await {
            Ok(admitted) => admitted,
            Err(reason) => {
                self.settle(ev, started, Outcome::new(Decision::Deny, reason));
                return Err(HttpError::HttpRequestDenied);
            }
        };
        self.strip_guest_credentials(&mut parts.headers);
        let grant = &self.grants[idx];
        // As i64: OpenTelemetry export has no unsigned integers (a usize would become text).
        let position = i64::try_from(grant.index).unwrap_or(i64::MAX);
        tracing::Span::current().record("grant", position);
        let (recording, ev) = match self.cassette(&parts, &body, grant.index, ev, started) {
            Intercept::Complete(answer) => return answer,
            Intercept::Continue(go_on) => go_on,
        };
        let client = &self
            .net
            .client_for(grant.allow_private, grant.tls_ca.as_ref());
        let credentialed = match self
            .inject(&caller, idx, &mut parts.headers, client, deadline)
            .await
        {
            Ok(credentialed) => credentialed,
            Err(reason) => {
                // A person's missing connection is theirs to fix: the connector (and so the
                // caller) hears where to connect. Other credential failures stay in the audit.
                let told = match &self.auths[idx] {
                    GrantAuth::User(_) | GrantAuth::OnBehalfOf(_) => reason.clone(),
                    _ => "credentials unavailable".into(),
                };
                self.settle(ev, started, Outcome::new(Decision::Error, reason));
                return Err(HttpError::InternalError(Some(told)));
            }
        };
        let out = Outgoing {
            deadline,
            idx,
            parts,
            body,
            timeout: first_byte_timeout(&self.limits, options.as_ref()),
            client,
            credentialed,
            caller: &caller,
        };
        let result = self.send_with_resilience(out, ev, started).await;
        match recording {
            Some(rec) => self.record(rec, result).await,
            None => result,
        }
    }

    /// Breaker, budget and cache state of each grant, for the API and dashboard.
    pub fn grant_status(&self) -> Vec<GrantStatus> {
        self.grants
            .iter()
            .zip(&self.states)
            .map(|(g, s)| {
                let queue = s.budget.queue();
                GrantStatus {
                    grant: g.index,
                    name: g.name.clone(),
                    breaker: s.breaker.state().as_str(),
                    paused_for_secs: s.budget.paused_for().map(|d| d.as_secs_f64()),
                    in_flight: s.budget.in_flight(),
                    queued_interactive: queue.interactive,
                    queued_background: queue.background,
                    oldest_wait_secs: queue.oldest_wait.map(|d| d.as_secs_f64()),
                    rate_per_second: g.resilience.rate_per_second,
                    background_share: g.resilience.background_share,
                    burst: g.resilience.burst,
                    concurrency: g.resilience.concurrency,
                    cache_ttl_secs: g.resilience.cache_ttl.map(|d| d.as_secs_f64()),
                }
            })
            .collect()
    }
}

/// Grant state the gate keeps across invocations.
struct GrantState {
    budget: GrantBudget,
    breaker: Breaker,
    cache: Option<ResponseCache>,
    labels: GrantLabels,
}

/// A grant's metric labels with an outcome (cache hit or miss, breaker transition).
fn outcome_labels(labels: &GrantLabels, outcome: &str) -> GrantOutcomeLabels {
    GrantOutcomeLabels {
        connector: labels.connector.clone(),
        grant: labels.grant.clone(),
        outcome: outcome.to_string(),
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
    /// Callers waiting for a turn at the budget, by class.
    pub queued_interactive: usize,
    pub queued_background: usize,
    /// How long the longest-waiting caller has waited, in seconds.
    pub oldest_wait_secs: Option<f64>,
    pub rate_per_second: f64,
    pub background_share: f64,
    pub burst: u32,
    pub concurrency: u32,
    pub cache_ttl_secs: Option<f64>,
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
