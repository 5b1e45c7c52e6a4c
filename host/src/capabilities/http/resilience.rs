//! How the gate spends and protects a grant's upstream, per attempt: the response cache first,
//! then the circuit breaker (fail fast while open), the rate budget (wait, or answer 429 when
//! the wait would pass the invocation's deadline), one exchange, and a retry of transient
//! failures of idempotent requests with full-jitter backoff or the upstream's `Retry-After`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, header};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime_wasi_http::Error as HttpError;

use super::super::breaker::{Admit, BreakerState};
use super::super::budget::NotBefore;
use super::super::net::UpstreamClient;
use super::super::retry;
use super::interceptors::Intercept;
use super::outcome::{Decision, Outcome};
use super::transport::{Answer, Failure, build_request, respond};
use super::{ConnectorGate, GrantState, SendResult, fits_before, secs_ceil};
use crate::capabilities::cache::CacheKey;
use crate::store::audit::AuditEvent;

/// What `send` hands to the resilience loop once the request is allowed and credentialed.
pub(super) struct Outgoing<'a> {
    pub deadline: Instant,
    pub idx: usize,
    pub parts: http::request::Parts,
    pub body: Bytes,
    pub timeout: Duration,
    pub client: &'a UpstreamClient,
    /// The grant injected a credential: the answer is decoded before it is scrubbed.
    pub credentialed: bool,
    /// Who asks (their class and principal decide their turn at the budget).
    pub caller: &'a super::Caller,
}

/// After one attempt: ask again (after this sleep, if any, with the row the attempt started
/// from), or this is the answer.
enum Step {
    Again(Option<Duration>, AuditEvent),
    Done(SendResult),
}

impl ConnectorGate {
    /// Cache lookup, then attempts under the grant's breaker and budget, retrying transient
    /// failures of idempotent requests while the invocation's deadline allows.
    pub(super) async fn send_with_resilience(
        &self,
        out: Outgoing<'_>,
        ev: AuditEvent,
        started: Instant,
    ) -> SendResult {
        let state = &self.states[out.idx];
        let index = self.grants[out.idx].index;
        let cache_key = match self.cached_answer(state, &out.parts, index, &ev, started) {
            Intercept::Complete(answer) => return answer,
            Intercept::Continue(key) => key,
        };
        let mut attempt = 0u32;
        // Each attempt writes its own row. The first takes `ev` as it is; a retry gets back a
        // copy of the row its attempt started from (only a retry pays for the copy).
        let mut ev = ev;
        loop {
            attempt += 1;
            let attempt_started = Instant::now();
            if attempt > 1 {
                ev.reason = format!("attempt {attempt}");
            }
            let permit = match self.take_turn(state, &out, &ev, started).await {
                Ok(p) => p,
                Err(answer) => return answer,
            };
            let req = build_request(&out.parts, out.body.clone());
            let check_json = self.can_retry(&out, attempt);
            let outcome = self
                .exchange(out.client, req, out.timeout, out.credentialed, check_json)
                .await;
            drop(permit);
            let at = Attempt {
                number: attempt,
                started: attempt_started,
                ev,
            };
            let step = match outcome {
                Ok(answer) => self.answered(state, &out, at, answer, &cache_key),
                Err(failure) => self.failed(state, &out, at, failure),
            };
            match step {
                Step::Done(answer) => return answer,
                Step::Again(sleep, again) => {
                    ev = again;
                    if let Some(wait) = sleep {
                        tokio::time::sleep(wait).await;
                    }
                    self.metrics.retries.get_or_create(&state.labels).inc();
                }
            }
        }
    }

    /// The breaker's and the budget's leave for one attempt, or the gate's own answer: 503
    /// `circuit-open` (no budget spent) or 429 `rate-limited` when the wait would pass the
    /// deadline.
    async fn take_turn(
        &self,
        state: &GrantState,
        out: &Outgoing<'_>,
        ev: &AuditEvent,
        started: Instant,
    ) -> Result<OwnedSemaphorePermit, SendResult> {
        let index = self.grants[out.idx].index;
        let (admit, transition) = state.breaker.admit();
        if let Some(t) = transition {
            self.breaker_moved(state, t);
        }
        if let Admit::FailFast(wait) = admit {
            self.metrics
                .breaker_fail_fast
                .get_or_create(&state.labels)
                .inc();
            let reason = format!(
                "grant[{index}] circuit is open after repeated upstream failures; failing fast for {}s",
                secs_ceil(wait)
            );
            let answer = self.synthetic(
                ev.clone(),
                started,
                503,
                wait,
                Decision::CircuitOpen,
                reason,
            );
            return Err(Ok(answer));
        }
        let mut waited = Duration::ZERO;
        let caller = out.caller.principal.as_deref().unwrap_or("unknown");
        match state
            .budget
            .acquire(out.caller.class, caller, out.deadline, &mut waited)
            .await
        {
            Ok(permit) => {
                if !waited.is_zero() {
                    self.metrics
                        .budget_wait_seconds
                        .get_or_create(&state.labels)
                        .inc_by(waited.as_secs_f64());
                }
                Ok(permit)
            }
            Err(not_before) => {
                state.breaker.release_probe();
                self.metrics.rate_limited.get_or_create(&state.labels).inc();
                let why = match not_before {
                    NotBefore::Paused(_) => "is paused by the upstream's rate-limit signal",
                    NotBefore::Budget(_) => "has no rate budget left",
                };
                let wait = not_before.wait();
                let reason = format!(
                    "grant[{index}] {why} for {}s, past the invocation's deadline; answered rate-limited",
                    secs_ceil(wait)
                );
                let answer = self.synthetic(
                    ev.clone(),
                    started,
                    429,
                    wait,
                    Decision::RateLimited,
                    reason,
                );
                Err(Ok(answer))
            }
        }
    }

    /// An answer arrived: feed the breaker, heed the upstream's rate-limit signal, audit it,
    /// and either retry a transient status or hand the answer over (and keep it in the cache).
    fn answered(
        &self,
        state: &GrantState,
        out: &Outgoing<'_>,
        at: Attempt,
        (rparts, bytes, scrubbed, malformed): Answer,
        cache_key: &Option<CacheKey>,
    ) -> Step {
        let grant = &self.grants[out.idx];
        let status = rparts.status.as_u16();
        let can_retry = self.can_retry(out, at.number);
        // A success that declares JSON but does not parse (cut short, or garbage from a
        // proxy) is an upstream fault; a GET can be asked again safely. (`exchange` parsed it
        // when this attempt can be retried.)
        if can_retry && malformed {
            let r = &grant.resilience;
            let wait = retry::backoff(at.number, r.backoff, r.max_backoff);
            if fits_before(wait, out.deadline) {
                let reason = format!(
                    "grant[{}]; {status} response declared JSON but is malformed or truncated",
                    grant.index
                );
                let outcome = Outcome::new(Decision::Error, reason).status(Some(status));
                let again = at.ev.clone();
                self.settle(at.ev, at.started, outcome);
                return Step::Again(Some(wait), again);
            }
        }
        let moved = if retry::breaker_failure_status(status) {
            state.breaker.failure()
        } else {
            state.breaker.success()
        };
        if let Some(t) = moved {
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
            self.metrics.grant_pauses.get_or_create(&state.labels).inc();
        }
        // A transient status is asked again while the deadline allows: a signalled pause is
        // waited out (or refused) by the budget on the next attempt; otherwise back off with
        // jitter.
        let retry = (can_retry && retry::retryable_status(status))
            .then(|| {
                let r = &grant.resilience;
                signalled.unwrap_or_else(|| retry::backoff(at.number, r.backoff, r.max_backoff))
            })
            .filter(|wait| fits_before(*wait, out.deadline))
            .map(|wait| (signalled.is_none().then_some(wait), at.ev.clone()));
        let mut notes = format!("grant[{}] {}", grant.index, grant.name);
        if !at.ev.reason.is_empty() {
            notes.push_str("; ");
            notes.push_str(&at.ev.reason);
        }
        if scrubbed {
            notes.push_str("; secret value removed from the response");
        }
        let outcome = Outcome::new(Decision::Allow, notes)
            .status(Some(status))
            .bytes(bytes.len());
        self.settle(at.ev, at.started, outcome);
        if let Some((sleep, again)) = retry {
            return Step::Again(sleep, again);
        }
        self.keep_in_cache(state, *cache_key, &rparts, &bytes);
        Step::Done(Ok(respond(rparts.status, rparts.headers, bytes)))
    }

    /// No answer: a refused address is a denial; a withheld answer is the gate's, not the
    /// upstream's, fault; a failure feeds the breaker and is retried when it was the connection.
    fn failed(
        &self,
        state: &GrantState,
        out: &Outgoing<'_>,
        at: Attempt,
        failure: Failure,
    ) -> Step {
        let grant = &self.grants[out.idx];
        match failure {
            Failure::Denied(reason) => {
                state.breaker.release_probe();
                let reason = format!("{reason}; grant[{}] does not allow it", grant.index);
                self.settle(at.ev, at.started, Outcome::new(Decision::Deny, reason));
                Step::Done(Err(HttpError::HttpRequestDenied))
            }
            Failure::Withheld {
                reason,
                code,
                status,
            } => {
                if let Some(t) = state.breaker.success() {
                    self.breaker_moved(state, t);
                }
                let reason = format!("grant[{}]; {reason}", grant.index);
                let outcome = Outcome::new(Decision::Error, reason).status(Some(status));
                self.settle(at.ev, at.started, outcome);
                Step::Done(Err(code))
            }
            Failure::Failed {
                reason,
                code,
                connection,
                status,
            } => {
                if let Some(t) = state.breaker.failure() {
                    self.breaker_moved(state, t);
                }
                let outcome = Outcome::new(Decision::Error, reason).status(status);
                let retry = (connection && self.can_retry(out, at.number))
                    .then(|| {
                        let r = &grant.resilience;
                        retry::backoff(at.number, r.backoff, r.max_backoff)
                    })
                    .filter(|wait| fits_before(*wait, out.deadline))
                    .map(|wait| (wait, at.ev.clone()));
                self.settle(at.ev, at.started, outcome);
                match retry {
                    Some((wait, again)) => Step::Again(Some(wait), again),
                    None => Step::Done(Err(code)),
                }
            }
        }
    }

    /// Whether attempt `number` may be followed by another: idempotent methods only, within the
    /// grant's attempts.
    fn can_retry(&self, out: &Outgoing<'_>, number: u32) -> bool {
        retry::idempotent(&out.parts.method)
            && number < self.grants[out.idx].resilience.retry_attempts
    }

    /// An answer the gate gives in the upstream's stead (rate-limited, circuit open), with a
    /// `Retry-After` the SDK maps to `rate-limited(seconds)`. Audited with `decision`.
    fn synthetic(
        &self,
        ev: AuditEvent,
        started: Instant,
        status: u16,
        wait: Duration,
        decision: Decision,
        reason: String,
    ) -> (
        http::Response<wasmtime_wasi_http::WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) {
        let code = decision.as_str();
        let body = serde_json::json!({"error": {"code": code, "message": reason}}).to_string();
        self.settle(
            ev,
            started,
            Outcome::new(decision, reason).status(Some(status)),
        );
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
            http::HeaderValue::from_static(code),
        );
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
            .get_or_create(&super::outcome_labels(&state.labels, to.as_str()))
            .inc();
    }
}

/// One attempt's audit row and timing.
struct Attempt {
    number: u32,
    started: Instant,
    ev: AuditEvent,
}
