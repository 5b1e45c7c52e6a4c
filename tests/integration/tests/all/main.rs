//! The end-to-end tests as one test binary, a module per area, so the whole host links into
//! a test executable once instead of once per area. One area:
//! `cargo test --release -p airlock-tests --test all -- loading::`.
//!
//! A new area is a file here and a `mod` line below: a file directly in `tests/` would be a
//! test binary of its own again, linked against the whole host.

mod actions;
mod api_auth;
mod api_schemathesis;
mod approvals;
mod ask;
mod atera;
mod audit;
mod audit_backends;
mod audit_durability;
mod audit_trail;
mod azure;
mod canary;
mod cassette;
mod changes;
mod confluence;
mod conformance;
mod contract_versions;
mod dashboard;
mod delegated_oauth;
mod dist;
mod docs;
mod enterprise_network;
mod gate_auth;
mod gate_cache_and_documents;
mod grant_policy;
mod hooks_in;
mod integrity;
mod invocation_slots;
mod jira;
mod loading;
mod mcp;
mod mcp_oauth;
mod mcp_oauth_entra;
mod mcp_oauth_permissions;
mod mcp_oauth_self;
mod msgraph;
mod multi_daemon;
mod openai;
mod permissions;
mod polyglot;
mod proxy;
mod rate_shares;
mod reflection;
mod reload;
mod resilience;
mod sandbox;
mod scaffold;
mod scheduler;
mod semantic_search;
mod store_backends;
mod store_backends_feed;
mod store_copy;
mod store_faults;
mod store_tls;
mod sync;
mod telemetry;
mod test_pki;
mod ticketzero;
mod token_fetch;
mod tracing_logs;
mod upstream_identities;
mod webhooks;
mod zendesk;
