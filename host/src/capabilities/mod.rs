//! What the host lends a connector, one module per capability.

pub mod address;
pub mod auth;
pub mod breaker;
pub mod budget;
pub mod budget_shares;
pub mod cache;
pub mod decode;
pub mod delegated;
pub mod denials;
pub mod dial;
pub mod egress;
pub mod grant;
pub mod host_imports;
pub mod http;
pub mod net;
pub mod oauth_exchange;
pub mod on_behalf_of;
pub mod path;
pub mod policy;
pub mod principal;
pub mod progress;
pub mod resolver;
pub mod retry;
pub mod secrets;
pub mod trust;
