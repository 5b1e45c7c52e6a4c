//! Change notifications (`/v1.0/subscriptions`), for the `users` resource: creating one first
//! POSTs `{notificationUrl}?validationToken=...` and succeeds only when the endpoint answers 200
//! with the token as text within 10 s; `PATCH` renews (a new `expirationDateTime`), `DELETE`
//! ends it. Every user change of a mutation is then POSTed to each live subscription that wants
//! its change type, as `{"value":[{subscriptionId, clientState, changeType, resource,
//! resourceData, ...}]}`. An expired subscription sends nothing and cannot be renewed (404).
//!
//! Real Graph requires an `https` notification URL; the fake also takes `http` on loopback so
//! tests need no certificates.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::errors::{bad_request, graph_error, not_found};
use super::{MsGraph, MsGraphMutationReport};
use crate::common::{now_ms, parse_rfc3339_ms, rfc3339_ms};
use crate::notify::{Outgoing, post};

/// The longest a `users` subscription may live: 41,760 minutes (29 days).
const MAX_MINUTES: i64 = 41_760;
/// How long Graph waits for the validation answer.
const VALIDATION_DEADLINE: Duration = Duration::from_secs(10);

/// One subscription as the fake keeps it (also its ground truth).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub resource: String,
    pub change_type: String,
    pub notification_url: String,
    pub client_state: Option<String>,
    /// Milliseconds since the epoch.
    pub expires_ms: i64,
    /// Times it was renewed with `PATCH`.
    pub renewals: u32,
}

impl Subscription {
    fn json(&self, base: &str) -> Value {
        json!({
            "@odata.context": format!("{base}/v1.0/$metadata#subscriptions/$entity"),
            "id": self.id, "resource": self.resource, "changeType": self.change_type,
            "clientState": self.client_state, "notificationUrl": self.notification_url,
            "expirationDateTime": rfc3339_ms(self.expires_ms),
            "applicationId": "00000000-0000-0000-0000-00000000a11c",
            "creatorId": "00000000-0000-0000-0000-00000000c4ea",
            "latestSupportedTlsVersion": "v1_2",
        })
    }

    fn live(&self) -> bool {
        self.expires_ms > now_ms()
    }
}

/// A requested expiry: in the future and no later than the resource allows.
fn expiry(v: &Value) -> Result<i64, Box<Response>> {
    let Some(text) = v["expirationDateTime"].as_str() else {
        return Err(Box::new(bad_request("expirationDateTime is required.")));
    };
    let Some(at) = parse_rfc3339_ms(text) else {
        return Err(Box::new(bad_request(format!(
            "expirationDateTime '{text}' is not a valid date and time."
        ))));
    };
    let now = now_ms();
    if at <= now {
        return Err(Box::new(bad_request(
            "Subscription expiration must be in the future.",
        )));
    }
    if at > now + MAX_MINUTES * 60_000 {
        return Err(Box::new(bad_request(format!(
            "Subscription expiration can only be {MAX_MINUTES} minutes in the future."
        ))));
    }
    Ok(at)
}

/// `POST /v1.0/subscriptions`.
pub(super) async fn create(State(g): State<Arc<MsGraph>>, body: String) -> Response {
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return bad_request("Unable to read JSON request payload.");
    };
    let resource = v["resource"].as_str().unwrap_or("").trim_start_matches('/');
    if resource != "users" {
        return bad_request(format!(
            "Resource '{resource}' is not supported for change notifications by this fake (only 'users')."
        ));
    }
    let change_type = v["changeType"].as_str().unwrap_or("");
    if change_type.is_empty()
        || !change_type
            .split(',')
            .all(|c| matches!(c.trim(), "created" | "updated" | "deleted"))
    {
        return bad_request("changeType must list created, updated and/or deleted.");
    }
    let Some(url) = v["notificationUrl"].as_str() else {
        return bad_request("notificationUrl is required.");
    };
    let loopback = url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost");
    if !url.starts_with("https://") && !loopback {
        return bad_request("NotificationUrl must be an https URL.");
    }
    let client_state = v["clientState"].as_str().map(str::to_string);
    if client_state.as_ref().is_some_and(|c| c.len() > 128) {
        return bad_request("clientState must be at most 128 characters.");
    }
    let expires_ms = match expiry(&v) {
        Ok(at) => at,
        Err(resp) => return *resp,
    };
    // The validation request: the endpoint must echo the token, as text, in time.
    let token = format!("Validation: Testing client application {}", now_ms());
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("validationToken", &token)
        .finish();
    let sep = if url.contains('?') { '&' } else { '?' };
    let answer = post(
        &format!("{url}{sep}{query}"),
        &[("content-type".into(), "text/plain; charset=utf-8".into())],
        Vec::new(),
        VALIDATION_DEADLINE,
    )
    .await;
    match answer {
        Ok((200, text)) if text.as_ref() == token.as_bytes() => {}
        _ => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
            );
        }
    }
    let mut subs = g.subscriptions();
    let sub = Subscription {
        id: format!("7f105c7d-2dc5-4530-97cd-{:012x}", subs.len() + 1),
        resource: resource.to_string(),
        change_type: change_type.to_string(),
        notification_url: url.to_string(),
        client_state,
        expires_ms,
        renewals: 0,
    };
    let out = sub.json(&g.base_url);
    subs.push(sub);
    (StatusCode::CREATED, Json(out)).into_response()
}

/// `GET /v1.0/subscriptions`: the live ones.
pub(super) async fn list(State(g): State<Arc<MsGraph>>) -> Response {
    let value: Vec<Value> = g
        .subscriptions()
        .iter()
        .filter(|s| s.live())
        .map(|s| s.json(&g.base_url))
        .collect();
    Json(json!({
        "@odata.context": format!("{}/v1.0/$metadata#subscriptions", g.base_url),
        "value": value,
    }))
    .into_response()
}

/// `PATCH /v1.0/subscriptions/{id}`: a new expiry for a live subscription.
pub(super) async fn renew(
    State(g): State<Arc<MsGraph>>,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return bad_request("Unable to read JSON request payload.");
    };
    let expires_ms = match expiry(&v) {
        Ok(at) => at,
        Err(resp) => return *resp,
    };
    let mut subs = g.subscriptions();
    match subs.iter_mut().find(|s| s.id == id && s.live()) {
        Some(s) => {
            s.expires_ms = expires_ms;
            s.renewals += 1;
            Json(s.json(&g.base_url)).into_response()
        }
        None => not_found(&id),
    }
}

/// `DELETE /v1.0/subscriptions/{id}`.
pub(super) async fn delete(State(g): State<Arc<MsGraph>>, Path(id): Path<String>) -> Response {
    let mut subs = g.subscriptions();
    let before = subs.len();
    subs.retain(|s| s.id != id);
    if subs.len() == before {
        return not_found(&id);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Sends the users' changes of a mutation to every live subscription that wants them.
pub(super) fn notify(g: &MsGraph, report: &MsGraphMutationReport) {
    let subs: Vec<Subscription> = g
        .subscriptions()
        .iter()
        .filter(|s| s.live())
        .cloned()
        .collect();
    let changes = [
        ("created", &report.users.added),
        ("updated", &report.users.updated),
        ("deleted", &report.users.deleted),
    ];
    for s in &subs {
        let value: Vec<Value> = changes
            .iter()
            .filter(|(kind, _)| s.change_type.split(',').any(|c| c.trim() == *kind))
            .flat_map(|(kind, ids)| ids.iter().map(move |id| (kind, id)))
            .map(|(kind, id)| {
                json!({
                    "subscriptionId": s.id,
                    "subscriptionExpirationDateTime": rfc3339_ms(s.expires_ms),
                    "clientState": s.client_state,
                    "changeType": kind,
                    "resource": format!("Users/{id}"),
                    "tenantId": g.opts.tenant,
                    "resourceData": {
                        "@odata.type": "#Microsoft.Graph.User",
                        "@odata.id": format!("Users/{id}"),
                        "id": id,
                        "organizationId": g.opts.tenant,
                    },
                })
            })
            .collect();
        if value.is_empty() {
            continue;
        }
        g.notifier.send(
            Outgoing {
                url: s.notification_url.clone(),
                headers: vec![("content-type".into(), "application/json".into())],
                body: json!({ "value": value }).to_string().into_bytes(),
            },
            "users",
        );
    }
}
