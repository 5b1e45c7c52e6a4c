//! Airlock: a host that runs connectors as sandboxed WebAssembly components and gates every
//! outbound call they make.

pub mod api;
pub mod app;
pub mod approvals;
pub mod capabilities;
pub mod cassette;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod fair_slots;
pub mod inbound;
pub mod integrity;
pub mod integrity_cli;
pub mod limits;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod model;
pub mod proxy;
pub mod record;
pub mod reload;
pub mod runtime;
pub mod scaffold;
pub mod scheduler;
pub mod scrub;
pub mod search;
pub mod server;
pub mod store;
pub mod subscriptions;
pub mod sync;
pub mod telemetry;
pub mod tls_errors;
pub mod untrusted_text;
pub mod webhooks;
