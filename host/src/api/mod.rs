//! The daemon's HTTP API on loopback: `/healthz`, `GET /v1/connectors`,
//! `POST /v1/connectors/{id}/invoke`, `GET /v1/sync`, `POST /v1/sync/{id}`, `POST /v1/search`. Errors are JSON of one shape:
//! `{"error": {"code": "...", "message": "..."}}`.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::app::Airlock;
use crate::runtime::connector::{InvokeError, Op};

/// Largest request body the API accepts.
pub const MAX_BODY_BYTES: usize = 1 << 20;

pub fn router(airlock: Arc<Airlock>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/connectors", get(list_connectors))
        .route("/v1/connectors/{id}/invoke", post(invoke))
        .route("/v1/sync", get(sync_status))
        .route("/v1/sync/{id}", post(sync_trigger))
        .route("/v1/search", post(search))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(airlock)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when every configured connector loaded; otherwise 503 naming the ones that did not.
async fn readyz(State(a): State<Arc<Airlock>>) -> Response {
    let failed: Vec<String> = a
        .statuses()
        .into_iter()
        .filter(|s| s.status != "ready")
        .map(|s| s.id)
        .collect();
    if failed.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let msg = format!("connectors not loaded: {}", failed.join(", "));
        error_response(StatusCode::SERVICE_UNAVAILABLE, "not-ready", &msg, None)
    }
}

async fn metrics(State(a): State<Arc<Airlock>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        a.metrics.render(),
    )
        .into_response()
}

async fn list_connectors(State(a): State<Arc<Airlock>>) -> Response {
    let routes: Vec<_> = a
        .config
        .routes
        .iter()
        .map(|r| serde_json::json!({ "name": r.name, "action": r.action, "connectors": r.connectors }))
        .collect();
    Json(serde_json::json!({ "connectors": a.statuses(), "routes": routes })).into_response()
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
    Path(id): Path<String>,
    body: Result<Json<InvokeBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => {
            return error_response(StatusCode::BAD_REQUEST, "bad-request", &e.body_text(), None);
        }
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
    if !a.connectors.contains_key(&id) && a.config.route(&id).is_none() {
        return error_response(
            StatusCode::NOT_FOUND,
            "no-such-connector",
            &format!("no connector or route `{id}` is configured"),
            None,
        );
    }
    match a.invoke(&id, op).await {
        Ok(result) => Json(serde_json::json!({ "result": result })).into_response(),
        Err(e) => invoke_error(&a, e),
    }
}

async fn sync_status(State(a): State<Arc<Airlock>>) -> Response {
    let states =
        a.db.run(|conn| Ok(crate::store::sync_state::all(conn)?))
            .await;
    match states {
        Ok(states) => {
            let streams: Vec<_> = states
                .into_iter()
                .map(|s| {
                    let running = a.sync_locks.is_running(&s.connector, &s.stream);
                    let mut v = serde_json::to_value(&s).unwrap_or_default();
                    v["running"] = running.into();
                    v
                })
                .collect();
            Json(serde_json::json!({ "streams": streams })).into_response()
        }
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
            None,
        ),
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
    Path(id): Path<String>,
    body: Option<Json<SyncBody>>,
) -> Response {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    if !a.connectors.contains_key(&id) {
        return error_response(
            StatusCode::NOT_FOUND,
            "no-such-connector",
            &format!("no connector `{id}` is configured"),
            None,
        );
    }
    let streams = match crate::sync::streams_of(&a, &id, body.stream.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            return error_response(StatusCode::BAD_REQUEST, "bad-request", &e.to_string(), None);
        }
    };
    let mut started = Vec::new();
    for s in streams {
        if a.sync_locks.is_running(&id, &s) {
            continue;
        }
        started.push(s.clone());
        let (a, id, full) = (a.clone(), id.clone(), body.full);
        tokio::spawn(async move {
            if let Err(e) = crate::sync::run_stream(&a, &id, &s, full, |_| {}).await {
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
    limit: Option<usize>,
    #[serde(default)]
    live: bool,
    /// Per-connector timeout of the live fan-out, in milliseconds.
    live_timeout_ms: Option<u64>,
}

async fn search(
    State(a): State<Arc<Airlock>>,
    body: Result<Json<SearchBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(b) = match body {
        Ok(b) => b,
        Err(e) => {
            return error_response(StatusCode::BAD_REQUEST, "bad-request", &e.body_text(), None);
        }
    };
    if b.query.trim().is_empty() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "`query` is empty",
            None,
        );
    }
    let req = crate::search::SearchRequest {
        query: b.query,
        connector: b.connector,
        kind: b.kind,
        limit: b.limit.unwrap_or(20).clamp(1, 1000),
        live: b.live,
        live_timeout: std::time::Duration::from_millis(
            b.live_timeout_ms.unwrap_or(10_000).clamp(1, 120_000),
        ),
    };
    match crate::search::search(&a, &req).await {
        Ok(mut r) => {
            for h in &mut r.hits {
                a.scrubber.scrub_in_place(&mut h.snippet);
            }
            Json(r).into_response()
        }
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &a.scrubber.scrub(&e.to_string()),
            None,
        ),
    }
}

fn invoke_error(a: &Airlock, e: InvokeError) -> Response {
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
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    retry_after: Option<u32>,
) -> Response {
    let mut body = serde_json::json!({ "error": { "code": code, "message": message } });
    if let Some(s) = retry_after {
        body["error"]["retry_after"] = s.into();
    }
    let mut resp = (status, Json(body)).into_response();
    if let Some(s) = retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}
