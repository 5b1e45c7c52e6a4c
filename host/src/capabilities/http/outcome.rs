//! How one request through the gate ended, and the one place that writes its audit row, its
//! metrics and its log line: every path of the gate ends in [`ConnectorGate::settle`].

use std::time::Instant;

use prometheus_client::metrics::counter::Counter;

use crate::metrics::{ConnectorLabel, OutboundLabels};
use crate::store::audit::AuditEvent;

use super::super::denials::{self, Spend};
use super::{ConnectorGate, ms};

/// What the gate decided, as the audit row's `decision` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Sent (or answered from the cache or a cassette) and handed to the connector.
    Allow,
    /// Refused before anything was sent.
    Deny,
    /// Allowed, but it failed upstream or the gate withheld the answer.
    Error,
    /// The gate answered 429 in the upstream's stead: no budget before the deadline.
    RateLimited,
    /// The gate answered 503 in the upstream's stead: the grant's breaker is open.
    CircuitOpen,
    /// Replaying, and the cassette holds no answer for the request.
    NoRecording,
    /// The connector tried to set a credential header (refused by the header filter).
    HeaderRefused,
    /// The gate's own fault: its handling panicked or was dropped before it finished.
    Abandoned,
}

impl Decision {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny | Decision::HeaderRefused => "deny",
            Decision::Error | Decision::Abandoned => "error",
            Decision::RateLimited => "rate-limited",
            Decision::CircuitOpen => "circuit-open",
            Decision::NoRecording => "no-recording",
        }
    }
}

/// One request's end: the decision, what the upstream (or the gate) answered, and why.
pub(super) struct Outcome {
    pub decision: Decision,
    /// The answer's status, when there was one.
    pub status: Option<u16>,
    /// The body's size, for answers handed over.
    pub bytes: Option<u64>,
    pub reason: String,
}

impl Outcome {
    pub(super) fn new(decision: Decision, reason: String) -> Outcome {
        Outcome {
            decision,
            status: None,
            bytes: None,
            reason,
        }
    }

    pub(super) fn status(mut self, status: Option<u16>) -> Outcome {
        self.status = status;
        self
    }

    pub(super) fn bytes(mut self, bytes: usize) -> Outcome {
        self.bytes = Some(bytes as u64);
        self
    }
}

impl ConnectorGate {
    /// Writes the outcome of one request: its audit row (latency from `started`), the outbound
    /// counter, the denial counter and a log line. Past the invocation's denial budget a denial
    /// costs no row and no log line: the invocation is being stopped and its summary row counts
    /// them.
    pub(super) fn settle(&self, mut ev: AuditEvent, started: Instant, o: Outcome) {
        if o.decision == Decision::Deny
            && let Some(budget) = denials::current()
            && budget.spend() == Spend::Suppress
        {
            return;
        }
        let reason = || self.scrubber.scrub(&o.reason);
        let (invocation, connector) = (&ev.invocation, &self.connector);
        match o.decision {
            Decision::Deny => {
                tracing::warn!(%connector, %invocation, "outbound request denied: {}", reason())
            }
            Decision::Error => {
                tracing::warn!(%connector, %invocation, "outbound request failed: {}", reason())
            }
            Decision::RateLimited | Decision::CircuitOpen => {
                tracing::info!(%connector, %invocation, "{}", reason())
            }
            Decision::NoRecording => tracing::warn!(%connector, %invocation, "{}", reason()),
            Decision::Abandoned => tracing::error!(%connector, %invocation, "{}", reason()),
            // Inside the request's span (see `hooks`): the line an operator follows it by.
            Decision::Allow => tracing::debug!(
                status = o.status,
                ms = ms(started.elapsed()),
                "outbound request answered"
            ),
            Decision::HeaderRefused => {}
        }
        let counted = match o.decision {
            Decision::Allow => o.status.map(StatusKey::Code),
            Decision::Deny => Some(StatusKey::Word("denied")),
            Decision::Error | Decision::Abandoned => Some(StatusKey::Word("error")),
            Decision::HeaderRefused => None,
            other => Some(StatusKey::Word(other.as_str())),
        };
        if let Some(status) = counted {
            // Never the requested host: a guest could mint a series per name it asks for.
            let grant = ev.grant.as_deref().unwrap_or("none");
            let error = o.decision != Decision::Allow || o.status.is_some_and(|s| s >= 400);
            let latency = (o.decision != Decision::Abandoned).then(|| started.elapsed());
            self.metrics
                .last_hour
                .request(&self.connector, grant, error, latency);
            self.outbound_counter(grant, status).inc();
        }
        if o.decision == Decision::Deny {
            self.metrics
                .denials
                .get_or_create(&ConnectorLabel {
                    connector: self.connector.clone(),
                })
                .inc();
        }
        ev.decision = o.decision.as_str().into();
        ev.reason = o.reason;
        if o.status.is_some() {
            ev.status = o.status;
        }
        if o.bytes.is_some() {
            ev.bytes = o.bytes;
        }
        // Rows the gate writes outside a request's own timing carry no latency.
        if !matches!(o.decision, Decision::HeaderRefused | Decision::Abandoned) {
            ev.latency_ms = Some(ms(started.elapsed()));
        }
        self.audit.record(ev);
    }

    /// The `airlock_outbound_requests` counter of a grant and status. Found without allocating
    /// (the request path): the labels are built once per series, on its first request.
    fn outbound_counter(&self, grant: &str, status: StatusKey) -> Counter {
        let mut known = self
            .outbound_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(c) = known.get(grant).and_then(|m| m.get(&status)) {
            return c.clone();
        }
        let c = self
            .metrics
            .outbound
            .get_or_create(&OutboundLabels {
                connector: self.connector.clone(),
                grant: grant.to_string(),
                status: status.to_string(),
            })
            .clone();
        known
            .entry(grant.to_string())
            .or_default()
            .insert(status, c.clone());
        c
    }
}

/// A request's status as the outbound counter labels it: the HTTP status, or what the gate did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum StatusKey {
    Code(u16),
    Word(&'static str),
}

impl std::fmt::Display for StatusKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusKey::Code(c) => write!(f, "{c}"),
            StatusKey::Word(w) => f.write_str(w),
        }
    }
}

/// Each grant's outbound counters by status (see [`ConnectorGate::outbound_counter`]).
pub(super) type OutboundCounters = std::sync::Mutex<
    std::collections::HashMap<String, std::collections::HashMap<StatusKey, Counter>>,
>;
