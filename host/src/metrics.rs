//! Prometheus metrics (`GET /metrics`): invocations and their durations, outbound requests by
//! connector, grant and status, denials, and synced records.
//!
//! Every label value comes from the configuration or a fixed set: connector ids, grant names,
//! the contract's operations with the action and stream names the connector declares, status
//! codes. Nothing a guest (a host name it asks for) or a caller (an op name it sends) chooses
//! becomes a label, so neither can grow the series without bound nor plant text in them.
//!
//! Beside them, [`last_hour`] keeps the last hour per minute in memory for the dashboard.

pub mod last_hour;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InvokeLabels {
    pub connector: String,
    /// `info`, `search`, `sync:STREAM`, `action:NAME`, ... with only declared streams and
    /// actions named (`action:undeclared` otherwise).
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
    /// The grant's configured name; `none` for requests no grant matched.
    pub grant: String,
    /// The HTTP status, or `denied` / `error`.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub connector: String,
    pub stream: String,
}

/// One grant of one connector (`grant` is its configured name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabels {
    pub connector: String,
    pub grant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantOutcomeLabels {
    pub connector: String,
    pub grant: String,
    /// `hit`/`miss` for the cache; the new state for breaker transitions.
    pub outcome: String,
}

type Buckets = fn() -> Histogram;

pub struct Metrics {
    registry: Registry,
    pub invocations: Family<InvokeLabels, Counter>,
    pub invocation_seconds: Family<ConnectorLabel, Histogram, Buckets>,
    pub outbound: Family<OutboundLabels, Counter>,
    pub denials: Family<ConnectorLabel, Counter>,
    pub sync_records: Family<StreamLabels, Counter>,
    pub retries: Family<GrantLabels, Counter>,
    pub budget_wait_seconds: Family<GrantLabels, Counter<f64, AtomicU64>>,
    pub grant_pauses: Family<GrantLabels, Counter>,
    pub rate_limited: Family<GrantLabels, Counter>,
    pub breaker_state: Family<GrantLabels, Gauge>,
    pub breaker_transitions: Family<GrantOutcomeLabels, Counter>,
    pub breaker_fail_fast: Family<GrantLabels, Counter>,
    pub cache: Family<GrantOutcomeLabels, Counter>,
    /// Invocations stopped because they spent their denial budget.
    pub denial_budget_stops: Family<ConnectorLabel, Counter>,
    /// Callers waiting for a turn at a grant's budget, by class (set when scraped).
    pub budget_queue: Family<GrantClassLabels, Gauge>,
    /// How long the longest-waiting caller of a grant has waited (set when scraped).
    pub budget_oldest_wait: Family<GrantLabels, Gauge<f64, AtomicU64>>,
    /// 1 for a connector that is loaded and serving, 0 for one that failed (set when scraped).
    pub connector_loaded: Family<ConnectorLabel, Gauge>,
    /// When each stream last synced to the end, Unix seconds (set when scraped).
    pub sync_last_success: Family<StreamLabels, Gauge<f64, AtomicU64>>,
    /// Each provider a route tried, by outcome (`ok` or why it was skipped).
    pub route_attempts: Family<RouteLabels, Counter>,
    /// Wall time of each provider's attempt within a route.
    pub route_attempt_seconds: Family<RouteProviderLabels, Histogram, Buckets>,
    /// Tokens a provider reported in answers it gave through a route (`usage`).
    pub llm_tokens: Family<TokenLabels, Counter>,
    /// Webhook delivery attempts by outcome: `delivered`, `retry` or `dead`.
    pub webhook_attempts: Family<WebhookLabels, Counter>,
    /// Invocations waiting for a turn among their tenant's (`[invocations]` caps), per tenant
    /// (set when scraped).
    pub invocations_waiting: Family<TenantLabel, Gauge>,
    /// Invocations running, per tenant (set when scraped).
    pub invocations_running: Family<TenantLabel, Gauge>,
    /// Per grant and per stream, the last hour minute by minute (the dashboard's charts).
    pub last_hour: last_hour::LastHour,
}

/// A tenant from the configuration (empty for a route whose connectors span tenants).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabel {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub webhook: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub connector: String,
    /// `ok`, or why the route moved on: `timeout`, `rate-limited`, `content-filter`, ...
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteProviderLabels {
    pub route: String,
    pub connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub connector: String,
    /// `prompt` or `completion`.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// The content type of [`Metrics::render`]: the OpenMetrics text format, which is what the
/// encoder writes (with its `# EOF`).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantClassLabels {
    pub connector: String,
    pub grant: String,
    /// `interactive` or `background`.
    pub class: String,
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
            "Outbound requests by connector, grant and status",
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
        let retries = Family::<GrantLabels, Counter>::default();
        let budget_wait_seconds = Family::<GrantLabels, Counter<f64, AtomicU64>>::default();
        let grant_pauses = Family::<GrantLabels, Counter>::default();
        let rate_limited = Family::<GrantLabels, Counter>::default();
        let breaker_state = Family::<GrantLabels, Gauge>::default();
        let breaker_transitions = Family::<GrantOutcomeLabels, Counter>::default();
        let breaker_fail_fast = Family::<GrantLabels, Counter>::default();
        let cache = Family::<GrantOutcomeLabels, Counter>::default();
        registry.register(
            "outbound_retries",
            "Upstream requests the gate sent again after a transient failure",
            retries.clone(),
        );
        registry.register(
            "grant_budget_wait_seconds",
            "Time requests waited for a grant's rate budget, concurrency slot or pause",
            budget_wait_seconds.clone(),
        );
        registry.register(
            "grant_pauses",
            "Times an upstream's Retry-After or exhausted rate window paused a whole grant",
            grant_pauses.clone(),
        );
        registry.register(
            "grant_rate_limited",
            "Requests answered rate-limited to the connector instead of waiting past its deadline",
            rate_limited.clone(),
        );
        registry.register(
            "breaker_state",
            "Circuit breaker state per grant: 0 closed, 1 open, 2 half-open",
            breaker_state.clone(),
        );
        registry.register(
            "breaker_transitions",
            "Circuit breaker state changes per grant, by new state",
            breaker_transitions.clone(),
        );
        registry.register(
            "breaker_fail_fast",
            "Requests failed fast because the grant's circuit was open",
            breaker_fail_fast.clone(),
        );
        registry.register(
            "response_cache",
            "GET response cache lookups per grant, by hit or miss",
            cache.clone(),
        );
        let denial_budget_stops = Family::<ConnectorLabel, Counter>::default();
        registry.register(
            "denial_budget_stops",
            "Invocations stopped after too many denied outbound requests",
            denial_budget_stops.clone(),
        );
        let budget_queue = Family::<GrantClassLabels, Gauge>::default();
        registry.register(
            "grant_budget_queue",
            "Callers waiting for a turn at a grant's rate budget, by class",
            budget_queue.clone(),
        );
        let budget_oldest_wait = Family::<GrantLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "grant_budget_oldest_wait_seconds",
            "How long the longest-waiting caller of a grant has waited for its turn",
            budget_oldest_wait.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "build_info",
            "The running airlock's version (always 1)",
            build_info.clone(),
        );
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        let connector_loaded = Family::<ConnectorLabel, Gauge>::default();
        registry.register(
            "connector_loaded",
            "1 when the connector is loaded and serving, 0 when it failed to load",
            connector_loaded.clone(),
        );
        let sync_last_success = Family::<StreamLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "sync_last_success_timestamp_seconds",
            "When the stream last synced to the end (Unix time)",
            sync_last_success.clone(),
        );
        let route_attempts = Family::<RouteLabels, Counter>::default();
        registry.register(
            "route_attempts",
            "Providers a route tried, by outcome (ok, or why it moved on)",
            route_attempts.clone(),
        );
        let route_attempt_seconds =
            Family::<RouteProviderLabels, Histogram, Buckets>::new_with_constructor(
                buckets as Buckets,
            );
        registry.register(
            "route_attempt_duration_seconds",
            "Wall time of each provider's attempt within a route",
            route_attempt_seconds.clone(),
        );
        let llm_tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "llm_tokens",
            "Tokens providers reported (usage) in answers given through a route",
            llm_tokens.clone(),
        );
        let webhook_attempts = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by outcome (delivered, retry, dead)",
            webhook_attempts.clone(),
        );
        let invocations_waiting = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "invocations_waiting",
            "Invocations waiting for a turn within their tenant's or the node's cap ([invocations])",
            invocations_waiting.clone(),
        );
        let invocations_running = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "invocations_running",
            "Invocations running, per tenant",
            invocations_running.clone(),
        );
        Arc::new(Metrics {
            invocations_waiting,
            invocations_running,
            last_hour: last_hour::LastHour::default(),
            webhook_attempts,
            route_attempts,
            route_attempt_seconds,
            llm_tokens,
            connector_loaded,
            sync_last_success,
            budget_queue,
            budget_oldest_wait,
            denial_budget_stops,
            registry,
            invocations,
            invocation_seconds,
            outbound,
            denials,
            sync_records,
            retries,
            budget_wait_seconds,
            grant_pauses,
            rate_limited,
            breaker_state,
            breaker_transitions,
            breaker_fail_fast,
            cache,
        })
    }

    /// Sets the per-tenant invocation gauges: every tenant in `tenants` (0 when idle) and any
    /// other with runs (a route across tenants, a tenant removed by a reload while its calls
    /// finish); series of tenants that are neither are dropped.
    pub fn set_invocation_load<'a>(
        &self,
        tenants: impl IntoIterator<Item = &'a str>,
        load: &[(String, usize, usize)],
    ) {
        let mut values: std::collections::BTreeMap<String, (usize, usize)> = tenants
            .into_iter()
            .map(|t| (t.to_string(), (0, 0)))
            .collect();
        for (tenant, running, waiting) in load {
            values.insert(tenant.clone(), (*running, *waiting));
        }
        self.invocations_waiting.clear();
        self.invocations_running.clear();
        for (tenant, (running, waiting)) in values {
            let label = TenantLabel { tenant };
            self.invocations_running
                .get_or_create(&label)
                .set(running as i64);
            self.invocations_waiting
                .get_or_create(&label)
                .set(waiting as i64);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_gauges_show_each_tenant_and_drop_one_no_longer_configured() {
        let m = Metrics::new();
        let load = [("acme".to_string(), 2, 5), ("".to_string(), 1, 0)];
        m.set_invocation_load(["acme", "beta"], &load);
        let text = m.render();
        for line in [
            "airlock_invocations_waiting{tenant=\"acme\"} 5",
            "airlock_invocations_waiting{tenant=\"beta\"} 0",
            "airlock_invocations_running{tenant=\"acme\"} 2",
            "airlock_invocations_running{tenant=\"\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        // A reload removed beta, acme's queue drained.
        m.set_invocation_load(["acme"], &[]);
        let text = m.render();
        assert!(text.contains("airlock_invocations_waiting{tenant=\"acme\"} 0"));
        assert!(!text.contains("tenant=\"beta\""), "{text}");
        assert!(!text.contains("tenant=\"\""), "{text}");
    }
}
