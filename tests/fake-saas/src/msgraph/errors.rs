//! Graph's error envelope (`{"error":{"code","message","innerError"}}`) and its common cases.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::common::{json_reply, now_ms, rfc3339_ms};

pub(super) fn graph_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let message = message.into();
    let date = rfc3339_ms(now_ms());
    let request_id = format!("{:08x}-0000-4000-8000-000000000000", now_ms() as u32);
    json_reply(
        status,
        json!({"error": {"code": code, "message": message, "innerError": {
            "date": &date[..19], "request-id": request_id, "client-request-id": request_id}}}),
    )
}

pub(super) fn bad_request(message: impl Into<String>) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

pub(super) fn not_found(what: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!(
            "Resource '{what}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}
