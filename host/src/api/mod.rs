//! The daemon's HTTP API on loopback: open `/healthz`, `/readyz`, `/metrics`, and under `/v1`
//! (bearer token required, answers scoped to the principal's tenant) connectors, invoke, sync,
//! search, documents, audit and the OpenAPI description. Errors are JSON of one shape:
//! `{"error": {"code": "...", "message": "..."}}`.

pub mod access_log;
pub mod activity;
pub mod ask;
pub mod auth;
pub mod authorization;
pub mod body;
pub mod connections;
pub mod cors;
pub mod dashboard;
pub mod entra_groups;
pub mod errors;
pub mod hooks;
pub mod oauth;
pub mod openapi;
pub mod proxy;
pub mod ttl_cache;
pub mod upstream_identities;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get, on, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use crate::app::Airlock;
use crate::runtime::connector::{InvokeError, Op};
use auth::{Access, Principal};
pub use errors::error_response;

/// Largest request body the API accepts.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Most rows or hits one answer holds (`limit` of search and audit).
pub const MAX_LIMIT: u64 = 1000;

/// Every `decision` an audit row can hold: the gate's, an invocation's, an approval's.
pub const AUDIT_DECISIONS: &[&str] = &[
    "allow",
    "deny",
    "ok",
    "error",
    "rate-limited",
    "circuit-open",
    "no-recording",
    "pending",
    "approved",
    "denied",
];

/// Every status an approval can have.
pub const APPROVAL_STATUSES: &[&str] = &["pending", "denied", "approved", "executed", "failed"];

/// `v` within `min..=max`, or the message a 400 gives.
fn in_range(name: &str, v: u64, min: u64, max: u64) -> Result<u64, String> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!("`{name}` must be between {min} and {max}"))
    }
}

/// `v` (when given) one of `allowed`, or the message a 400 gives.
fn one_of(name: &str, v: Option<&str>, allowed: &[&str]) -> Result<(), String> {
    match v {
        Some(v) if !allowed.contains(&v) => {
            Err(format!("`{name}` must be one of {}", allowed.join(", ")))
        }
        _ => Ok(()),
    }
}

/// The schema's `pattern` for a string that must not be blank: one character that is not ASCII
/// white space (spelt out: regex engines disagree on which Unicode characters `\s` covers, and
/// the published schema is what validation runs, see `api/body.rs`).
pub const NONBLANK_PATTERN: &str = r"[^\t\n\x0B\x0C\r ]";

/// Every route: method, path, who may call it, handler. The router is built from this table
/// and a test checks the OpenAPI description against it, so neither can drift.
pub fn routes() -> Vec<(Method, &'static str, Access, MethodRouter<Arc<Airlock>>)> {
    use Access::{Admin, Open, Principal as P};
    let mut table = vec![
        (Method::GET, "/healthz", Open, get(healthz)),
        (Method::GET, "/readyz", Open, get(readyz)),
        (Method::GET, "/metrics", Open, get(metrics)),
        (Method::GET, "/v1/openapi.json", P, get(openapi_json)),
        (Method::GET, "/v1/connectors", P, get(list_connectors)),
        (Method::GET, "/v1/whoami", P, get(whoami)),
        (Method::POST, "/v1/connectors/{id}/invoke", P, post(invoke)),
        (Method::GET, "/v1/sync", P, get(sync_status)),
        (Method::GET, "/v1/activity", P, get(activity::activity)),
        (Method::POST, "/v1/sync/{id}", Admin, post(sync_trigger)),
        (Method::POST, "/v1/search", P, post(search)),
        (Method::POST, "/v1/ask", P, post(ask::ask)),
        (
            Method::GET,
            "/v1/documents/{connector}/{kind}/{id}",
            P,
            get(get_document),
        ),
        (Method::GET, "/v1/audit", Admin, get(audit_query)),
        (Method::GET, "/v1/changes", P, get(list_changes)),
        (Method::GET, "/v1/approvals", P, get(list_approvals)),
        (Method::GET, "/v1/approvals/{id}", P, get(get_approval)),
        (
            Method::POST,
            "/v1/approvals/{id}/approve",
            Admin,
            post(approve_approval),
        ),
        (
            Method::POST,
            "/v1/approvals/{id}/deny",
            Admin,
            post(deny_approval),
        ),
        (
            Method::POST,
            "/v1/hooks/{connector}",
            Open,
            post(hooks::receive),
        ),
        (Method::GET, "/v1/webhooks", Admin, get(webhooks::list)),
        (
            Method::GET,
            "/v1/webhooks/{name}/deliveries",
            Admin,
            get(webhooks::deliveries),
        ),
        (
            Method::POST,
            "/v1/webhooks/{name}/deliveries/{id}/retry",
            Admin,
            post(webhooks::retry),
        ),
        (Method::GET, "/v1/connections", P, get(connections::list)),
        (
            Method::GET,
            "/v1/connections/{connector}/authorize",
            P,
            get(connections::authorize),
        ),
        (
            Method::GET,
            "/v1/connections/{connector}/callback",
            Open,
            get(connections::callback),
        ),
        (
            Method::DELETE,
            "/v1/connections/{connector}",
            P,
            axum::routing::delete(connections::disconnect),
        ),
    ];
    // The egress proxy answers every method a grant can allow.
    for (method, filter) in PROXY_METHODS {
        table.push((method.clone(), PROXY_PATH, P, on(*filter, proxy::proxy)));
    }
    table
}

/// The egress proxy's route (`{*path}`: the rest of the path, slashes included).
pub const PROXY_PATH: &str = "/v1/proxy/{connector}/{*path}";

/// The methods the egress proxy forwards.
pub const PROXY_METHODS: &[(Method, MethodFilter)] = &[
    (Method::GET, MethodFilter::GET),
    (Method::POST, MethodFilter::POST),
    (Method::PUT, MethodFilter::PUT),
    (Method::PATCH, MethodFilter::PATCH),
    (Method::DELETE, MethodFilter::DELETE),
];

/// The REST API (route table, dashboard) without `/mcp`: what MCP's tools call in-process.
/// The daemon serves [`crate::server::router`], which adds `/mcp` beside it.
pub fn router(airlock: Arc<Airlock>) -> Router {
    finish(routes_router(&airlock), airlock)
}

/// The route table with each route's access check, and the dashboard; no fallback or state yet,
/// so a caller can add routes (`/mcp`) under the same error shape and body limit.
pub fn routes_router(airlock: &Arc<Airlock>) -> Router<Arc<Airlock>> {
    let mut r = Router::new();
    for (_, path, access, handler) in routes() {
        let handler = handler.route_layer(axum::middleware::from_fn_with_state(
            (airlock.clone(), access),
            auth::require,
        ));
        r = r.route(path, handler);
    }
    // The dashboard: static, open pages that call /v1 from the browser with the user's token;
    // not API resources, so outside the route table and the OpenAPI description too.
    r.merge(dashboard::routes())
}

/// The one error shape for unknown routes, wrong methods and plain-text answers, the body
/// limit, the access log, and the state.
pub fn finish(r: Router<Arc<Airlock>>, airlock: Arc<Airlock>) -> Router {
    r.fallback(errors::no_such_route)
        .method_not_allowed_fallback(errors::method_not_allowed)
        .layer(axum::middleware::map_response(errors::ensure_json))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(access_log::log))
        .with_state(airlock)
}

async fn openapi_json() -> Response {
    Json(openapi::spec()).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the audit log can be written and every connector marked `required` loaded;
/// otherwise 503 saying which. Other connectors that did not load are named in the answer but
/// do not take the whole daemon out of service.
async fn readyz(State(a): State<Arc<Airlock>>) -> Response {
    let config = a.config();
    let required = |id: &str| config.connector(id).is_some_and(|c| c.required);
    let (failed_required, failed_optional): (Vec<String>, Vec<String>) = a
        .statuses()
        .into_iter()
        .filter(|s| s.status != "ready")
        .map(|s| s.id)
        .partition(|id| required(id));
    if let Err(why) = store_answers(&a).await {
        error_response(StatusCode::SERVICE_UNAVAILABLE, "not-ready", &why, None)
    } else if !a.audit_available() {
        let msg =
            "audit unavailable: the audit log cannot be written (outbound requests are refused)";
        error_response(StatusCode::SERVICE_UNAVAILABLE, "not-ready", msg, None)
    } else if !failed_required.is_empty() {
        let msg = format!(
            "required connectors not loaded: {}",
            failed_required.join(", ")
        );
        error_response(StatusCode::SERVICE_UNAVAILABLE, "not-ready", &msg, None)
    } else if failed_optional.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let body = format!(
            "ready; not loaded (not required): {}\n",
            failed_optional.join(", ")
        );
        (StatusCode::OK, body).into_response()
    }
}

/// Whether the store answers a trivial query within two seconds (a daemon whose database is
/// gone must leave the load balancer's rotation). The answer names the store, never a password;
/// the cause goes to the log.
async fn store_answers(a: &Airlock) -> Result<(), String> {
    let why = match tokio::time::timeout(std::time::Duration::from_secs(2), a.store.ping()).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(
                "readiness: the store does not answer: {}",
                a.scrubber.scrub(&format!("{e:#}"))
            );
            "does not answer"
        }
        Err(_) => "did not answer within 2 s",
    };
    Err(format!("store unavailable: {} {why}", a.store.describe()))
}

async fn metrics(
    State(a): State<Arc<Airlock>>,
    listening: Option<Extension<auth::Listening>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let listen = listening.map_or(a.config().server.listen, |Extension(l)| l.0);
    if let Err(refused) = auth::metrics_access(&a, listen, &headers).await {
        return refused;
    }
    refresh_scraped_gauges(&a).await;
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        a.metrics.render(),
    )
        .into_response()
}

/// The gauges read when scraped: state that changes without an event to count (budget queues,
/// which connectors are loaded, when each stream last synced to the end).
async fn refresh_scraped_gauges(a: &Arc<Airlock>) {
    let m = &a.metrics;
    for s in a.statuses() {
        m.connector_loaded
            .get_or_create(&crate::metrics::ConnectorLabel {
                connector: s.id.clone(),
            })
            .set(i64::from(s.status == "ready"));
        for g in &s.grants {
            let labels = |class: &str| crate::metrics::GrantClassLabels {
                connector: s.id.clone(),
                grant: g.name.clone(),
                class: class.into(),
            };
            m.budget_queue
                .get_or_create(&labels("interactive"))
                .set(g.queued_interactive as i64);
            m.budget_queue
                .get_or_create(&labels("background"))
                .set(g.queued_background as i64);
            m.budget_oldest_wait
                .get_or_create(&crate::metrics::GrantLabels {
                    connector: s.id.clone(),
                    grant: g.name.clone(),
                })
                .set(g.oldest_wait_secs.unwrap_or(0.0));
        }
    }
    {
        let config = a.config();
        let tenants: std::collections::BTreeSet<&str> = config
            .connectors
            .iter()
            .map(|c| c.tenant.as_str())
            .collect();
        m.set_invocation_load(tenants, &a.invoke_slots.by_tenant());
    }
    let states = a.store.sync_states().await.unwrap_or_default();
    for st in states {
        let Some(at) = st
            .last_success_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        else {
            continue;
        };
        m.sync_last_success
            .get_or_create(&crate::metrics::StreamLabels {
                connector: st.connector,
                stream: st.stream,
            })
            .set(at.as_secs_f64());
    }
}

async fn list_connectors(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
) -> Response {
    let routes: Vec<_> = a
        .config()
        .routes
        .iter()
        .filter(|r| auth::may_use(&a, &p, &r.name))
        .map(|r| serde_json::json!({ "name": r.name, "action": r.action, "connectors": r.connectors }))
        .collect();
    let connectors: Vec<_> = a
        .statuses()
        .into_iter()
        .filter(|s| auth::may_use(&a, &p, &s.id))
        .collect();
    let mut body = serde_json::json!({
        "tenant": p.tenant,
        "connectors": connectors,
        "routes": routes,
        "search_modes": search_modes(&a),
    });
    // The config file is the whole daemon's: only operators see why it was not applied.
    if p.admin {
        body["last_reload"] = serde_json::to_value(a.last_reload()).unwrap_or_default();
    }
    Json(body).into_response()
}

/// The `mode`s `/v1/search` takes here: `semantic` and `hybrid` only with `[search.semantic]`.
fn search_modes(a: &Airlock) -> Vec<&'static str> {
    if a.config().semantic.is_some() {
        vec!["keyword", "semantic", "hybrid"]
    } else {
        vec!["keyword"]
    }
}

fn no_such_connector(id: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "no-such-connector",
        &format!("no connector or route `{id}` is configured"),
        None,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvokeBody {
    /// `info`, `health`, `search`, `get`, `check-permission`, `sync`, or an action name.
    op: String,
    #[serde(default)]
    input: serde_json::Value,
}

async fn invoke(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    // Another tenant's connector answers exactly like one that does not exist.
    if !auth::may_use(&a, &p, &id) {
        return no_such_connector(&id);
    }
    let body: InvokeBody = match self::body::parse("POST", "/v1/connectors/{id}/invoke", body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let input = if body.input.is_null() {
        serde_json::json!({})
    } else {
        body.input
    };
    let op = match Op::parse(&body.op, input) {
        Ok(op) => op,
        Err(e) => return invoke_error(&a, e),
    };
    if !a.has_connector(&id) && a.config().route(&id).is_none() {
        return no_such_connector(&id);
    }
    // `sync` pages carry every record regardless of ACLs: operators only.
    if matches!(op, Op::Sync { .. }) && !p.admin {
        return error_response(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the `sync` op needs an admin token",
            None,
        );
    }
    let (is_get, is_search) = (
        matches!(op, Op::Get { .. }),
        matches!(op, Op::Search { .. }),
    );
    if let Op::Action { name, .. } = &op
        && !p.has_scope("writes")
        && crate::approvals::action_writes(&a, &id, name)
    {
        return auth::insufficient_scope(&a, "writes");
    }
    let requested_by = p.label();
    match crate::approvals::request(&a, &requested_by, &p.tenant, &id, op).await {
        Ok(crate::approvals::Requested::Pending(approval)) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "approval": approval })),
        )
            .into_response(),
        Ok(crate::approvals::Requested::Done(mut result)) => {
            // Only documents are filtered: other ops need no scope (nor identities resolved).
            if !is_get && !is_search {
                return Json(serde_json::json!({ "result": result })).into_response();
            }
            let scope = scope_of(&a, &p).await;
            // Documents fetched live are checked like live search hits (fail closed).
            if is_get
                && permitted_values(&a, &id, &scope, vec![result.clone()])
                    .await
                    .is_empty()
            {
                return error_response(
                    StatusCode::NOT_FOUND,
                    "not-found",
                    "no such document",
                    None,
                );
            }
            if is_search && let Some(hits) = result["hits"].as_array_mut() {
                *hits = permitted_values(&a, &id, &scope, std::mem::take(hits)).await;
            }
            Json(serde_json::json!({ "result": result })).into_response()
        }
        Err(e) => invoke_error(&a, e),
    }
}

/// What the principal may reach, for search and live results (its upstream identities
/// resolved, or taken from the cache, first).
async fn scope_of(a: &Airlock, p: &Principal) -> crate::search::Scope {
    let connectors = auth::tenant_connectors(a, p);
    let upstream = upstream_identities::of(a, p, None).await;
    let upstream_users = connectors
        .iter()
        .filter_map(|c| Some((c.clone(), auth::upstream_user(a, p, c, &upstream)?)))
        .collect();
    let config = a.config();
    let check_ttls = connectors
        .iter()
        .filter_map(|c| Some((c.clone(), config.connector(c)?.permission_check_ttl)))
        .collect();
    crate::search::Scope {
        readers: auth::readers(a, p, &upstream),
        connectors,
        upstream_users,
        checks: a.permission_checks.clone(),
        check_ttls,
    }
}

/// The documents (as JSON) of a live answer of `id` that the scope may read, checked like live
/// search hits; one that is not a document is dropped (fail closed).
async fn permitted_values(
    a: &Airlock,
    id: &str,
    scope: &crate::search::Scope,
    docs: Vec<serde_json::Value>,
) -> Vec<serde_json::Value> {
    let docs: Vec<crate::model::Document> = docs
        .into_iter()
        .filter_map(|d| serde_json::from_value(d).ok())
        .collect();
    let kept = match a.connector(id) {
        Ok(c) => crate::search::permitted_live(&c, id, scope, docs).await,
        Err(_) => Vec::new(),
    };
    kept.into_iter()
        .filter_map(|d| serde_json::to_value(d).ok())
        .collect()
}

/// Who the caller is and whom it reads as: its identities for every connector of its tenant
/// (what document ACLs are matched against), what each connector that resolves identities
/// said about it (`upstream`), and which connectors' records without an ACL are tenant-wide.
/// For debugging permissions; no secret is in it.
async fn whoami(State(a): State<Arc<Airlock>>, Extension(p): Extension<Principal>) -> Response {
    let upstream = upstream_identities::of(&a, &p, None).await;
    let r = auth::readers(&a, &p, &upstream);
    let connectors: serde_json::Map<String, serde_json::Value> = auth::tenant_connectors(&a, &p)
        .into_iter()
        .map(|c| {
            let mut identities = r.common.clone();
            identities.extend(r.by_connector.get(&c).into_iter().flatten().cloned());
            let open = r.open.contains(&c);
            let resolved = upstream.0.get(&c).map(upstream_identities::shown);
            let v = serde_json::json!({
                "permissions": if open { "tenant" } else { "per-record" },
                "upstream_user": auth::upstream_user(&a, &p, &c, &upstream),
                "identities": identities,
                "upstream": resolved,
            });
            (c, v)
        })
        .collect();
    Json(serde_json::json!({
        "name": p.name,
        "label": p.label(),
        "tenant": p.tenant,
        "groups": p.groups,
        "admin": p.admin,
        "email": auth::email(&p),
        "connectors": connectors,
    }))
    .into_response()
}

async fn sync_status(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
) -> Response {
    let states = a.store.sync_states().await;
    // Who runs each stream now (on a shared store, possibly another daemon).
    let holders: std::collections::HashMap<(String, String), String> = a
        .store
        .leases()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|l| !l.expired)
        .filter_map(|l| Some(((l.connector, l.stream), l.owner?)))
        .collect();
    let here = crate::store::leases::this_process();
    match states {
        Ok(states) => {
            let streams: Vec<_> = states
                .into_iter()
                .filter(|s| auth::may_use(&a, &p, &s.connector))
                .map(|s| {
                    let running = a.syncer.is_running(&s.connector, &s.stream);
                    // What the connector itself last reported about the current (or last) run
                    // of this stream; only 0.2.0 connectors report, older ones show null.
                    let reported = a
                        .connector(&s.connector)
                        .ok()
                        .and_then(|c| c.ctx.progress.latest(&s.stream));
                    let mut v = serde_json::to_value(&s).unwrap_or_default();
                    v["running"] = running.into();
                    v["progress"] = serde_json::to_value(reported).unwrap_or_default();
                    let holder = holders.get(&(s.connector.clone(), s.stream.clone()));
                    v["running_elsewhere"] = holder.is_some_and(|h| *h != here).into();
                    // The daemon's name (host, pid) is for operators only.
                    if p.admin {
                        v["held_by"] = holder.cloned().into();
                    }
                    v
                })
                .collect();
            Json(serde_json::json!({ "streams": streams })).into_response()
        }
        Err(e) => internal_error(&a, &e),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SyncBody {
    stream: Option<String>,
    #[serde(default)]
    full: bool,
}

/// Starts runs in the background and answers at once with the streams started.
async fn sync_trigger(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    // Another tenant's connector answers like a missing one, whatever the body.
    if !a.has_connector(&id) || !auth::may_use(&a, &p, &id) {
        return error_response(
            StatusCode::NOT_FOUND,
            "no-such-connector",
            &format!("no connector `{id}` is configured"),
            None,
        );
    }
    // An empty body means the defaults; any other is JSON of the published shape.
    let body: SyncBody = if body.iter().all(u8::is_ascii_whitespace) {
        SyncBody::default()
    } else {
        let value = match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) => v,
            Err(e) => {
                let m = format!("the body is not JSON: {e}");
                return error_response(StatusCode::BAD_REQUEST, "bad-request", &m, None);
            }
        };
        match self::body::parse("POST", "/v1/sync/{id}", Ok(Json(value))) {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
    let streams = match a.streams_of(&id, body.stream.as_deref()) {
        Ok(s) => s,
        // A stream is a resource of the connector: one it does not have is not found.
        Err(e @ crate::sync::SyncError::UnknownStream { .. }) => {
            return error_response(
                StatusCode::NOT_FOUND,
                "no-such-stream",
                &e.to_string(),
                None,
            );
        }
        Err(crate::sync::SyncError::Invoke(e)) => return invoke_error(&a, e),
        Err(e) => return internal_error(&a, &e),
    };
    let mut started = Vec::new();
    for s in streams {
        if a.syncer.is_running(&id, &s) {
            continue;
        }
        started.push(s.clone());
        let (a, id, full) = (a.clone(), id.clone(), body.full);
        // The run's audit rows name the admin who triggered it.
        let ctx = crate::runtime::context::CallContext::trusted().by(&p.label());
        tokio::spawn(async move {
            let run = a.sync_stream(&id, &s, full, |_| {});
            if let Err(e) = crate::runtime::context::with(ctx, run).await {
                tracing::warn!(connector = %id, stream = %s, "triggered sync failed: {e}");
            }
        });
    }
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "started": started })),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    query: String,
    connector: Option<String>,
    kind: Option<String>,
    limit: Option<u64>,
    #[serde(default)]
    live: bool,
    /// Per-connector timeout of the live fan-out, in milliseconds.
    live_timeout_ms: Option<u64>,
    /// `keyword` (default), `semantic` or `hybrid`.
    mode: Option<String>,
}

async fn search(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let b: SearchBody = match self::body::parse("POST", "/v1/search", body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    // The published schema (checked above) holds both within their ranges.
    let (limit, live_timeout_ms) = (b.limit.unwrap_or(20), b.live_timeout_ms.unwrap_or(10_000));
    // The schema allows only the three modes.
    let mode = b
        .mode
        .as_deref()
        .and_then(crate::search::Mode::parse)
        .unwrap_or_default();
    if mode != crate::search::Mode::Keyword && a.config().semantic.is_none() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid-input",
            &crate::app::SemanticOff.to_string(),
            None,
        );
    }
    let req = crate::search::SearchRequest {
        query: b.query,
        connector: b.connector,
        kind: b.kind,
        limit: limit as usize,
        live: b.live,
        live_timeout: std::time::Duration::from_millis(live_timeout_ms),
        // Local and live: only the tenant's connectors, only documents the ACL lets through.
        scope: Some(scope_of(&a, &p).await),
        mode,
        vector: None,
        any_word: false,
    };
    // Live searches run connectors: their rows name the token, and no write is possible.
    let ctx = crate::runtime::context::CallContext::requested().by(&p.label());
    match crate::runtime::context::with(ctx, a.search(&req)).await {
        Ok(mut r) => {
            for h in &mut r.hits {
                a.scrubber.scrub_in_place(&mut h.snippet);
            }
            Json(r).into_response()
        }
        Err(e) => match e.downcast::<InvokeError>() {
            // The audit log cannot be written: 503 like every call that would need it.
            Ok(e) => invoke_error(&a, e),
            Err(e) => internal_error(&a, &e),
        },
    }
}

/// One stored document, if the principal's tenant owns its connector and its ACL lets the
/// principal read it; otherwise 404 either way (no hint that it exists).
async fn get_document(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    Path((connector, kind, id)): Path<(String, String, String)>,
) -> Response {
    let not_found = || {
        error_response(
            StatusCode::NOT_FOUND,
            "not-found",
            &format!("no document `{kind}/{id}` in connector `{connector}`"),
            None,
        )
    };
    if !auth::may_use(&a, &p, &connector) || a.config().connector(&connector).is_none() {
        return not_found();
    }
    let found = a.store.document(&connector, &kind, &id).await;
    let readers = match &found {
        Ok(Some(_)) => {
            let upstream = upstream_identities::of(&a, &p, Some(&connector)).await;
            auth::readers(&a, &p, &upstream)
        }
        _ => Default::default(),
    };
    match found {
        Ok(Some(d)) if readers.allows(&connector, &d.acl) => {
            let s = &a.scrubber;
            Json(serde_json::json!({
                "connector": connector,
                "kind": d.kind,
                "id": d.id,
                "title": s.scrub(&d.title),
                "body": s.scrub(&d.body),
                "url": d.url,
                "updated_at": d.updated_at,
                "metadata": d.metadata,
            }))
            .into_response()
        }
        Ok(_) => not_found(),
        Err(e) => internal_error(&a, &e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    connector: Option<String>,
    since: Option<String>,
    until: Option<String>,
    decision: Option<String>,
    principal: Option<String>,
    limit: Option<u64>,
}

/// Normalises an RFC 3339 time to the form audit rows store (UTC, milliseconds).
fn audit_time(name: &str, v: Option<&str>) -> Result<Option<String>, String> {
    let Some(v) = v else { return Ok(None) };
    match chrono::DateTime::parse_from_rfc3339(v) {
        Ok(t) => Ok(Some(
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )),
        Err(_) => Err(format!(
            "`{name}` must be an RFC 3339 time such as 2026-01-31T12:00:00Z"
        )),
    }
}

/// The latest audit rows of the principal's tenant (its connectors and routes), oldest first.
async fn audit_query(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match params {
        Ok(q) => q,
        Err(e) => {
            return error_response(StatusCode::BAD_REQUEST, "bad-request", &e.body_text(), None);
        }
    };
    if let Some(c) = &q.connector
        && !auth::may_use(&a, &p, c)
    {
        return no_such_connector(c);
    }
    let (since, until) = match (
        audit_time("since", q.since.as_deref()),
        audit_time("until", q.until.as_deref()),
    ) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(m), _) | (_, Err(m)) => {
            return error_response(StatusCode::BAD_REQUEST, "bad-request", &m, None);
        }
    };
    let checked = in_range("limit", q.limit.unwrap_or(100), 1, MAX_LIMIT).and_then(|limit| {
        one_of("decision", q.decision.as_deref(), AUDIT_DECISIONS)?;
        Ok(limit as usize)
    });
    let limit = match checked {
        Ok(l) => l,
        Err(m) => return error_response(StatusCode::BAD_REQUEST, "bad-request", &m, None),
    };
    let within = auth::tenant_ids(&a, &p);
    // Rows still queued in the writer belong in the answer.
    let a2 = a.clone();
    let _ = tokio::task::spawn_blocking(move || a2.flush()).await;
    let rows = a
        .store
        .audit_query(crate::store::backend::audit::AuditFilter {
            within: Some(within),
            connector: q.connector,
            since,
            until,
            decision: q.decision,
            principal: q.principal,
            limit,
        })
        .await;
    match rows {
        Ok(rows) => Json(serde_json::json!({ "rows": rows })).into_response(),
        Err(e) => internal_error(&a, &e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesParams {
    after: Option<u64>,
    connector: Option<String>,
    kind: Option<String>,
    limit: Option<u64>,
    /// Seconds to wait for a change when there is none yet (long poll).
    wait: Option<u64>,
}

/// Longest long poll of the change feed, in seconds.
pub const MAX_CHANGES_WAIT: u64 = 60;

/// The change feed of the principal's tenant: committed upserts and deletes after `after`, in
/// commit order, filtered by each document's ACL; with `wait`, held open until one arrives.
async fn list_changes(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    params: Result<Query<ChangesParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match params {
        Ok(Query(q)) => q,
        Err(e) => {
            return error_response(StatusCode::BAD_REQUEST, "bad-request", &e.body_text(), None);
        }
    };
    let checked = in_range("limit", q.limit.unwrap_or(100), 1, MAX_LIMIT).and_then(|limit| {
        let wait = in_range("wait", q.wait.unwrap_or(0), 0, MAX_CHANGES_WAIT)?;
        let after = in_range("after", q.after.unwrap_or(0), 0, i64::MAX as u64)?;
        Ok((limit as usize, wait, after as i64))
    });
    let (limit, wait, mut after) = match checked {
        Ok(v) => v,
        Err(m) => return error_response(StatusCode::BAD_REQUEST, "bad-request", &m, None),
    };
    if let Some(c) = &q.connector
        && !auth::may_use(&a, &p, c)
    {
        return no_such_connector(c);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
    let upstream = upstream_identities::of(&a, &p, q.connector.as_deref()).await;
    let (within, readers) = (
        auth::tenant_connectors(&a, &p),
        auth::readers(&a, &p, &upstream),
    );
    loop {
        let found = a
            .store
            .changes(crate::store::backend::changes::ChangesQuery {
                after,
                within: Some(within.clone()),
                connector: q.connector.clone(),
                kind: q.kind.clone(),
                limit,
                readers: Some(readers.clone()),
            })
            .await;
        let page = match found {
            Ok(Ok(page)) => page,
            Ok(Err(first)) => {
                let m = format!(
                    "changes after {after} are no longer kept (the feed starts at {first}, see [changes] retention): read the current documents, then follow from {}",
                    first - 1
                );
                return error_response(StatusCode::GONE, "changes-expired", &m, None);
            }
            Err(e) => return internal_error(&a, &e),
        };
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if !page.changes.is_empty() || left.is_zero() {
            return Json(page).into_response();
        }
        after = page.next;
        // Commits wake the poll at once (on PostgreSQL those of every daemon); others (a CLI
        // sync into SQLite) are found within a second.
        a.store
            .committed_within(left.min(std::time::Duration::from_secs(1)))
            .await;
    }
}

pub(crate) fn invoke_error(a: &Airlock, e: InvokeError) -> Response {
    let (status, retry) = match &e {
        InvokeError::Connector(c) => match c.code.as_str() {
            "invalid-input" => (StatusCode::BAD_REQUEST, None),
            "not-found" => (StatusCode::NOT_FOUND, None),
            "forbidden" => (StatusCode::FORBIDDEN, None),
            "rate-limited" => (StatusCode::TOO_MANY_REQUESTS, c.retry_after),
            "unauthorized" | "upstream" => (StatusCode::BAD_GATEWAY, None),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
        },
        InvokeError::BadInput { .. } => (StatusCode::BAD_REQUEST, None),
        // The connector kept asking for what it may not have: refused, like each request was.
        InvokeError::DenialBudget { .. } => (StatusCode::FORBIDDEN, None),
        InvokeError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, None),
        InvokeError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, None),
        InvokeError::MemoryLimit { .. } | InvokeError::Trap { .. } => {
            (StatusCode::INTERNAL_SERVER_ERROR, None)
        }
    };
    let message = a.scrubber.scrub(&e.to_string());
    error_response(status, e.code(), &message, retry)
}

/// The one error shape of the API.
/// A 500 in the one error shape, its message scrubbed of every known secret value.
pub(crate) fn internal_error(a: &Airlock, e: &dyn std::fmt::Display) -> Response {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        &a.scrubber.scrub(&format!("{e:#}")),
        None,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalFilter {
    status: Option<String>,
}

async fn list_approvals(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    filter: Result<Query<ApprovalFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let f = match filter {
        Ok(Query(f)) => f,
        Err(e) => {
            return error_response(StatusCode::BAD_REQUEST, "bad-request", &e.body_text(), None);
        }
    };
    if let Err(m) = one_of("status", f.status.as_deref(), APPROVAL_STATUSES) {
        return error_response(StatusCode::BAD_REQUEST, "bad-request", &m, None);
    }
    match a
        .store
        .approvals(Some(&p.tenant), f.status.as_deref())
        .await
    {
        Ok(list) => Json(serde_json::json!({ "approvals": list })).into_response(),
        Err(e) => internal_error(&a, &e),
    }
}

fn no_such_approval(id: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not-found",
        &format!("no approval `{id}`"),
        None,
    )
}

/// The approval if it exists and belongs to the principal's tenant (else the same 404).
async fn tenant_approval(
    a: &Airlock,
    p: &Principal,
    id: &str,
) -> Result<crate::approvals::Approval, Response> {
    match a.store.approval(id).await {
        Ok(Some(ap)) if ap.tenant == p.tenant => Ok(ap),
        Ok(_) => Err(no_such_approval(id)),
        Err(e) => Err(internal_error(a, &e)),
    }
}

async fn get_approval(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    match tenant_approval(&a, &p, &id).await {
        Ok(ap) => Json(serde_json::json!({ "approval": ap })).into_response(),
        Err(r) => r,
    }
}

fn approval_error(a: &Airlock, e: crate::approvals::ApprovalError) -> Response {
    use crate::approvals::ApprovalError as E;
    match e {
        E::NotFound(id) => no_such_approval(&id),
        e @ E::AlreadyDecided { .. } => error_response(
            StatusCode::CONFLICT,
            "already-decided",
            &e.to_string(),
            None,
        ),
        e @ E::SelfApproval { .. } => {
            error_response(StatusCode::FORBIDDEN, "forbidden", &e.to_string(), None)
        }
        E::Store(e) => internal_error(a, &e),
    }
}

async fn approve_approval(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = tenant_approval(&a, &p, &id).await {
        return r;
    }
    let by = p.label();
    match crate::approvals::approve(&a, &id, &by).await {
        Ok(ap) => Json(serde_json::json!({ "approval": ap })).into_response(),
        Err(e) => approval_error(&a, e),
    }
}

async fn deny_approval(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = tenant_approval(&a, &p, &id).await {
        return r;
    }
    let by = p.label();
    match crate::approvals::deny(&a, &id, &by).await {
        Ok(ap) => Json(serde_json::json!({ "approval": ap })).into_response(),
        Err(e) => approval_error(&a, e),
    }
}
