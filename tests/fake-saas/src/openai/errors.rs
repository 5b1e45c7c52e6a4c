//! OpenAI's error envelope (`{"error":{"message","type","param","code"}}`) and its 400
//! `invalid_request_error`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::common::json_reply;

/// OpenAI's error envelope.
pub(super) fn oa_error(
    status: StatusCode,
    kind: &str,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    json_reply(
        status,
        json!({"error": {"message": message, "type": kind, "param": param, "code": code}}),
    )
}

pub(super) fn invalid(message: &str, param: Option<&str>) -> Response {
    oa_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message,
        param,
        None,
    )
}
