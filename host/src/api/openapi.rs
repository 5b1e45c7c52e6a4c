//! The OpenAPI 3.1 description served at `GET /v1/openapi.json`, built by hand with
//! `serde_json`: the API is small, the handlers take loosely typed JSON (`invoke` input is
//! whatever the action's own schema says), and a derive framework would add a dependency tree
//! and annotations on every handler for little gain. A test checks it against the route table
//! in `api/mod.rs`, which is what the router is built from, so the two cannot drift.

use serde_json::{Value, json};

fn error_ref() -> Value {
    json!({ "$ref": "#/components/schemas/Error" })
}

fn err(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": error_ref() } } })
}

fn ok_json(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description,
            "schema": { "type": "string" } })
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description,
            "schema": schema })
}

fn body(schema: Value, required: bool) -> Value {
    json!({ "required": required, "content": { "application/json": { "schema": schema } } })
}

/// An operation behind a bearer token: adds the security requirement and the 401 answer (and
/// 403 for admin-only operations).
fn secured(mut op: Value, admin: bool) -> Value {
    op["security"] = json!([{ "bearer": [] }]);
    op["responses"]["401"] = err("missing, unknown or revoked token");
    if admin {
        op["responses"]["403"] = err("the token is not an admin token");
        op["x-airlock-access"] = json!("admin");
    } else {
        op["x-airlock-access"] = json!("principal");
    }
    op
}

fn open(mut op: Value) -> Value {
    op["security"] = json!([]);
    op["x-airlock-access"] = json!("open");
    op
}

/// The whole description.
pub fn spec() -> Value {
    let doc_hit = json!({
        "type": "object",
        "properties": {
            "connector": { "type": "string" }, "kind": { "type": "string" },
            "id": { "type": "string" }, "title": { "type": "string" },
            "url": { "type": ["string", "null"] }, "updated_at": { "type": "string" },
            "snippet": { "type": "string", "description": "matched terms wrapped in [ ]" },
            "score": { "type": ["number", "null"], "description": "bm25, lower is better; absent for live hits" },
            "source": { "enum": ["local", "live"] }
        }
    });
    let any_object = json!({ "type": "object" });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Airlock API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every /v1 route needs `Authorization: Bearer <token>` (tokens come from `airlock tokens create`). Answers are scoped to the token's tenant; documents are filtered by their ACL. Errors always have the shape {\"error\": {\"code\", \"message\"}}."
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "an `alk_...` token from `airlock tokens create`" }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": { "type": "string" },
                            "message": { "type": "string" },
                            "retry_after": { "type": "integer", "description": "seconds (429 only)" }
                        }
                    } }
                }
            }
        },
        "paths": {
            "/healthz": { "get": open(json!({
                "summary": "Liveness: `ok` while the daemon runs",
                "responses": { "200": { "description": "ok", "content": { "text/plain": { "schema": { "type": "string" } } } } }
            })) },
            "/readyz": { "get": open(json!({
                "summary": "Readiness: 200 when every configured connector loaded",
                "responses": {
                    "200": { "description": "ready", "content": { "text/plain": { "schema": { "type": "string" } } } },
                    "503": err("connectors that did not load are named")
                }
            })) },
            "/metrics": { "get": open(json!({
                "summary": "Prometheus metrics",
                "description": "Open on a loopback listener unless `[server] metrics_token` is set; otherwise needs `Authorization: Bearer` with the metrics token or an admin API token.",
                "responses": {
                    "200": { "description": "Prometheus text format", "content": { "text/plain": { "schema": { "type": "string" } } } },
                    "401": err("no bearer, or neither the metrics token nor a valid token"),
                    "403": err("a token that is not an admin token")
                }
            })) },
            "/v1/openapi.json": { "get": secured(json!({
                "summary": "This description",
                "responses": { "200": ok_json("OpenAPI 3.1 document", any_object.clone()) }
            }), false) },
            "/v1/connectors": { "get": secured(json!({
                "summary": "The tenant's connectors (status, contract, info, and per grant: breaker state, rate budget, pause, in-flight requests, cache) and routes",
                "responses": { "200": ok_json("connectors and routes", json!({
                    "type": "object",
                    "properties": {
                        "tenant": { "type": "string" },
                        "connectors": { "type": "array", "items": any_object.clone() },
                        "routes": { "type": "array", "items": any_object.clone() }
                    }
                })) }
            }), false) },
            "/v1/connectors/{id}/invoke": { "post": secured(json!({
                "summary": "Run an op or action on a connector (or an action on a route) of the tenant",
                "description": "`op` is info, health, search, get, check-permission, sync (admin only) or an action name. `get` and `search` results are ACL-filtered.",
                "parameters": [path_param("id", "connector or route id")],
                "requestBody": body(json!({
                    "type": "object", "required": ["op"],
                    "properties": { "op": { "type": "string" }, "input": {} },
                    "additionalProperties": false
                }), true),
                "responses": {
                    "200": ok_json("the result", json!({ "type": "object", "properties": { "result": {} } })),
                    "202": ok_json("a write action now waits for approval (see /v1/approvals)", json!({ "type": "object", "properties": { "approval": any_object.clone() } })),
                    "400": err("bad input"),
                    "403": err("the connector refused, or `sync` without an admin token"),
                    "404": err("no such connector or route in the tenant, or no such document"),
                    "429": err("rate-limited (Retry-After)"),
                    "502": err("the upstream refused or failed"),
                    "503": err("the connector did not load"),
                    "504": err("the invocation timed out")
                }
            }), false) },
            "/v1/sync": { "get": secured(json!({
                "summary": "Sync state of the tenant's streams",
                "responses": { "200": ok_json("streams", json!({
                    "type": "object",
                    "properties": { "streams": { "type": "array", "items": any_object.clone() } }
                })) }
            }), false) },
            "/v1/sync/{id}": { "post": secured(json!({
                "summary": "Start sync runs of a connector in the background (admin)",
                "parameters": [path_param("id", "connector id")],
                "requestBody": body(json!({
                    "type": "object",
                    "properties": { "stream": { "type": "string" }, "full": { "type": "boolean" } },
                    "additionalProperties": false
                }), false),
                "responses": {
                    "202": ok_json("streams started", json!({
                        "type": "object",
                        "properties": { "started": { "type": "array", "items": { "type": "string" } } }
                    })),
                    "400": err("bad body or unknown stream"),
                    "404": err("no such connector in the tenant")
                }
            }), true) },
            "/v1/search": { "post": secured(json!({
                "summary": "Search the tenant's documents (local index, optionally live), ACL-filtered",
                "requestBody": body(json!({
                    "type": "object", "required": ["query"],
                    "properties": {
                        "query": { "type": "string" },
                        "connector": { "type": "string" },
                        "kind": { "type": "string" },
                        "limit": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 20 },
                        "live": { "type": "boolean", "default": false },
                        "live_timeout_ms": { "type": "integer", "default": 10000 }
                    },
                    "additionalProperties": false
                }), true),
                "responses": {
                    "200": ok_json("hits", json!({
                        "type": "object",
                        "properties": {
                            "hits": { "type": "array", "items": doc_hit },
                            "failed": { "type": "array", "items": any_object.clone() },
                            "partial": { "type": "boolean" }
                        }
                    })),
                    "400": err("bad body or empty query")
                }
            }), false) },
            "/v1/documents/{connector}/{kind}/{id}": { "get": secured(json!({
                "summary": "One stored document, if the tenant owns the connector and the ACL allows",
                "parameters": [
                    path_param("connector", "connector id"),
                    path_param("kind", "document kind, e.g. page or ticket"),
                    path_param("id", "document id")
                ],
                "responses": {
                    "200": ok_json("the document", json!({
                        "type": "object",
                        "properties": {
                            "connector": { "type": "string" }, "kind": { "type": "string" },
                            "id": { "type": "string" }, "title": { "type": "string" },
                            "body": { "type": "string" }, "url": { "type": ["string", "null"] },
                            "updated_at": { "type": "string" }, "metadata": {}
                        }
                    })),
                    "404": err("no such document, or not readable by the principal")
                }
            }), false) },
            "/v1/audit": { "get": secured(json!({
                "summary": "The latest audit rows of the tenant's connectors and routes (admin)",
                "parameters": [
                    query_param("connector", "only this connector or route", json!({ "type": "string" })),
                    query_param("since", "rows at or after this RFC 3339 time", json!({ "type": "string", "format": "date-time" })),
                    query_param("until", "rows before this RFC 3339 time", json!({ "type": "string", "format": "date-time" })),
                    query_param("decision", "allow, deny, ok or error", json!({ "type": "string" })),
                    query_param("limit", "at most this many rows (newest), oldest first", json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }))
                ],
                "responses": {
                    "200": ok_json("rows", json!({
                        "type": "object",
                        "properties": { "rows": { "type": "array", "items": any_object } }
                    })),
                    "400": err("bad query parameter"),
                    "404": err("no such connector in the tenant")
                }
            }), true) },
            "/v1/approvals": { "get": secured(json!({
                "summary": "The tenant's write approvals, newest first",
                "parameters": [
                    query_param("status", "pending, denied, approved (running), executed or failed", json!({ "type": "string" }))
                ],
                "responses": {
                    "200": ok_json("approvals", json!({
                        "type": "object",
                        "properties": { "approvals": { "type": "array", "items": any_object.clone() } }
                    }))
                }
            }), false) },
            "/v1/approvals/{id}": { "get": secured(json!({
                "summary": "One approval of the tenant: who asked, which action, its input, the decision and the result",
                "parameters": [path_param("id", "approval id (also the invocation id of the audit rows of its run)")],
                "responses": {
                    "200": ok_json("the approval", json!({ "type": "object", "properties": { "approval": any_object.clone() } })),
                    "404": err("no such approval in the tenant")
                }
            }), false) },
            "/v1/approvals/{id}/approve": { "post": secured(json!({
                "summary": "Approve a pending write action and run it once (admin)",
                "parameters": [path_param("id", "approval id")],
                "responses": {
                    "200": ok_json("the approval after its run (executed or failed)", json!({ "type": "object", "properties": { "approval": any_object.clone() } })),
                    "404": err("no such approval in the tenant"),
                    "409": err("already decided: an approval runs at most once")
                }
            }), true) },
            "/v1/approvals/{id}/deny": { "post": secured(json!({
                "summary": "Deny a pending write action; it never runs (admin)",
                "parameters": [path_param("id", "approval id")],
                "responses": {
                    "200": ok_json("the denied approval", json!({ "type": "object", "properties": { "approval": any_object.clone() } })),
                    "404": err("no such approval in the tenant"),
                    "409": err("already decided")
                }
            }), true) }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::Access;

    #[test]
    fn every_route_is_described_with_its_access_and_every_described_route_exists() {
        let spec = spec();
        let paths = spec["paths"].as_object().expect("paths");
        let routes = crate::api::routes();
        for (method, path, access, _) in &routes {
            let m = method.as_str().to_lowercase();
            let op = &spec["paths"][path][&m];
            assert!(op.is_object(), "{method} {path} is not in the OpenAPI spec");
            let (want, security) = match access {
                Access::Open => ("open", json!([])),
                Access::Principal => ("principal", json!([{ "bearer": [] }])),
                Access::Admin => ("admin", json!([{ "bearer": [] }])),
            };
            assert_eq!(op["x-airlock-access"], want, "{method} {path}");
            assert_eq!(op["security"], security, "{method} {path}");
            if *access != Access::Open {
                assert!(op["responses"]["401"].is_object(), "{method} {path}");
            }
        }
        for (path, ops) in paths {
            for m in ops.as_object().expect("ops").keys() {
                assert!(
                    routes
                        .iter()
                        .any(|(rm, rp, _, _)| rp == path && rm.as_str().eq_ignore_ascii_case(m)),
                    "the spec describes {m} {path}, which the router does not serve"
                );
            }
        }
        assert_eq!(spec["openapi"], "3.1.0");
    }
}
