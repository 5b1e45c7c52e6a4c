//! The routes per flavour: OpenAI and LM Studio's `POST /v1/chat/completions` and
//! `GET /v1/models`, and Azure's `POST /openai/deployments/{deployment}/chat/completions` with
//! its deployment and `api-version` checks.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::completion::complete;
use super::{AZURE_API_VERSION, AZURE_MODEL, LMSTUDIO_MODEL, OpenAi, OpenAiMode};
use crate::common::{QueryParams, json_reply};

pub(super) async fn v1_chat(State(s): State<Arc<OpenAi>>, body: Bytes) -> Response {
    let mode = s.mode();
    let mut known = s.models.clone();
    if mode == OpenAiMode::LmStudio {
        known.push(LMSTUDIO_MODEL.into());
    }
    let models = (LMSTUDIO_MODEL, Some(known.as_slice()));
    let behaviour = s.behaviour();
    tokio::time::sleep(std::time::Duration::from_millis(behaviour.delay_ms)).await;
    complete(mode, mode == OpenAiMode::OpenAi, &body, models, behaviour)
}

pub(super) async fn v1_models(State(s): State<Arc<OpenAi>>) -> Response {
    let data: Vec<Value> = s
        .models
        .iter()
        .map(|m| json!({"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "fake"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

pub(super) async fn azure_chat(
    State(s): State<Arc<OpenAi>>,
    Path(deployment): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    if !s.deployments.contains(&deployment) {
        return json_reply(
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."}}),
        );
    }
    match QueryParams::parse(raw.as_deref()).one("api-version") {
        None => json_reply(
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "404", "message": "Missing required query parameter: api-version"}}),
        ),
        Some(v) if v != AZURE_API_VERSION => json_reply(
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "BadRequest", "message": format!("API version not supported: {v}")}}),
        ),
        // Azure ignores a `model` in the body: the deployment names the model.
        Some(_) => {
            let behaviour = s.behaviour();
            tokio::time::sleep(std::time::Duration::from_millis(behaviour.delay_ms)).await;
            complete(
                OpenAiMode::Azure,
                false,
                &body,
                (AZURE_MODEL, None),
                behaviour,
            )
        }
    }
}
