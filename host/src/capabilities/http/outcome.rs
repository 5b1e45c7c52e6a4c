//! How one request through the gate ended, and the one place that writes its audit row, its
//! metrics and its log line: every path of the gate ends in [`ConnectorGate::settle`].

use std::time::Instant;

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
            Decision::Allow => o.status.map(|s| s.to_string()),
            Decision::Deny => Some("denied".into()),
            Decision::Error | Decision::Abandoned => Some("error".into()),
            Decision::HeaderRefused => None,
            other => Some(other.as_str().into()),
        };
        if let Some(status) = counted {
            // Never the requested host: a guest could mint a series per name it asks for.
            let grant = ev.grant.clone().unwrap_or_else(|| "none".into());
            let error = o.decision != Decision::Allow || o.status.is_some_and(|s| s >= 400);
            let latency = (o.decision != Decision::Abandoned).then(|| started.elapsed());
            self.metrics
                .last_hour
                .request(&self.connector, &grant, error, latency);
            self.metrics
                .outbound
                .get_or_create(&OutboundLabels {
                    connector: self.connector.clone(),
                    grant,
                    status,
                })
                .inc();
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
}
