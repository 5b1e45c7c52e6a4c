//! The `wasi:http` hooks of one invocation: the header filter that refuses (and audits)
//! credential headers a connector sets, and `send_request`, which runs the gate under the
//! invocation's denial budget and deadline. Nothing may lose a request's audit row: a panic in
//! the gate, or a request dropped before the gate finished it, still writes one.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use http::{HeaderName, Request};
use tracing::Instrument;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error as HttpError, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

use super::super::budget::Class;
use super::super::denials::{self, DenialBudget, Spend};
use super::outcome::{Decision, Outcome};
use super::{Caller, ConnectorGate, SendResult};

/// Time left to a connector after the gate's last answer, to act on it before its deadline.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// The `WasiHttpHooks` of one invocation.
pub struct InvocationHooks {
    pub(super) gate: Arc<ConnectorGate>,
    pub(super) caller: Caller,
    /// The action's name when the invocation runs an action marked `writes`.
    pub(super) writes_action: Option<Arc<str>>,
    /// Whether a write action's writes were approved (or run by the operator's own code).
    pub(super) approved_writes: bool,
    /// When the invocation will be stopped; the gate never waits past it (less a margin for
    /// the connector to act on the answer).
    pub(super) deadline: Instant,
    /// How many more denials this invocation may cause before it is stopped.
    pub(super) denials: Arc<DenialBudget>,
    /// The header filter, made on first use: wasi:http asks for it for every set of fields
    /// the guest builds (several a request).
    pub(super) header_filter: Option<ForbiddenHeaderFilter>,
}

impl InvocationHooks {
    /// The invocation's denial budget (the runtime stops the invocation once it is spent).
    pub fn denials(&self) -> Arc<DenialBudget> {
        self.denials.clone()
    }

    /// Marks the invocation's requests as background work (a sync): interactive callers of the
    /// same grant get their turns first (see `capabilities/budget.rs`).
    pub fn background(&mut self) {
        self.caller.class = crate::capabilities::budget::Class::Background;
    }
}

impl WasiHttpHooks for InvocationHooks {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        if let Some(filter) = &self.header_filter {
            return filter.clone();
        }
        let gate = self.gate.clone();
        // Only the invocation and its principal are read (the rows it writes name them).
        let caller = self.caller.clone();
        let denials = self.denials.clone();
        let filter: ForbiddenHeaderFilter = Arc::new(move |name: &HeaderName| {
            if !gate.credential_headers.contains(name) {
                return DEFAULT_FORBIDDEN_HEADERS.contains(name);
            }
            if denials.stopped() {
                denials.refuse();
                return true;
            }
            if denials.spend() == Spend::Suppress {
                return true;
            }
            let mut ev = gate.event(&caller.invocation, caller.principal.as_deref());
            ev.event = "header".into();
            let reason = format!(
                "connector tried to set credential header `{name}`; the host injects credentials"
            );
            gate.settle(
                ev,
                Instant::now(),
                Outcome::new(Decision::HeaderRefused, reason),
            );
            true
        });
        self.header_filter = Some(filter.clone());
        filter
    }

    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let budget = self.denials.clone();
        if budget.stopped() {
            // The invocation spent its denial budget: refuse everything, without a row.
            budget.refuse();
            return Box::new(std::future::ready::<SendResult>(Err(
                HttpError::HttpRequestDenied,
            )));
        }
        let gate = self.gate.clone();
        let caller = self.caller.clone();
        let deadline = self
            .deadline
            .checked_sub(DEADLINE_MARGIN)
            .unwrap_or(self.deadline);
        let seen = Seen::of(&request);
        // A child of the invocation's span (current while the guest runs), kept by the request
        // wherever its future is polled. Method and host only: the query and header values may
        // carry secrets. The grant is known once admission matched one (`ConnectorGate::send`).
        let span = tracing::info_span!(
            "outbound",
            connector = %gate.connector,
            method = %seen.method,
            host = seen.host.as_deref().unwrap_or(""),
            grant = tracing::field::Empty,
            invocation = %caller.invocation,
        );
        let send = gate.clone().send(
            caller.clone(),
            self.writes_action.clone(),
            self.approved_writes,
            deadline,
            request,
            options,
        );
        let send = denials::CURRENT.scope(budget, send);
        // Dropped before it finished (the invocation timed out or was stopped while the request
        // was in flight, or its instance was dropped before the request's task first ran): the
        // guard still writes its row. Made here, not in the future, so that a future dropped
        // before its first poll writes one too.
        let mut guard = Unfinished {
            gate: gate.clone(),
            caller: caller.clone(),
            seen: Some(seen),
        };
        let gated = async move {
            // Nothing an upstream sends may take the host down or lose the audit row: a panic
            // anywhere in the gate becomes an audited `error` and a failed request.
            let outcome = AssertUnwindSafe(send).catch_unwind().await;
            let seen = guard.seen.take();
            match outcome {
                Ok(result) => result,
                Err(panic) => Err(gate.abandoned(
                    &caller,
                    seen,
                    &format!("internal error in the gate ({})", panic_text(&*panic)),
                )),
            }
        }
        .instrument(span);
        if self.caller.class == Class::Interactive {
            return Box::new(gated);
        }
        // A sync's request runs as a task of its own, which another worker may take while the
        // guest goes on (a connector that asked for its next page while it turns the last into
        // documents). wasi:http spawns the future returned here too; that later task takes the
        // worker's next-to-run slot, which other workers cannot steal from, and pushes this one
        // to the shared queue. An interactive caller's request skips the extra task: it costs a
        // hop to another core, and such a guest mostly waits for its answer. Dropping the
        // returned future (the guest dropped the request) drops the gate's, as before:
        // `remote_handle` cancels it.
        let (gated, answer) = gated.remote_handle();
        tokio::spawn(gated);
        Box::new(answer)
    }
}

/// Writes the row of a request whose handling was dropped before it finished.
struct Unfinished {
    gate: Arc<ConnectorGate>,
    caller: Caller,
    /// Taken when the handling finished (or panicked, which writes its own row).
    seen: Option<Seen>,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(seen) = self.seen.take() {
            let _ = self.gate.abandoned(
                &self.caller,
                Some(seen),
                "request abandoned before the gate finished it (the invocation ended or the connector dropped it)",
            );
        }
    }
}

/// The message a panic carried, for the error and the audit row.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
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
    fn abandoned(&self, caller: &Caller, seen: Option<Seen>, what: &str) -> HttpError {
        let mut ev = self.event(&caller.invocation, caller.principal.as_deref());
        if let Some(seen) = seen {
            ev.method = Some(seen.method);
            ev.scheme = seen.scheme;
            ev.host = seen.host;
            ev.port = seen.port;
            ev.path = Some(seen.path);
        }
        let reason = format!("{what}; the request may have reached the upstream");
        self.settle(
            ev,
            Instant::now(),
            Outcome::new(Decision::Abandoned, reason),
        );
        HttpError::InternalError(Some("internal error in the gate".into()))
    }
}
