//! Jira webhooks registered through the REST API (`POST /rest/webhooks/1.0/webhook`) with a
//! secret: every issue change is POSTed to the webhook's `url` as a `jira:issue_*` or
//! `comment_created` event, signed `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Jira, JiraMutationReport, jira_errors};
use crate::common::now_ms;
use crate::notify::{Outgoing, hmac_sha256, strings};

/// One registered webhook.
#[derive(Clone, Debug)]
pub(super) struct Webhook {
    url: String,
    events: Vec<String>,
    secret: Option<String>,
}

/// `POST /rest/webhooks/1.0/webhook`.
pub(super) async fn register(State(j): State<Arc<Jira>>, body: String) -> Response {
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return jira_errors(StatusCode::BAD_REQUEST, "The body is not JSON.");
    };
    let (Some(name), Some(url)) = (v["name"].as_str(), v["url"].as_str()) else {
        return jira_errors(StatusCode::BAD_REQUEST, "name and url are required.");
    };
    let events: Vec<String> = strings(&v["events"]);
    if events.is_empty() {
        return jira_errors(StatusCode::BAD_REQUEST, "events must not be empty.");
    }
    let mut hooks = j.webhooks();
    hooks.push(Webhook {
        url: url.to_string(),
        events: events.clone(),
        secret: v["secret"].as_str().map(str::to_string),
    });
    let n = hooks.len();
    (
        StatusCode::CREATED,
        Json(json!({
            "name": name, "url": url, "events": events, "excludeBody": false,
            "filters": v["filters"], "enabled": true,
            "self": format!("{}/rest/webhooks/1.0/webhook/{n}", j.base_url),
        })),
    )
        .into_response()
}

/// Sends one event per changed issue to every webhook registered for it.
pub(super) fn notify(j: &Jira, report: &JiraMutationReport) {
    let hooks = j.webhooks().clone();
    let events = report
        .created
        .iter()
        .map(|k| ("jira:issue_created", "issue_created", k))
        .chain(
            report
                .updated
                .iter()
                .map(|k| ("jira:issue_updated", "issue_generic", k)),
        )
        .chain(
            report
                .commented
                .iter()
                .map(|k| ("comment_created", "issue_commented", k)),
        );
    for (event, type_name, key) in events {
        for w in hooks.iter().filter(|w| w.events.iter().any(|e| e == event)) {
            let body = json!({
                "timestamp": now_ms(),
                "webhookEvent": event,
                "issue_event_type_name": type_name,
                "issue": { "key": key, "self": format!("{}/rest/api/3/issue/{key}", j.base_url) },
            })
            .to_string();
            let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
            if let Some(secret) = &w.secret {
                let sig = hmac_sha256(secret.as_bytes(), &[body.as_bytes()]);
                headers.push((
                    "x-hub-signature".into(),
                    format!("sha256={}", hex::encode(sig)),
                ));
            }
            j.notifier.send(
                Outgoing {
                    url: w.url.clone(),
                    headers,
                    body: body.into_bytes(),
                },
                event,
            );
        }
    }
}
