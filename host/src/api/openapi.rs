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

/// The answers every JSON body can get before its handler runs: too big (413), not declared as
/// JSON (415; the sync trigger reads any body as JSON and never answers it).
fn body_errors(op: &mut Value, checks_type: bool) {
    op["responses"]["413"] = err("the body is larger than 1 MiB");
    if checks_type {
        op["responses"]["415"] = err("the body is not sent as `Content-Type: application/json`");
    }
}

/// A 500 for the routes that read the store: its message says what failed (no secret).
fn store_error(op: &mut Value) {
    op["responses"]["500"] = err("the store could not be read or written");
}

/// An OpenAPI link: `operation_id`'s `parameters` filled from this answer (runtime expressions).
fn link(operation_id: &str, parameters: Value) -> Value {
    json!({ "operationId": operation_id, "parameters": parameters })
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

/// An answer with OpenAPI links to the operations that take what it holds.
fn with_links(mut response: Value, links: Value) -> Value {
    response["links"] = links;
    response
}

/// Links from an answer holding an approval (its id at `pointer`) to the approval's routes.
fn approval_links(pointer: &str) -> Value {
    let id = json!({ "id": format!("$response.body{pointer}") });
    json!({
        "GetApproval": link("getApproval", id.clone()),
        "Approve": link("approve", id.clone()),
        "Deny": link("deny", id)
    })
}

fn open(mut op: Value) -> Value {
    op["security"] = json!([]);
    op["x-airlock-access"] = json!("open");
    op
}

/// The whole description.
/// One connector in `GET /v1/whoami`.
fn whoami_connector() -> Value {
    json!({
        "type": "object",
        "properties": {
            "permissions": { "type": "string", "enum": ["per-record", "tenant"] },
            "upstream_user": { "type": ["string", "null"] },
            "identities": { "type": "array", "items": { "type": "string" } },
            "upstream": {
                "description": "What the connector's `resolve-identity` action said about the caller (null when the connector does not resolve identities or the caller has no email)",
                "type": ["object", "null"],
                "properties": {
                    "status": { "type": "string", "enum": ["resolved", "unknown", "failed"] },
                    "user": { "type": ["string", "null"] },
                    "groups": { "type": "array", "items": { "type": "string" } },
                    "error": { "type": ["string", "null"] },
                    "age_secs": { "type": "integer" },
                    "ttl_secs": { "type": "integer" }
                }
            }
        }
    })
}

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
    let source = json!({
        "type": "object",
        "properties": {
            "ref": { "type": "integer", "description": "the passage's number [n] in the prompt" },
            "connector": { "type": "string" }, "kind": { "type": "string" },
            "id": { "type": "string" }, "title": { "type": "string" },
            "url": { "type": ["string", "null"] }
        }
    });
    let approval = json!({
        "type": "object",
        "properties": {
            "id": { "type": "string" }, "status": { "enum": super::APPROVAL_STATUSES },
            "connector": { "type": "string" }, "action": { "type": "string" }
        }
    });
    let change = json!({
        "type": "object",
        "properties": {
            "seq": { "type": "integer" }, "connector": { "type": "string" },
            "stream": { "type": ["string", "null"] }, "kind": { "type": "string" },
            "id": { "type": "string" }, "op": { "enum": ["upsert", "delete"] },
            "committed_at": { "type": "string" }
        }
    });
    let changes_page = json!({
        "type": "object",
        "required": ["changes", "next"],
        "properties": {
            "changes": { "type": "array", "items": change },
            "next": { "type": "integer", "description": "past every change looked at, also those the caller may not see" }
        }
    });
    let with_body_errors = |mut op: Value, checks_type: bool| {
        body_errors(&mut op, checks_type);
        op
    };
    let with_store_error = |mut op: Value| {
        store_error(&mut op);
        op
    };
    let approval_answer =
        json!({ "type": "object", "properties": { "approval": approval.clone() } });
    let mut spec = json!({
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
                "summary": "Readiness: 200 when the audit log can be written and every connector marked `required` loaded (others that did not load are named in the answer)",
                "responses": {
                    "200": { "description": "ready", "content": { "text/plain": { "schema": { "type": "string" } } } },
                    "503": err("required connectors that did not load are named, or the audit log cannot be written")
                }
            })) },
            "/metrics": { "get": open(json!({
                "summary": "Metrics in the OpenMetrics text format (Prometheus scrapes it)",
                "description": "Open on a loopback listener unless `[server] metrics_token` is set; otherwise needs `Authorization: Bearer` with the metrics token or an admin API token.",
                "responses": {
                    "200": { "description": "OpenMetrics text format", "content": { "application/openmetrics-text": { "schema": { "type": "string" } } } },
                    "401": err("no bearer, or neither the metrics token nor a valid token"),
                    "403": err("a token that is not an admin token")
                }
            })) },
            "/v1/openapi.json": { "get": secured(json!({
                "summary": "This description",
                "responses": { "200": ok_json("OpenAPI 3.1 document", any_object.clone()) }
            }), false) },
            "/v1/connectors": { "get": secured(json!({
                "operationId": "listConnectors",
                "summary": "The tenant's connectors (status, contract, info, and per grant: breaker state, rate budget, pause, in-flight requests, cache) and routes",
                "responses": { "200": with_links(ok_json("connectors and routes", json!({
                    "type": "object",
                    "properties": {
                        "tenant": { "type": "string" },
                        "connectors": { "type": "array", "items": {
                            "type": "object", "properties": { "id": { "type": "string" } } } },
                        "routes": { "type": "array", "items": {
                            "type": "object", "properties": { "name": { "type": "string" } } } },
                        "search_modes": { "type": "array", "items": { "enum": ["keyword", "semantic", "hybrid"] },
                                          "description": "the `mode`s /v1/search takes on this daemon (semantic and hybrid only with [search.semantic])" },
                        "last_reload": { "type": ["object", "null"], "description": "admin tokens only: when the config file was last re-read (null: not since the start) and, if it could not be applied, why",
                                         "properties": { "at": { "type": "string" }, "error": { "type": ["string", "null"] } } }
                    }
                })), json!({
                    "InvokeConnector": link("invoke", json!({ "id": "$response.body#/connectors/0/id" })),
                    "InvokeRoute": link("invoke", json!({ "id": "$response.body#/routes/0/name" })),
                    "SyncConnector": link("startSync", json!({ "id": "$response.body#/connectors/0/id" }))
                })) }
            }), false) },
            "/v1/connectors/{id}/invoke": { "post": secured(with_body_errors(json!({
                "operationId": "invoke",
                "summary": "Run an op or action on a connector (or an action on a route) of the tenant",
                "description": "`op` is info, health, search, get, check-permission, sync (admin only) or an action name. `get` and `search` results are ACL-filtered.",
                "parameters": [path_param("id", "connector or route id")],
                "requestBody": body(json!({
                    "type": "object", "required": ["op"],
                    "properties": {
                        "op": { "type": "string", "minLength": 1, "pattern": super::NONBLANK_PATTERN },
                        "input": { "description": "the op's input: for an action, what the action's `input_schema` (from `info`) says; checked by the host and then by the connector, which answers 400 for input it cannot use" }
                    },
                    "additionalProperties": false
                }), true),
                "responses": {
                    "200": ok_json("the result", json!({ "type": "object", "properties": { "result": {} } })),
                    "202": with_links(ok_json("a write action now waits for approval (see /v1/approvals)", json!({ "type": "object", "properties": { "approval": approval.clone() } })), approval_links("#/approval/id")),
                    "400": err("bad input"),
                    "403": err("the connector refused, or `sync` without an admin token"),
                    "404": err("no such connector or route in the tenant, or no such document"),
                    "429": err("rate-limited (Retry-After)"),
                    "500": err("the connector trapped, ran out of memory, or the store failed"),
                    "502": err("the upstream refused or failed"),
                    "503": err("the connector did not load, or the audit log cannot be written"),
                    "504": err("the invocation timed out")
                }
            }), true), false) },
            "/v1/whoami": { "get": secured(json!({
                "operationId": "whoami",
                "summary": "The caller and the identities its document ACLs are matched against, per connector",
                "responses": { "200": ok_json("the principal", json!({
                    "type": "object",
                    "required": ["name", "tenant", "groups", "admin", "connectors"],
                    "properties": {
                        "name": { "type": "string" },
                        "label": { "type": "string" },
                        "tenant": { "type": "string" },
                        "groups": { "type": "array", "items": { "type": "string" } },
                        "admin": { "type": "boolean" },
                        "email": { "type": ["string", "null"] },
                        "connectors": { "type": "object", "additionalProperties": whoami_connector() }
                    }
                })) }
            }), false) },
            "/v1/sync": { "get": secured(with_store_error(json!({
                "operationId": "syncStatus",
                "summary": "Sync state of the tenant's streams",
                "responses": { "200": with_links(ok_json("streams", json!({
                    "type": "object",
                    "properties": { "streams": { "type": "array", "items": {
                        "type": "object",
                        "properties": { "connector": { "type": "string" }, "stream": { "type": "string" } }
                    } } }
                })), json!({
                    "SyncConnector": link("startSync", json!({
                        "id": "$response.body#/streams/0/connector"
                    }))
                })) }
            })), false) },
            "/v1/sync/{id}": { "post": secured(with_body_errors(json!({
                "operationId": "startSync",
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
                    "400": err("the body is not JSON of this shape"),
                    "404": err("no such connector in the tenant, or no such stream in the connector"),
                    "500": err("the store could not be read or written"),
                    "503": err("the connector did not load")
                }
            }), false), true) },
            "/v1/search": { "post": secured(with_store_error(with_body_errors(json!({
                "operationId": "search",
                "summary": "Search the tenant's documents (local index, optionally live), ACL-filtered",
                "requestBody": body(json!({
                    "type": "object", "required": ["query"],
                    "properties": {
                        "query": { "type": "string", "minLength": 1, "pattern": super::NONBLANK_PATTERN,
                                   "description": "words to find; not blank" },
                        "connector": { "type": "string" },
                        "kind": { "type": "string" },
                        "limit": { "type": "integer", "minimum": 1, "maximum": super::MAX_LIMIT, "default": 20 },
                        "live": { "type": "boolean", "default": false },
                        "live_timeout_ms": { "type": "integer", "minimum": 1, "maximum": 120000, "default": 10000 },
                        "mode": { "type": "string", "enum": ["keyword", "semantic", "hybrid"], "default": "keyword",
                                  "description": "keyword: bm25 full-text; semantic: embedding similarity of chunks; hybrid: both fused by reciprocal rank. semantic and hybrid need [search.semantic] (400 otherwise)" }
                    },
                    "additionalProperties": false
                }), true),
                "responses": {
                    "200": with_links(ok_json("hits", json!({
                        "type": "object",
                        "properties": {
                            "hits": { "type": "array", "items": doc_hit },
                            "failed": { "type": "array", "items": any_object.clone() },
                            "partial": { "type": "boolean" }
                        }
                    })), json!({
                        "GetDocument": link("getDocument", json!({
                            "connector": "$response.body#/hits/0/connector",
                            "kind": "$response.body#/hits/0/kind",
                            "id": "$response.body#/hits/0/id"
                        }))
                    })),
                    "400": err("bad body: a blank query, or a number out of its range"),
                    "503": err("a live search while the audit log cannot be written")
                }
            }), true)), false) },
            "/v1/ask": { "post": secured(with_store_error(with_body_errors(json!({
                "operationId": "ask",
                "summary": "Answer a question from the caller's documents, with citations",
                "description": "Retrieves passages with the same tenant and ACL scope as /v1/search, hands them to the [search.ask] chat connector under instructions to answer from them alone, and returns the answer with the documents it cites (all of them ones the caller may open). Needs [search.ask] (400 otherwise).",
                "requestBody": body(json!({
                    "type": "object", "required": ["question"],
                    "properties": {
                        "question": { "type": "string", "minLength": 1, "maxLength": 4000,
                                      "pattern": super::NONBLANK_PATTERN, "description": "not blank" },
                        "connector": { "type": "string", "description": "only this connector's documents" },
                        "kind": { "type": "string" },
                        "mode": { "type": "string", "enum": ["keyword", "semantic", "hybrid"],
                                  "description": "how passages are found (default: [search.ask] mode)" }
                    },
                    "additionalProperties": false
                }), true),
                "responses": {
                    "200": ok_json("the answer and its sources", json!({
                        "type": "object",
                        "required": ["answer", "grounded", "citations", "sources"],
                        "properties": {
                            "answer": { "type": "string" },
                            "grounded": { "type": "boolean", "description": "false: no passage was found, the model was not asked" },
                            "citations": { "type": "array", "items": source.clone(),
                                           "description": "the sources the answer cites as [n], in order of first citation" },
                            "sources": { "type": "array", "items": source },
                            "model": {}, "usage": {}
                        }
                    })),
                    "400": err("bad body, ask or semantic search not configured, or the chat connector refused the input"),
                    "502": err("the chat provider failed"),
                    "503": err("the chat connector did not load, or the audit log cannot be written"),
                    "504": err("the chat connector timed out")
                }
            }), true)), false) },
            "/v1/documents/{connector}/{kind}/{id}": { "get": secured(with_store_error(json!({
                "operationId": "getDocument",
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
            })), false) },
            "/v1/audit": { "get": secured(with_store_error(json!({
                "operationId": "audit",
                "summary": "The latest audit rows of the tenant's connectors and routes (admin)",
                "parameters": [
                    query_param("connector", "only this connector or route", json!({ "type": "string" })),
                    query_param("since", "rows at or after this RFC 3339 time", json!({ "type": "string", "format": "date-time" })),
                    query_param("until", "rows before this RFC 3339 time", json!({ "type": "string", "format": "date-time" })),
                    query_param("decision", "the gate's allow, deny, error, rate-limited, circuit-open or no-recording; an invocation's ok or error; an approval's pending, approved or denied", json!({ "enum": super::AUDIT_DECISIONS })),
                    query_param("principal", "only rows of work this principal asked for (`token:NAME`, `cli:USER`, `daemon:scheduler`)", json!({ "type": "string" })),
                    query_param("limit", "at most this many rows (newest), oldest first", json!({ "type": "integer", "minimum": 1, "maximum": super::MAX_LIMIT, "default": 100 }))
                ],
                "responses": {
                    "200": ok_json("rows", json!({
                        "type": "object",
                        "properties": { "rows": { "type": "array", "items": any_object } }
                    })),
                    "400": err("an unknown query parameter, or one out of its range or enum"),
                    "404": err("no such connector in the tenant")
                }
            })), true) },
            "/v1/changes": { "get": secured(with_store_error(json!({
                "operationId": "changes",
                "summary": "The change feed: committed upserts and deletes (tombstones) of the tenant's documents after a sequence, in commit order, ACL-filtered; long poll with `wait`",
                "parameters": [
                    query_param("after", "changes with a sequence above this one (the previous answer's `next`); 0 from the start", json!({ "type": "integer", "minimum": 0, "default": 0 })),
                    query_param("connector", "only this connector", json!({ "type": "string" })),
                    query_param("kind", "only this document kind", json!({ "type": "string" })),
                    query_param("limit", "at most this many changes", json!({ "type": "integer", "minimum": 1, "maximum": super::MAX_LIMIT, "default": 100 })),
                    query_param("wait", "seconds to hold the request open until a change arrives", json!({ "type": "integer", "minimum": 0, "maximum": super::MAX_CHANGES_WAIT, "default": 0 }))
                ],
                "responses": {
                    "200": ok_json("changes, and the sequence to ask after next", changes_page),
                    "400": err("an unknown query parameter, or one out of its range"),
                    "404": err("no such connector in the tenant"),
                    "410": err("changes after `after` were pruned (see [changes] retention); the message says where the feed starts")
                }
            })), false) },
            "/v1/approvals": { "get": secured(with_store_error(json!({
                "operationId": "listApprovals",
                "summary": "The tenant's write approvals, newest first",
                "parameters": [
                    query_param("status", "pending, denied, approved (running), executed or failed", json!({ "enum": super::APPROVAL_STATUSES }))
                ],
                "responses": {
                    "200": with_links(ok_json("approvals", json!({
                        "type": "object",
                        "properties": { "approvals": { "type": "array", "items": approval.clone() } }
                    })), approval_links("#/approvals/0/id")),
                    "400": err("an unknown query parameter, or a status that is not one of the enum")
                }
            })), false) },
            "/v1/approvals/{id}": { "get": secured(with_store_error(json!({
                "operationId": "getApproval",
                "summary": "One approval of the tenant: who asked, which action, its input, the decision and the result",
                "parameters": [path_param("id", "approval id (also the invocation id of the audit rows of its run)")],
                "responses": {
                    "200": ok_json("the approval", json!({ "type": "object", "properties": { "approval": approval.clone() } })),
                    "404": err("no such approval in the tenant")
                }
            })), false) },
            "/v1/approvals/{id}/approve": { "post": secured(with_store_error(json!({
                "operationId": "approve",
                "summary": "Approve a pending write action and run it once (admin)",
                "parameters": [path_param("id", "approval id")],
                "responses": {
                    "200": ok_json("the approval after its run (executed or failed)", json!({ "type": "object", "properties": { "approval": approval.clone() } })),
                    "404": err("no such approval in the tenant"),
                    "409": err("already decided: an approval runs at most once")
                }
            })), true) },
            "/v1/approvals/{id}/deny": { "post": secured(with_store_error(json!({
                "operationId": "deny",
                "summary": "Deny a pending write action; it never runs (admin)",
                "parameters": [path_param("id", "approval id")],
                "responses": {
                    "200": ok_json("the denied approval", json!({ "type": "object", "properties": { "approval": approval } })),
                    "404": err("no such approval in the tenant"),
                    "409": err("already decided")
                }
            })), true) }
        }
    });
    spec["paths"][spec_path(super::PROXY_PATH)] = proxy_operations(approval_answer);
    spec["paths"]["/v1/hooks/{connector}"] = json!({ "post": open(json!({
        "operationId": "receiveHook",
        "summary": "Where an upstream pushes change notifications (Zendesk, Jira, Microsoft Graph): verified with the connector's hook secret, then its streams sync",
        "parameters": [path_param("connector", "connector id (with `hook = {...}` in its config)")],
        "requestBody": { "required": false, "content": { "*/*": { "schema": {} } } },
        "responses": {
            "200": { "description": "Graph's subscription handshake: the validationToken, as text/plain", "content": { "text/plain": { "schema": { "type": "string" } } } },
            "202": ok_json("verified: an incremental sync of these streams started (or follows the running one)", json!({ "type": "object", "properties": { "syncing": { "type": "array", "items": { "type": "string" } } } })),
            "401": err("the notification does not verify (signature, timestamp or clientState)"),
            "404": err("no hook is configured for this connector"),
            "413": err("the body is larger than 1 MiB"),
            "503": err("the hook's secret cannot be read, or the audit log cannot be written")
        }
    })) });
    spec["paths"]["/v1/activity"] = activity_operation();
    for (path, ops) in webhook_operations() {
        spec["paths"][path] = ops;
    }
    for (path, ops) in connection_operations() {
        spec["paths"][path] = ops;
    }
    spec
}

/// The last hour per grant and per stream (`api/activity.rs`).
fn activity_operation() -> Value {
    let per_minute = |t: Value| json!({ "type": "array", "items": { "type": t } });
    let grant_total = json!({ "type": "object", "properties": {
        "requests": { "type": "integer" }, "errors": { "type": "integer" },
        "latency_ms_mean": { "type": ["number", "null"] },
        "latency_ms_p95": { "type": ["integer", "null"] },
        "latency_ms_max": { "type": ["integer", "null"] },
        "latency_buckets": { "type": "array", "items": { "type": "integer" },
                             "description": "requests per latency bucket (`latency_bounds_ms`, then slower)" }
    } });
    let grant = json!({
        "type": "object",
        "required": ["connector", "grant", "requests", "errors", "latency_ms_mean", "latency_ms_p95", "total"],
        "properties": {
            "connector": { "type": "string" },
            "grant": { "type": "string", "description": "the grant's name; `none` for requests no grant matched" },
            "requests": per_minute(json!("integer")),
            "errors": per_minute(json!("integer")),
            "latency_ms_mean": per_minute(json!(["number", "null"])),
            "latency_ms_p95": per_minute(json!(["integer", "null"])),
            "total": grant_total
        }
    });
    let stream_total = json!({ "type": "object", "properties": {
        "records": { "type": "integer" }, "pages": { "type": "integer" } } });
    let stream = json!({
        "type": "object",
        "required": ["connector", "stream", "records", "pages", "total"],
        "properties": {
            "connector": { "type": "string" }, "stream": { "type": "string" },
            "records": per_minute(json!("integer")),
            "pages": per_minute(json!("integer")),
            "total": stream_total
        }
    });
    let answer = json!({
        "type": "object",
        "required": ["minutes", "from", "latency_bounds_ms", "grants", "streams"],
        "properties": {
            "minutes": { "type": "integer" },
            "from": { "type": "string", "description": "the start of the first minute (RFC 3339)" },
            "latency_bounds_ms": { "type": "array", "items": { "type": "integer" } },
            "grants": { "type": "array", "items": grant },
            "streams": { "type": "array", "items": stream }
        }
    });
    json!({ "get": secured(json!({
        "operationId": "activity",
        "summary": "The tenant's last hour minute by minute, from the daemon's memory: per grant outbound requests, errors and latency; per stream records synced",
        "description": "Every array holds one entry per minute, oldest first, the current (partial) minute last. An error is a request not answered below 400 (refused, failed, rate-limited, breaker open, or a 4xx/5xx answer). Latency p95 is an upper estimate from the buckets bounded by `latency_bounds_ms`. Kept in memory: a restart starts an empty hour.",
        "responses": { "200": ok_json("the last hour", answer) }
    }), false) })
}

/// The webhook delivery routes (admin).
fn webhook_operations() -> Vec<(&'static str, Value)> {
    let delivery = json!({
        "type": "object",
        "properties": {
            "id": { "type": "string", "description": "the message id, sent as `webhook-id`" },
            "webhook": { "type": "string" }, "connector": { "type": "string" },
            "change_seq": { "type": "integer" },
            "status": { "enum": super::webhooks::DELIVERY_STATUSES },
            "attempts": { "type": "integer" }, "next_attempt_ms": { "type": "integer" },
            "last_status": { "type": ["integer", "null"] }, "last_error": { "type": ["string", "null"] },
            "created_at": { "type": "string" }, "delivered_at": { "type": ["string", "null"] }
        }
    });
    let hook = json!({
        "type": "object",
        "properties": {
            "name": { "type": "string" }, "url": { "type": "string" },
            "pending": { "type": "integer" }, "delivered": { "type": "integer" }, "dead": { "type": "integer" },
            "cursor": { "type": ["integer", "null"], "description": "the last change sequence fanned out" },
            "last_error": { "type": ["string", "null"] }, "last_delivered_at": { "type": ["string", "null"] }
        }
    });
    let name = path_param("name", "webhook name (`[[webhook]] name`)");
    let with_store = |mut op: Value| {
        store_error(&mut op);
        op
    };
    vec![
        (
            "/v1/webhooks",
            json!({ "get": secured(with_store(json!({
            "operationId": "listWebhooks",
            "summary": "The tenant's webhooks and their delivery state (admin)",
            "responses": {
                "200": with_links(ok_json("the webhooks", json!({ "type": "object", "properties": {
                    "webhooks": { "type": "array", "items": hook } } })),
                    json!({ "Deliveries": link("listDeliveries", json!({ "name": "$response.body#/webhooks/0/name" })) }))
            }
        })), true) }),
        ),
        (
            "/v1/webhooks/{name}/deliveries",
            json!({ "get": secured(with_store(json!({
            "operationId": "listDeliveries",
            "summary": "A webhook's deliveries, newest change first (admin)",
            "parameters": [name.clone(),
                query_param("status", "only deliveries with this status", json!({ "enum": super::webhooks::DELIVERY_STATUSES })),
                query_param("limit", "most deliveries to return", json!({ "type": "integer", "minimum": 1, "maximum": super::MAX_LIMIT, "default": 100 }))],
            "responses": {
                "200": ok_json("the deliveries", json!({ "type": "object", "properties": {
                    "deliveries": { "type": "array", "items": delivery } } })),
                "400": err("an unknown query parameter, a status not in the enum, or a limit out of range"),
                "404": err("no such webhook in the tenant")
            }
        })), true) }),
        ),
        (
            "/v1/webhooks/{name}/deliveries/{id}/retry",
            json!({ "post": secured(with_store(json!({
            "operationId": "retryDelivery",
            "summary": "Send a dead-lettered delivery again (admin)",
            "parameters": [name, path_param("id", "delivery id")],
            "responses": {
                "202": ok_json("queued again, due now", json!({ "type": "object", "properties": { "retrying": { "type": "string" } } })),
                "404": err("no such webhook in the tenant, or no dead delivery with this id")
            }
        })), true) }),
        ),
    ]
}

/// A route path as OpenAPI writes it: the router's catch-all `{*rest}` is a plain `{rest}`.
pub fn spec_path(route: &str) -> String {
    route.replace("{*", "{")
}

/// The egress proxy, one operation per method it forwards.
fn proxy_operations(approval: Value) -> Value {
    let mut ops = serde_json::Map::new();
    for (method, _) in super::PROXY_METHODS {
        let m = method.as_str().to_lowercase();
        let mut op = secured(
            json!({
                "operationId": format!("proxy{}{}", &method.as_str()[..1], &m[1..]),
                "summary": format!("Send a {method} request upstream through the connector's gate (tokens with the `proxy` scope for it)"),
                "description": "Forwarded to the connector's `base_url` joined with `path` (slashes included) and the query, under the connector's grants: credentials injected, path and method rules, budgets, retries, breaker, audit rows naming the caller. The upstream's answer comes back as sent (any status, any content type), with `x-airlock-invocation` naming its audit rows; hop-by-hop headers and cookies are not forwarded either way. A write (a write method through a grant with `writes = true`) that the grant does not pre-approve waits for an approval (202).",
                "parameters": [
                    path_param("connector", "connector id (of the token's tenant, in its `proxy` scope)"),
                    path_param("path", "the path below the connector's `base_url`")
                ],
                "responses": {
                    "200": { "description": "the upstream's answer (its own status, headers and body)" },
                    "202": ok_json("a write waiting for an approval", approval.clone()),
                    "400": err("the connector has no `base_url`, or the target is not a valid URL"),
                    "403": err("the token has no `proxy` scope for the connector, or the gate refused the request (the reason is its audit row's)"),
                    "404": err("no such connector in the tenant"),
                    "502": err("the upstream failed or the gate withheld its answer"),
                    "503": err("the connector is not loaded, or the audit log cannot be written"),
                    "504": err("the upstream did not answer in time")
                }
            }),
            false,
        );
        if method != http::Method::GET && method != http::Method::DELETE {
            op["requestBody"] =
                json!({ "required": false, "content": { "*/*": { "schema": {} } } });
            body_errors(&mut op, false);
        }
        ops.insert(m, op);
    }
    Value::Object(ops)
}

/// People's connections to upstreams (`oauth2-user` grants, see `api/connections.rs`).
fn connection_operations() -> Vec<(&'static str, Value)> {
    let connector = path_param("connector", "connector id (with an `oauth2-user` grant)");
    let with_store_error = |mut op: Value| {
        store_error(&mut op);
        op
    };
    vec![
        (
            "/v1/connections",
            json!({ "get": secured(with_store_error(json!({
            "operationId": "listConnections",
            "summary": "The caller's connections to the tenant's connectors with an `oauth2-user` grant (never a token)",
            "responses": { "200": ok_json("connections", json!({
                "type": "object",
                "properties": {
                    "principal": { "type": "string" },
                    "connections": { "type": "array", "items": {
                        "type": "object", "required": ["connector", "connected", "connect"],
                        "properties": {
                            "connector": { "type": "string" },
                            "connected": { "type": "boolean" },
                            "connected_at": { "type": "string" },
                            "access_expires_at": { "type": "string" },
                            "refreshable": { "type": "boolean" },
                            "scopes": { "type": "array", "items": { "type": "string" } },
                            "connect": { "type": "string" }
                        }
                    } }
                }
            })) }
        })), false) }),
        ),
        (
            "/v1/connections/{connector}/authorize",
            json!({ "get": secured(with_store_error(json!({
            "operationId": "connectAuthorize",
            "summary": "Start connecting the caller's own upstream account: 302 to the upstream's sign-in (authorization code with PKCE)",
            "parameters": [connector.clone(), query_param("login_hint", "passed on to the upstream's sign-in", json!({ "type": "string", "maxLength": 256 }))],
            "responses": {
                "302": { "description": "to the upstream's authorize endpoint (also in the body)", "content": { "application/json": { "schema": { "type": "object", "properties": { "authorize_url": { "type": "string" } } } } } },
                "400": err("the caller has no email, and the grant connects only the principal's own account (`verify_account`)"),
                "404": err("no such connector in the tenant, or it has no `oauth2-user` grant")
            }
        })), false) }),
        ),
        (
            "/v1/connections/{connector}/callback",
            json!({ "get": open(json!({
            "operationId": "connectCallback",
            "summary": "Where the upstream sends the browser back: exchanges the code and stores the person's tokens, encrypted",
            "parameters": [connector.clone(),
                query_param("state", "the single-use state the connect started with", json!({ "type": "string" })),
                query_param("code", "the upstream's authorization code", json!({ "type": "string" })),
                query_param("error", "the upstream's error, when it did not connect", json!({ "type": "string" })),
                query_param("error_description", "the upstream's description of it", json!({ "type": "string" }))],
            "responses": {
                "200": ok_json("connected", json!({ "type": "object", "properties": { "connector": { "type": "string" }, "connected": { "type": "boolean" }, "principal": { "type": "string" } } })),
                "400": err("unknown, used or expired state, a refused code, or the upstream's error"),
                "403": err("the account signed in upstream is not the principal's own: nothing was connected"),
                "404": err("no such connector, or it has no `oauth2-user` grant"),
                "500": err("the store failed")
            }
        })) }),
        ),
        (
            "/v1/connections/{connector}",
            json!({ "delete": secured(with_store_error(json!({
            "operationId": "disconnect",
            "summary": "Disconnect the caller's upstream account at once, and revoke its token upstream when the grant names a `revoke_url`",
            "parameters": [connector],
            "responses": {
                "200": ok_json("the outcome", json!({ "type": "object", "properties": { "connector": { "type": "string" }, "disconnected": { "type": "boolean" }, "revoke_error": { "type": ["string", "null"] } } })),
                "404": err("no such connector in the tenant, or it has no `oauth2-user` grant")
            }
        })), false) }),
        ),
    ]
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
            let op = &spec["paths"][spec_path(path)][&m];
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
                    routes.iter().any(|(rm, rp, _, _)| spec_path(rp) == *path
                        && rm.as_str().eq_ignore_ascii_case(m)),
                    "the spec describes {m} {path}, which the router does not serve"
                );
            }
        }
        assert_eq!(spec["openapi"], "3.1.0");
    }

    #[test]
    fn every_link_names_an_operation_that_takes_the_parameters_it_fills() {
        let spec = spec();
        let mut ops = std::collections::HashMap::new();
        for (_, methods) in spec["paths"].as_object().expect("paths") {
            for (_, op) in methods.as_object().expect("ops") {
                if let Some(id) = op["operationId"].as_str() {
                    assert!(
                        ops.insert(id.to_string(), op.clone()).is_none(),
                        "{id} twice"
                    );
                }
            }
        }
        let mut links = 0;
        for (_, methods) in spec["paths"].as_object().expect("paths") {
            for (_, op) in methods.as_object().expect("ops") {
                for (_, response) in op["responses"].as_object().expect("responses") {
                    let Some(ls) = response["links"].as_object() else {
                        continue;
                    };
                    for (name, l) in ls {
                        links += 1;
                        let target = l["operationId"].as_str().expect("operationId");
                        let t = ops
                            .get(target)
                            .unwrap_or_else(|| panic!("{name}: {target}?"));
                        for (p, expr) in l["parameters"].as_object().expect("parameters") {
                            let params = t["parameters"].as_array().expect("params");
                            assert!(
                                params.iter().any(|q| q["name"] == p.as_str()),
                                "{name}: {p}"
                            );
                            assert!(
                                expr.as_str()
                                    .is_some_and(|e| e.starts_with("$response.body#/"))
                            );
                        }
                    }
                }
            }
        }
        assert!(links >= 8, "{links} links");
    }
}
