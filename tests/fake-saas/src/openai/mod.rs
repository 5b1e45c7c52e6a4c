//! OpenAI-compatible chat completions fake (API-NOTES.md), playing one of three flavours:
//! OpenAI (`POST /v1/chat/completions`, `GET /v1/models`, Bearer), Azure OpenAI
//! (`POST /openai/deployments/{deployment}/chat/completions?api-version=...`, `api-key` header)
//! or LM Studio (the OpenAI paths without auth). Replies are deterministic: the assistant answers
//! `echo: <last user message>` and token counts are word counts. `/v1/embeddings` is served by
//! [`crate::embeddings`] (a deterministic embedding that keeps texts of shared meaning close).
//!
//! Knobs: the mode, failing the next N upstream requests with 500 or 429, and the core's
//! every-N-th 429. The truth is a log of requests with the kind of auth header seen (never its
//! value).
//!
//! This module holds the public face (modes, options, the request log, the state, the router,
//! `spawn_openai` and the [`RunningFake`] helpers); each concern lives in its own module below.

mod chat;
mod completion;
mod errors;
mod gate;
mod knobs;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Router, middleware};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::errors::oa_error;
use self::gate::gate;
use self::knobs::{Knobs, config_json, configure};
use crate::control::{self, Control};
use crate::server::{self, Core, FakeState, RunningFake};

pub use self::completion::FLAGGED;

/// The only Azure `api-version` the fake accepts.
pub const AZURE_API_VERSION: &str = "2024-10-21";
/// Model an Azure deployment reports.
pub const AZURE_MODEL: &str = "gpt-4o-2024-08-06";
/// Model LM Studio reports when the request names none.
pub const LMSTUDIO_MODEL: &str = "local-model";

/// Which provider the fake plays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpenAiMode {
    #[default]
    OpenAi,
    Azure,
    LmStudio,
}

impl std::str::FromStr for OpenAiMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(Value::String(s.to_ascii_lowercase()))
            .map_err(|_| format!("unknown mode `{s}` (openai, azure, lmstudio)"))
    }
}

#[derive(Clone, Debug)]
pub struct OpenAiOptions {
    pub mode: OpenAiMode,
    /// Expected Bearer token (openai) or `api-key` value (azure); unused for lmstudio.
    pub api_key: String,
    /// Models listed by `GET /v1/models`; a chat naming another model is refused (404
    /// `model_not_found`).
    pub models: Vec<String>,
    /// Azure deployment names; a chat on another deployment is a 404 `DeploymentNotFound`.
    pub deployments: Vec<String>,
}

impl Default for OpenAiOptions {
    fn default() -> Self {
        OpenAiOptions {
            mode: OpenAiMode::OpenAi,
            api_key: "demo-openai-key".into(),
            models: vec!["gpt-4o-mini".into(), "gpt-4o".into()],
            deployments: vec!["gpt-4o".into()],
        }
    }
}

/// Which credential header a request carried (never its value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthKind {
    None,
    Bearer,
    ApiKey,
    /// Both `Authorization: Bearer` and `api-key`.
    Both,
}

/// One upstream request as the fake saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub auth: AuthKind,
    /// `model` of the body, if any.
    pub model: Option<String>,
    pub status: u16,
    /// Every message's content of a chat body, joined by newlines (what a prompt sent upstream
    /// held; tests check nothing it should not hold reached the provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAiTruth {
    pub mode: OpenAiMode,
    /// Oldest first; control routes under `/_fake/` are not logged.
    pub requests: Vec<LoggedRequest>,
}

/// Shared state of a running OpenAI-compatible fake.
pub struct OpenAi {
    core: Core,
    api_key: String,
    models: Vec<String>,
    deployments: Vec<String>,
    knobs: Mutex<Knobs>,
    /// Texts embedded since the last `clear_log` (see `embeddings.rs`).
    pub(crate) embedded: std::sync::atomic::AtomicUsize,
}

impl FakeState for OpenAi {
    fn core(&self) -> &Core {
        &self.core
    }
}

impl OpenAi {
    fn knobs(&self) -> MutexGuard<'_, Knobs> {
        self.knobs.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn mode(&self) -> OpenAiMode {
        self.knobs().mode
    }
    /// OpenAI refuses a request without a model; LM Studio answers with the loaded one.
    pub(crate) fn requires_model(&self) -> bool {
        self.mode() == OpenAiMode::OpenAi
    }
    fn truth(&self) -> OpenAiTruth {
        let k = self.knobs();
        OpenAiTruth {
            mode: k.mode,
            requests: k.log.clone(),
        }
    }
}

impl Control for OpenAi {
    type Truth = OpenAiTruth;
    fn ground_truth(&self) -> OpenAiTruth {
        self.truth()
    }
    /// The request log is cleared with the request counts.
    fn reset_own_counters(&self) {
        self.knobs().log.clear();
    }
    fn config_body(&self) -> Value {
        config_json(self)
    }
    fn configure(&self, body: &[u8]) -> Response {
        configure(self, body)
    }
}

fn router(state: Arc<OpenAi>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::v1_chat))
        .route("/v1/models", get(chat::v1_models))
        .route("/v1/embeddings", post(crate::embeddings::v1_embeddings))
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(crate::embeddings::azure_embeddings),
        )
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(chat::azure_chat),
        )
        .merge(control::routes::<OpenAi>())
        .fallback(|| async {
            oa_error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "Not found",
                None,
                None,
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// Starts the OpenAI-compatible fake on `listen` (port 0 picks a free port).
pub async fn spawn_openai(
    listen: SocketAddr,
    opts: OpenAiOptions,
) -> std::io::Result<RunningFake<OpenAi>> {
    let (listener, _, base_url) = server::bind(listen).await?;
    let state = Arc::new(OpenAi {
        core: Core::new(None),
        api_key: opts.api_key,
        models: opts.models,
        deployments: opts.deployments,
        knobs: Mutex::new(Knobs {
            mode: opts.mode,
            fail_status: 500,
            ..Knobs::default()
        }),
        embedded: Default::default(),
    });
    Ok(server::start(
        listener,
        base_url,
        state.clone(),
        router(state),
    ))
}

impl RunningFake<OpenAi> {
    /// The mode and every upstream request so far.
    pub fn truth(&self) -> OpenAiTruth {
        self.state.truth()
    }
    pub fn set_mode(&self, mode: OpenAiMode) {
        self.state.knobs().mode = mode;
    }
    /// Answers the next `n` upstream requests with `status` (500, 429 with `retry-after: 1`, ...).
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut k = self.state.knobs();
        k.fail_next = n;
        k.fail_status = status;
    }
    /// Chats answer 200 with an empty reply (`true`) or normally again.
    pub fn set_empty_reply(&self, empty: bool) {
        self.state.knobs().empty_reply = empty;
    }
    /// Chats wait this long before answering (a slow local model).
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.state.knobs().delay_ms = delay.as_millis() as u64;
    }
    /// Clears the request log and counters.
    pub fn clear_log(&self) {
        self.state.knobs().log.clear();
        self.state
            .embedded
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.reset_requests();
    }
}
