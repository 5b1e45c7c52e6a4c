//! What the daemon serves on its one listener: the REST API ([`crate::api`]) with MCP over
//! streamable HTTP ([`crate::mcp`]) mounted at `/mcp`, and Airlock's own OAuth authorization
//! server ([`crate::api::authorization`], 404 unless configured), under the API's error shape
//! and body limit.

use std::sync::Arc;

use axum::Router;

use crate::app::Airlock;

/// REST, the dashboard and `/mcp`. MCP is a protocol endpoint, not a REST resource, so it
/// stays outside the route table and the OpenAPI description (docs/api.md describes it).
pub fn router(airlock: Arc<Airlock>) -> Router {
    // RFC 9728 metadata, at the root and at the path of `/mcp` (clients try both).
    let metadata = axum::routing::get(crate::api::oauth::resource_metadata);
    let r = crate::api::routes_router(&airlock)
        .route("/mcp", crate::mcp::route(airlock.clone()))
        .route("/.well-known/oauth-protected-resource", metadata.clone())
        .route("/.well-known/oauth-protected-resource/mcp", metadata)
        .merge(crate::api::authorization::routes());
    // Outermost, so a browser's preflight is answered before any access check.
    let cors = axum::middleware::from_fn_with_state(airlock.clone(), crate::api::cors::apply);
    crate::api::finish(r, airlock).layer(cors)
}
