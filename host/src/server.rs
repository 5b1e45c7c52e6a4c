//! What the daemon serves on its one listener: the REST API ([`crate::api`]) with MCP over
//! streamable HTTP ([`crate::mcp`]) mounted at `/mcp`, under the API's error shape and body limit.

use std::sync::Arc;

use axum::Router;

use crate::app::Airlock;

/// REST, the dashboard and `/mcp`. MCP is a protocol endpoint, not a REST resource, so it
/// stays outside the route table and the OpenAPI description (docs/api.md describes it).
pub fn router(airlock: Arc<Airlock>) -> Router {
    let r = crate::api::routes_router(&airlock).route("/mcp", crate::mcp::route(airlock.clone()));
    crate::api::finish(r, airlock)
}
