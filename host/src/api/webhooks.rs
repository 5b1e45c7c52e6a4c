//! `/v1/webhooks`: the delivery state of the tenant's webhooks (admin): counts by status, how
//! far each has read the change feed, the newest failure; its deliveries; and a retry for a
//! dead-lettered one. Never the signing secret.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::auth::Principal;
use super::errors::error_response;
use crate::app::Airlock;

/// Every status a delivery can have.
pub const DELIVERY_STATUSES: &[&str] = &["pending", "delivered", "dead"];

fn no_such_webhook(name: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not-found",
        &format!("no webhook `{name}`"),
        None,
    )
}

/// The webhook, if it is configured for the principal's tenant.
fn tenant_webhook(a: &Airlock, p: &Principal, name: &str) -> Option<crate::config::Webhook> {
    let config = a.config();
    let w = config.webhooks.iter().find(|w| w.name == name)?;
    (w.tenant == p.tenant).then(|| w.clone())
}

pub async fn list(State(a): State<Arc<Airlock>>, Extension(p): Extension<Principal>) -> Response {
    let config = a.config();
    let mine: Vec<_> = config
        .webhooks
        .iter()
        .filter(|w| w.tenant == p.tenant)
        .cloned()
        .collect();
    let names: Vec<String> = mine.iter().map(|w| w.name.clone()).collect();
    let summaries = match a.store.webhook_summaries(&names).await {
        Ok(s) => s,
        Err(e) => return super::internal_error(&a, &e),
    };
    let hooks: Vec<_> = mine
        .iter()
        .zip(summaries)
        .map(|(w, s)| {
            serde_json::json!({
                "name": w.name, "url": w.url.to_string(), "connectors": w.connectors,
                "kinds": w.kinds, "max_attempts": w.max_attempts,
                "pending": s.pending, "delivered": s.delivered, "dead": s.dead,
                "cursor": s.cursor, "last_error": s.last_error,
                "last_delivered_at": s.last_delivered_at,
            })
        })
        .collect();
    Json(serde_json::json!({ "webhooks": hooks })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryFilter {
    status: Option<String>,
    limit: Option<u64>,
}

pub async fn deliveries(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    filter: Result<Query<DeliveryFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let f = match filter {
        Ok(Query(f)) => f,
        Err(e) => {
            return error_response(StatusCode::BAD_REQUEST, "bad-request", &e.body_text(), None);
        }
    };
    let checked = super::one_of("status", f.status.as_deref(), DELIVERY_STATUSES)
        .and_then(|()| super::in_range("limit", f.limit.unwrap_or(100), 1, super::MAX_LIMIT));
    let limit = match checked {
        Ok(l) => l as usize,
        Err(m) => return error_response(StatusCode::BAD_REQUEST, "bad-request", &m, None),
    };
    if tenant_webhook(&a, &p, &name).is_none() {
        return no_such_webhook(&name);
    }
    let rows = a
        .store
        .webhook_deliveries(&name, f.status.as_deref(), limit)
        .await;
    match rows {
        Ok(rows) => Json(serde_json::json!({ "deliveries": rows })).into_response(),
        Err(e) => super::internal_error(&a, &e),
    }
}

pub async fn retry(
    State(a): State<Arc<Airlock>>,
    Extension(p): Extension<Principal>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    if tenant_webhook(&a, &p, &name).is_none() {
        return no_such_webhook(&name);
    }
    let now = chrono::Utc::now().timestamp_millis();
    match a.store.retry_delivery(&name, &id, now).await {
        Ok(true) => {
            // Wake the worker: the retry is due now.
            a.store.notify_committed();
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({ "retrying": id })),
            )
                .into_response()
        }
        Ok(false) => error_response(
            StatusCode::NOT_FOUND,
            "not-found",
            &format!("webhook `{name}` has no dead delivery `{id}`"),
            None,
        ),
        Err(e) => super::internal_error(&a, &e),
    }
}
