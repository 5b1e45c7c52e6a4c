//! Zendesk webhooks: an admin creates one (`POST /api/v2/webhooks`) subscribed to ticket events,
//! reads its signing secret (`GET /api/v2/webhooks/{id}/signing_secret`), and from then on every
//! ticket change is POSTed to its endpoint as an event (`zen:event-type:ticket.*`), signed the way
//! Zendesk signs: `X-Zendesk-Webhook-Signature` = base64(HMAC-SHA256(secret, timestamp + body))
//! with the timestamp in `X-Zendesk-Webhook-Signature-Timestamp`.
//!
//! Subscriptions are event types (`zen:event-type:ticket.created`, ...) or
//! `conditional_ticket_events`, which the fake treats as a trigger firing on every ticket change.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::params::zd_error;
use super::{Zendesk, ZendeskMutationReport};
use crate::common::{now_us, rfc3339_secs};
use crate::notify::{Outgoing, hmac_sha256, strings};

/// One webhook as Zendesk keeps it.
#[derive(Clone, Debug)]
pub(super) struct Webhook {
    id: String,
    name: String,
    endpoint: String,
    subscriptions: Vec<String>,
    signing_secret: String,
}

impl Webhook {
    fn json(&self) -> Value {
        json!({
            "id": self.id, "name": self.name, "endpoint": self.endpoint,
            "http_method": "POST", "request_format": "json", "status": "active",
            "subscriptions": self.subscriptions,
        })
    }

    fn wants(&self, event: &str) -> bool {
        self.subscriptions
            .iter()
            .any(|s| s == event || s == "conditional_ticket_events")
    }
}

/// `POST /api/v2/webhooks`.
pub(super) async fn create_webhook(State(z): State<Arc<Zendesk>>, body: String) -> Response {
    let invalid = |detail: &str| {
        zd_error(
            StatusCode::BAD_REQUEST,
            "RecordInvalid",
            format!("Record validation errors: {detail}"),
        )
    };
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return invalid("the body is not JSON");
    };
    let w = &v["webhook"];
    let (Some(name), Some(endpoint)) = (w["name"].as_str(), w["endpoint"].as_str()) else {
        return invalid("webhook.name and webhook.endpoint are required");
    };
    if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
        return invalid("webhook.endpoint must be an http(s) URL");
    }
    if w["http_method"].as_str() != Some("POST") || w["request_format"].as_str() != Some("json") {
        return invalid("event webhooks use http_method POST and request_format json");
    }
    let subscriptions: Vec<String> = strings(&w["subscriptions"]);
    if subscriptions.is_empty() {
        return invalid("webhook.subscriptions must list at least one event type");
    }
    let mut hooks = z.webhooks();
    let n = hooks.len() + 1;
    let hook = Webhook {
        id: format!("01GZENDESKWEBHOOK{n:09}"),
        name: name.to_string(),
        endpoint: endpoint.to_string(),
        subscriptions,
        // Deterministic but distinct per fake and webhook; a real secret is random.
        signing_secret: base64::engine::general_purpose::STANDARD
            .encode(hmac_sha256(z.base_url.as_bytes(), &[&n.to_be_bytes()])),
    };
    let out = hook.json();
    hooks.push(hook);
    (StatusCode::CREATED, Json(json!({ "webhook": out }))).into_response()
}

/// `GET /api/v2/webhooks/{id}/signing_secret`.
pub(super) async fn signing_secret(
    State(z): State<Arc<Zendesk>>,
    Path(id): Path<String>,
) -> Response {
    match z.webhooks().iter().find(|w| w.id == id) {
        Some(w) => Json(json!({
            "signing_secret": { "algorithm": "SHA256", "secret": w.signing_secret }
        }))
        .into_response(),
        None => zd_error(StatusCode::NOT_FOUND, "RecordNotFound", "Not found"),
    }
}

/// Sends one event per changed ticket to every webhook subscribed to it.
pub(super) fn notify(z: &Zendesk, report: &ZendeskMutationReport) {
    let hooks = z.webhooks().clone();
    if hooks.is_empty() {
        return;
    }
    let events = report
        .created
        .iter()
        .map(|id| ("zen:event-type:ticket.created", *id))
        .chain(
            report
                .updated
                .iter()
                .map(|id| ("zen:event-type:ticket.status_changed", *id)),
        )
        .chain(
            report
                .commented
                .iter()
                .map(|id| ("zen:event-type:ticket.comment_added", *id)),
        )
        .chain(
            report
                .deleted
                .iter()
                .map(|id| ("zen:event-type:ticket.soft_deleted", *id)),
        );
    let now = now_us() / 1_000_000;
    for (seq, (event, ticket)) in events.enumerate() {
        for w in hooks.iter().filter(|w| w.wants(event)) {
            let ts = rfc3339_secs(now);
            let body = json!({
                "account_id": 1,
                "id": format!("{ticket}-{now}-{seq}"),
                "subject": format!("zen:ticket:{ticket}"),
                "time": ts,
                "type": event,
                "zendesk_event_version": "2022-11-06",
                "detail": { "id": ticket.to_string() },
                "event": {},
            })
            .to_string();
            let sig = hmac_sha256(
                w.signing_secret.as_bytes(),
                &[ts.as_bytes(), body.as_bytes()],
            );
            let headers = vec![
                ("content-type".into(), "application/json".into()),
                (
                    "x-zendesk-webhook-signature".into(),
                    base64::engine::general_purpose::STANDARD.encode(sig),
                ),
                ("x-zendesk-webhook-signature-timestamp".into(), ts),
                ("x-zendesk-webhook-id".into(), w.id.clone()),
            ];
            z.notifier.send(
                Outgoing {
                    url: w.endpoint.clone(),
                    headers,
                    body: body.into_bytes(),
                },
                event,
            );
        }
    }
}
