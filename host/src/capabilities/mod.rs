//! What the host lends a connector, one module per capability.

pub mod auth;
pub mod http;
pub mod net;
pub mod policy;
pub mod secrets;
