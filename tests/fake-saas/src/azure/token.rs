//! The Azure AD v2 client-credentials token endpoint (`POST /{tenant}/oauth2/v2.0/token`): checks
//! tenant, grant, client, secret and the ARM scope, and issues tokens with the current lifetime.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Azure;
use crate::aad::{ARM_SCOPE, aad_error, check_scope};

/// `POST /{tenant}/oauth2/v2.0/token` (form-encoded client credentials).
pub(super) async fn token(
    State(a): State<Arc<Azure>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    a.token_requests.fetch_add(1, Ordering::Relaxed);
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let bad = StatusCode::BAD_REQUEST;
    if tenant != a.opts.tenant {
        return aad_error(
            bad,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    if field("grant_type") != "client_credentials" {
        return aad_error(
            bad,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if field("client_id") != a.opts.client_id {
        return aad_error(
            bad,
            "unauthorized_client",
            700016,
            "Application was not found in the directory.",
        );
    }
    if field("client_secret") != a.opts.client_secret {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided.",
        );
    }
    if let Some(refused) = check_scope(field("scope"), ARM_SCOPE) {
        return refused;
    }
    let n = a.token_requests.load(Ordering::Relaxed);
    let lifetime = a.token_lifetime_secs.load(Ordering::Relaxed);
    let access_token = format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.fake-arm-{n}.sig");
    a.tokens().insert(
        access_token.clone(),
        Instant::now() + Duration::from_secs(lifetime),
    );
    Json(
        json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
        "access_token": access_token}),
    )
    .into_response()
}
