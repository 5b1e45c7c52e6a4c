//! Users: `/users/me.json`, the authenticated agent.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Zendesk;
use super::data::AGENT_IDS;

pub(super) async fn me(State(z): State<Arc<Zendesk>>) -> Response {
    let id = AGENT_IDS[0];
    Json(json!({"user": {
        "id": id, "url": z.api(&format!("/users/{id}.json")), "name": "Demo Agent", "email": z.email,
        "role": "admin", "active": true, "verified": true, "time_zone": "UTC", "locale": "en-US",
    }}))
    .into_response()
}
