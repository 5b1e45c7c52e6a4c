//! Prometheus metrics (`GET /metrics`): invocations and their durations, outbound requests by
//! connector, host and status, denials, and synced records.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InvokeLabels {
    pub connector: String,
    /// `info`, `search`, `sync:STREAM`, `action:NAME`, ...
    pub op: String,
    /// `ok` or the error code.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectorLabel {
    pub connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutboundLabels {
    pub connector: String,
    pub host: String,
    /// The HTTP status, or `denied` / `error`.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub connector: String,
    pub stream: String,
}

type Buckets = fn() -> Histogram;

pub struct Metrics {
    registry: Registry,
    pub invocations: Family<InvokeLabels, Counter>,
    pub invocation_seconds: Family<ConnectorLabel, Histogram, Buckets>,
    pub outbound: Family<OutboundLabels, Counter>,
    pub denials: Family<ConnectorLabel, Counter>,
    pub sync_records: Family<StreamLabels, Counter>,
}

fn buckets() -> Histogram {
    // 100 µs .. ~26 s
    Histogram::new(exponential_buckets(0.0001, 4.0, 10))
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("airlock");
        let invocations = Family::<InvokeLabels, Counter>::default();
        let invocation_seconds =
            Family::<ConnectorLabel, Histogram, Buckets>::new_with_constructor(buckets as Buckets);
        let outbound = Family::<OutboundLabels, Counter>::default();
        let denials = Family::<ConnectorLabel, Counter>::default();
        let sync_records = Family::<StreamLabels, Counter>::default();
        registry.register(
            "invocations",
            "Connector invocations by operation and outcome",
            invocations.clone(),
        );
        registry.register(
            "invocation_duration_seconds",
            "Wall time of connector invocations",
            invocation_seconds.clone(),
        );
        registry.register(
            "outbound_requests",
            "Outbound requests by connector, host and status",
            outbound.clone(),
        );
        registry.register(
            "outbound_denials",
            "Outbound requests the gate refused",
            denials.clone(),
        );
        registry.register(
            "sync_records",
            "Records (upserts + deletes) committed by sync",
            sync_records.clone(),
        );
        Arc::new(Metrics {
            registry,
            invocations,
            invocation_seconds,
            outbound,
            denials,
            sync_records,
        })
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
