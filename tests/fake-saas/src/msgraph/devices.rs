//! Devices: Intune managed devices per user (`/users/{id}/managedDevices`) and Entra devices
//! (`/devices`, `/devices/{id}`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::MsGraph;
use super::errors::not_found;
use super::users::user_index;
use crate::common::QueryParams;

pub(super) async fn managed_devices(
    State(g): State<Arc<MsGraph>>,
    Path(key): Path<String>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let devices: Vec<Value> = {
        let d = g.data();
        let Some(i) = user_index(&d, &key) else {
            return not_found(&key);
        };
        let id = d.users.items[i].json["id"].clone();
        d.managed
            .iter()
            .filter(|m| m["userId"] == id)
            .cloned()
            .collect()
    };
    g.listing(
        uri.path(),
        &q,
        devices,
        (1000, 1000),
        "users('..')/managedDevices",
    )
}

pub(super) async fn list_devices(
    State(g): State<Arc<MsGraph>>,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = QueryParams::parse(raw.as_deref());
    let devices: Vec<Value> = g.data().devices.live().map(|i| i.json.clone()).collect();
    g.listing(uri.path(), &q, devices, (100, 999), "devices")
}

pub(super) async fn get_device(State(g): State<Arc<MsGraph>>, Path(id): Path<String>) -> Response {
    match g.data().devices.find(&id) {
        Some(i) => Json(i.json.clone()).into_response(),
        None => not_found(&id),
    }
}
