//! `POST /v1/hooks/{connector}`: where upstreams push change notifications (see
//! `crate::inbound`). Open to the network like a webhook receiver must be, but nothing happens
//! unless the notification verifies against the hook's secret: 401 otherwise, 404 for a
//! connector without a hook (the same for one that does not exist).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::errors::error_response;
use crate::app::Airlock;
use crate::inbound::{HookError, Received};

pub async fn receive(
    State(a): State<Arc<Airlock>>,
    Path(connector): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match crate::inbound::receive(&a, &connector, &headers, uri.query(), &body).await {
        // Graph wants the token back as plain text, within 10 s.
        Ok(Received::Handshake(token)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            token,
        )
            .into_response(),
        Ok(Received::Syncing(streams)) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "syncing": streams })),
        )
            .into_response(),
        Err(e @ HookError::NotFound(_)) => {
            error_response(StatusCode::NOT_FOUND, "not-found", &e.to_string(), None)
        }
        Err(e @ HookError::Refused(_)) => error_response(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            &e.to_string(),
            None,
        ),
        Err(HookError::Internal(m)) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &a.scrubber.scrub(&m),
            None,
        ),
    }
}
