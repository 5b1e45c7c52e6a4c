//! The parts of the Azure AD v2 client-credentials token endpoint that the Graph and Azure fakes
//! share: AAD's error body and the scope rule (a client-credentials request names exactly one
//! resource's `/.default`; each fake serves one resource, so any other scope is refused).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::common::json_reply;

/// Graph's resource scope.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// Azure Resource Manager's resource scope.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// AAD's error body: `error`, `error_description` starting `AADSTS{code}: `, `error_codes`.
pub fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let description = format!("AADSTS{code}: {description}");
    json_reply(
        status,
        json!({"error": error, "error_description": description, "error_codes": [code],
            "timestamp": "2026-01-01 00:00:00Z", "trace_id": "fake", "correlation_id": "fake"}),
    )
}

/// `None` when `scope` is this fake's resource scope `own`, else AAD's 400 `invalid_scope`:
/// AADSTS1002012 without the `/.default` suffix, AADSTS70011 for another resource's scope.
pub fn check_scope(scope: &str, own: &str) -> Option<Response> {
    let bad = StatusCode::BAD_REQUEST;
    if !scope.ends_with("/.default") {
        let msg = format!(
            "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
        );
        return Some(aad_error(bad, "invalid_scope", 1002012, &msg));
    }
    if scope != own {
        let msg = format!(
            "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
        );
        return Some(aad_error(bad, "invalid_scope", 70011, &msg));
    }
    None
}
