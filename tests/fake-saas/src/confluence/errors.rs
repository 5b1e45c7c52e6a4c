//! Confluence's two error envelopes: REST v2 (`{"errors":[...]}`) and REST v1
//! (`{"statusCode","data","message"}`).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::common::json_reply;

/// v2 error envelope: `{"errors":[{"status","code","title","detail"}]}`.
pub(super) fn v2_error(status: StatusCode, code: &str, title: impl Into<String>) -> Response {
    let title = title.into();
    json_reply(
        status,
        json!({"errors": [{"status": status.as_u16(), "code": code, "title": title, "detail": null}]}),
    )
}

pub(super) fn bad_param(title: impl Into<String>) -> Response {
    v2_error(StatusCode::BAD_REQUEST, "INVALID_REQUEST_PARAMETER", title)
}

/// v1 error envelope.
pub(super) fn v1_error(status: StatusCode, message: impl Into<String>) -> Response {
    let data = json!({"authorized": status != StatusCode::FORBIDDEN, "valid": false, "errors": [], "successful": false});
    json_reply(
        status,
        json!({"statusCode": status.as_u16(), "data": data, "message": message.into()}),
    )
}
