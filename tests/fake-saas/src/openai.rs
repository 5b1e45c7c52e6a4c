//! OpenAI-compatible chat completions fake (API-NOTES.md), playing one of three flavours:
//! OpenAI (`POST /v1/chat/completions`, `GET /v1/models`, Bearer), Azure OpenAI
//! (`POST /openai/deployments/{deployment}/chat/completions?api-version=...`, `api-key` header)
//! or LM Studio (the OpenAI paths without auth). Replies are deterministic: the assistant answers
//! `echo: <last user message>` and token counts are word counts. `/v1/embeddings` is served by
//! `embeddings.rs` (a deterministic embedding that keeps texts of shared meaning close).
//!
//! Knobs: the mode, failing the next N upstream requests with 500 or 429, and the core's
//! every-N-th 429. The truth is a log of requests with the kind of auth header seen (never its
//! value).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::common::{MinuteWindow, QueryParams, bearer_auth_ok, json_reply, now_ms, set_header};
use crate::control::{self, Control};
use crate::server::{self, Core, FakeState, RunningFake};

/// Requests per minute advertised in `x-ratelimit-limit-requests` (not enforced).
const REQUEST_LIMIT: u32 = 500;
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

#[derive(Default)]
struct Knobs {
    mode: OpenAiMode,
    /// Remaining requests to fail and with which status.
    fail_next: u32,
    fail_status: u16,
    window: MinuteWindow,
    log: Vec<LoggedRequest>,
    /// Answer 200 with an empty reply (a model that says nothing).
    empty_reply: bool,
    /// Wait this long before answering a chat (a slow local model).
    delay_ms: u64,
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

fn auth_kind(h: &HeaderMap) -> AuthKind {
    let bearer = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "));
    match (bearer, h.contains_key("api-key")) {
        (false, false) => AuthKind::None,
        (true, false) => AuthKind::Bearer,
        (false, true) => AuthKind::ApiKey,
        (true, true) => AuthKind::Both,
    }
}

/// OpenAI's error envelope.
fn oa_error(
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

fn invalid(message: &str, param: Option<&str>) -> Response {
    oa_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message,
        param,
        None,
    )
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Validates a chat request and builds the deterministic completion. `known_models`: the models
/// a named `model` must be one of (`None` where the body's model is ignored, as on Azure).
/// A user message containing this trips the provider's content filter: Azure answers 400
/// `content_filter` (as its content management policy does), OpenAI 200 with
/// `finish_reason: "content_filter"` and no content; LM Studio has no filter.
pub const FLAGGED: &str = "[flagged]";

/// How a chat should go wrong on purpose (the `/_fake/config` knobs).
#[derive(Clone, Copy, Default)]
struct Behaviour {
    empty_reply: bool,
    delay_ms: u64,
}

impl OpenAi {
    fn behaviour(&self) -> Behaviour {
        let k = self.knobs();
        Behaviour {
            empty_reply: k.empty_reply,
            delay_ms: k.delay_ms,
        }
    }
}

fn complete(
    mode: OpenAiMode,
    model_required: bool,
    body: &[u8],
    (default_model, known_models): (&str, Option<&[String]>),
    behaviour: Behaviour,
) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return invalid("We could not parse the JSON body of your request.", None);
    };
    let model = req.get("model").and_then(Value::as_str);
    if model_required && model.is_none() {
        return invalid("you must provide a model parameter", Some("model"));
    }
    if let (Some(m), Some(known)) = (model, known_models)
        && !known.iter().any(|k| k == m)
    {
        return oa_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("The model `{m}` does not exist or you do not have access to it."),
            None,
            Some("model_not_found"),
        );
    }
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return invalid("Missing required parameter: 'messages'.", Some("messages"));
    };
    if messages.is_empty() {
        return invalid("Invalid 'messages': empty array.", Some("messages"));
    }
    let mut prompt_tokens = 0;
    let mut last_user = None;
    for (i, m) in messages.iter().enumerate() {
        let (Some(role), content) = (m.get("role").and_then(Value::as_str), m.get("content"))
        else {
            return invalid(
                &format!("Missing required parameter: 'messages[{i}].role'."),
                Some(&format!("messages[{i}].role")),
            );
        };
        let Some(content) = content.and_then(Value::as_str) else {
            return invalid(
                &format!("Invalid type for 'messages[{i}].content': expected a string."),
                Some(&format!("messages[{i}].content")),
            );
        };
        prompt_tokens += words(content);
        if role == "user" {
            last_user = Some(content);
        }
    }
    if let Some(t) = req.get("temperature")
        && !t.as_f64().is_some_and(|t| (0.0..=2.0).contains(&t))
    {
        return invalid(
            "Invalid 'temperature': must be between 0 and 2.",
            Some("temperature"),
        );
    }
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        return invalid("The fake does not stream.", Some("stream"));
    }
    let limit = match req.get("max_completion_tokens") {
        None | Some(Value::Null) => None,
        Some(n) => match n.as_u64().filter(|n| *n >= 1) {
            Some(n) => Some(n as usize),
            None => {
                return invalid(
                    "Invalid 'max_completion_tokens'.",
                    Some("max_completion_tokens"),
                );
            }
        },
    };
    let flagged = last_user.is_some_and(|u| u.contains(FLAGGED));
    if flagged && mode == OpenAiMode::Azure {
        return json_reply(
            StatusCode::BAD_REQUEST,
            json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
                "type": null, "param": "prompt", "code": "content_filter", "status": 400,
                "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
                    "hate": {"filtered": false, "severity": "safe"},
                    "violence": {"filtered": true, "severity": "high"}}}}}),
        );
    }
    // A retrieval prompt (numbered passages and a question) gets an extractive, cited answer.
    let full = last_user
        .and_then(crate::grounded::answer)
        .unwrap_or_else(|| format!("echo: {}", last_user.unwrap_or("")));
    let all: Vec<&str> = full.split_whitespace().collect();
    let (content, finish) = match limit {
        _ if flagged && mode == OpenAiMode::OpenAi => (String::new(), "content_filter"),
        _ if behaviour.empty_reply => (String::new(), "stop"),
        Some(n) if n < all.len() => (all[..n].join(" "), "length"),
        _ => (all.join(" "), "stop"),
    };
    let completion_tokens = words(&content);
    let created = now_ms() / 1000;
    let model = match mode {
        OpenAiMode::Azure => AZURE_MODEL,
        _ => model.unwrap_or(default_model),
    };
    let id = format!(
        "chatcmpl-fake{:x}",
        prompt_tokens * 1000 + completion_tokens
    );
    Json(json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }))
    .into_response()
}

async fn v1_chat(State(s): State<Arc<OpenAi>>, body: Bytes) -> Response {
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

async fn v1_models(State(s): State<Arc<OpenAi>>) -> Response {
    let data: Vec<Value> = s
        .models
        .iter()
        .map(|m| json!({"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "fake"}))
        .collect();
    Json(json!({"object": "list", "data": data})).into_response()
}

async fn azure_chat(
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

/// Routes by mode, applies the fail knobs and auth, adds rate-limit headers and logs the request.
async fn gate(State(s): State<Arc<OpenAi>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if crate::control::is_control(&path) {
        return next.run(req).await;
    }
    let method = req.method().to_string();
    let auth = auth_kind(req.headers());
    let mode = s.mode();
    let injected_429 = s.core.record(&path);
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    let parsed = serde_json::from_slice::<Value>(&bytes).ok();
    let model = parsed
        .as_ref()
        .and_then(|v| v.get("model")?.as_str().map(str::to_owned));
    let prompt = parsed.as_ref().and_then(|v| {
        let messages = v.get("messages")?.as_array()?;
        let texts: Vec<&str> = messages
            .iter()
            .filter_map(|m| m.get("content")?.as_str())
            .collect();
        Some(texts.join("\n"))
    });
    let wrong_flavour = (mode == OpenAiMode::Azure) != path.starts_with("/openai/");
    let forced = {
        let mut k = s.knobs();
        (!wrong_flavour && k.fail_next > 0).then(|| {
            k.fail_next -= 1;
            k.fail_status
        })
    };
    let mut resp = if wrong_flavour {
        oa_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "Not found",
            None,
            None,
        )
    } else if injected_429 || forced == Some(429) {
        let mut r = oa_error(
            StatusCode::TOO_MANY_REQUESTS,
            "requests",
            "Rate limit reached for requests (injected by the fake)",
            None,
            Some("rate_limit_exceeded"),
        );
        set_header(&mut r, "retry-after", "1");
        r
    } else if let Some(status) = forced {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        oa_error(
            status,
            "server_error",
            "The server had an error while processing your request.",
            None,
            None,
        )
    } else if !authorized(&s, mode, &parts.headers) {
        match mode {
            OpenAiMode::Azure => json_reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}),
            ),
            _ => oa_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "Incorrect API key provided.",
                None,
                Some("invalid_api_key"),
            ),
        }
    } else {
        next.run(Request::from_parts(parts, bytes.into())).await
    };
    let (remaining, reset) = {
        let mut k = s.knobs();
        k.window.take();
        let used = u32::try_from(k.window.used()).unwrap_or(u32::MAX);
        k.log.push(LoggedRequest {
            method,
            path,
            auth,
            model,
            status: resp.status().as_u16(),
            prompt,
        });
        (
            REQUEST_LIMIT.saturating_sub(used),
            k.window.secs_until_free(),
        )
    };
    set_header(
        &mut resp,
        "x-ratelimit-limit-requests",
        &REQUEST_LIMIT.to_string(),
    );
    set_header(
        &mut resp,
        "x-ratelimit-remaining-requests",
        &remaining.to_string(),
    );
    set_header(
        &mut resp,
        "x-ratelimit-reset-requests",
        &format!("{reset}s"),
    );
    resp
}

fn authorized(s: &OpenAi, mode: OpenAiMode, h: &HeaderMap) -> bool {
    match mode {
        OpenAiMode::OpenAi => bearer_auth_ok(h, &s.api_key),
        OpenAiMode::Azure => h
            .get("api-key")
            .is_some_and(|v| v.as_bytes() == s.api_key.as_bytes()),
        OpenAiMode::LmStudio => true,
    }
}

fn config_json(s: &OpenAi) -> Value {
    let k = s.knobs();
    json!({"mode": k.mode, "fail_next": k.fail_next, "fail_status": k.fail_status,
           "rate_limit_every": s.core.rate_limit_every(), "empty_reply": k.empty_reply,
           "delay_ms": k.delay_ms})
}

/// `POST /_fake/config`: any subset of `{"mode", "fail_next", "fail_status", "rate_limit_every",
/// "empty_reply", "delay_ms"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigBody {
    mode: Option<OpenAiMode>,
    fail_next: Option<u32>,
    fail_status: Option<u16>,
    empty_reply: Option<bool>,
    delay_ms: Option<u64>,
    #[serde(default, with = "double_option")]
    rate_limit_every: Option<Option<u64>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
        Option::<u64>::deserialize(d).map(Some)
    }
}

fn configure(s: &OpenAi, body: &[u8]) -> Response {
    let c = match serde_json::from_slice::<ConfigBody>(body) {
        Ok(c) => c,
        Err(e) => {
            return json_reply(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("expected {{\"mode\":\"openai|azure|lmstudio\",\"fail_next\":N,\"fail_status\":500|429,\"rate_limit_every\":N|null,\"empty_reply\":bool,\"delay_ms\":N}} (any subset): {e}")}),
            );
        }
    };
    if let Some(status) = c.fail_status
        && StatusCode::from_u16(status).is_err()
    {
        return json_reply(StatusCode::BAD_REQUEST, json!({"error": "bad fail_status"}));
    }
    {
        let mut k = s.knobs();
        if let Some(m) = c.mode {
            k.mode = m;
        }
        if let Some(status) = c.fail_status {
            k.fail_status = status;
        }
        if let Some(n) = c.fail_next {
            k.fail_next = n;
        }
        if let Some(e) = c.empty_reply {
            k.empty_reply = e;
        }
        if let Some(d) = c.delay_ms {
            k.delay_ms = d;
        }
    }
    if let Some(every) = c.rate_limit_every {
        s.core.set_rate_limit_every(every);
    }
    Json(config_json(s)).into_response()
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
        .route("/v1/chat/completions", post(v1_chat))
        .route("/v1/models", get(v1_models))
        .route("/v1/embeddings", post(crate::embeddings::v1_embeddings))
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(crate::embeddings::azure_embeddings),
        )
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_chat),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::http_with;

    const CHAT: &str = r#"{"model":"gpt-4o","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there world"}]}"#;

    async fn fake(mode: OpenAiMode) -> RunningFake<OpenAi> {
        let opts = OpenAiOptions {
            mode,
            ..OpenAiOptions::default()
        };
        spawn_openai("127.0.0.1:0".parse().unwrap(), opts)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn openai_mode() {
        let f = fake(OpenAiMode::OpenAi).await;
        let auth = [("Authorization", "Bearer demo-openai-key")];
        let r = http_with(f.addr, "POST", "/v1/chat/completions", &auth, Some(CHAT))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "echo: hello there world"
        );
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9})
        );
        assert_eq!(v["model"], "gpt-4o");
        assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("499"));
        let no_model = r#"{"messages":[{"role":"user","content":"x"}]}"#;
        let r = http_with(
            f.addr,
            "POST",
            "/v1/chat/completions",
            &auth,
            Some(no_model),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        assert_eq!(r.json()["error"]["param"], "model");
        let wrong = [("Authorization", "Bearer nope")];
        let r = http_with(f.addr, "POST", "/v1/chat/completions", &wrong, Some(CHAT))
            .await
            .unwrap();
        assert_eq!(r.status, 401);
        let r = http_with(f.addr, "GET", "/v1/models", &auth, None)
            .await
            .unwrap();
        assert_eq!(r.json()["data"][0]["id"], "gpt-4o-mini");
        f.fail_next(2, 429);
        let r = http_with(f.addr, "GET", "/v1/models", &auth, None)
            .await
            .unwrap();
        assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
        f.fail_next(1, 500);
        let r = http_with(f.addr, "GET", "/v1/models", &auth, None)
            .await
            .unwrap();
        assert_eq!(r.status, 500);
        let r = http_with(f.addr, "GET", "/v1/models", &auth, None)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let t = f.truth();
        assert_eq!(t.requests.len(), 7);
        assert!(t.requests.iter().all(|r| r.auth == AuthKind::Bearer));
        assert_eq!(t.requests[0].model.as_deref(), Some("gpt-4o"));
    }

    #[tokio::test]
    async fn azure_and_lmstudio_modes() {
        let f = fake(OpenAiMode::Azure).await;
        let key = [("api-key", "demo-openai-key")];
        let path = "/openai/deployments/gpt-4o/chat/completions";
        let body = r#"{"messages":[{"role":"user","content":"a b"}],"max_completion_tokens":2}"#;
        let r = http_with(
            f.addr,
            "POST",
            &format!("{path}?api-version=2024-10-21"),
            &key,
            Some(body),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(
            (
                v["choices"][0]["message"]["content"].as_str(),
                v["choices"][0]["finish_reason"].as_str()
            ),
            (Some("echo: a"), Some("length"))
        );
        assert_eq!(v["model"], AZURE_MODEL);
        let r = http_with(f.addr, "POST", path, &key, Some(body))
            .await
            .unwrap();
        assert_eq!(r.status, 400);
        let r = http_with(
            f.addr,
            "POST",
            &format!("{path}?api-version=2024-10-21"),
            &[],
            Some(body),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 401);
        let r = http_with(f.addr, "GET", "/v1/models", &key, None)
            .await
            .unwrap();
        assert_eq!(r.status, 404);
        let kinds: Vec<_> = f.truth().requests.iter().map(|r| r.auth).collect();
        assert_eq!(
            kinds,
            [
                AuthKind::ApiKey,
                AuthKind::ApiKey,
                AuthKind::None,
                AuthKind::ApiKey
            ]
        );

        let f = fake(OpenAiMode::LmStudio).await;
        let body = r#"{"messages":[{"role":"user","content":"hi"}]}"#;
        let r = http_with(f.addr, "POST", "/v1/chat/completions", &[], Some(body))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["model"], LMSTUDIO_MODEL);
        assert_eq!(f.truth().requests[0].auth, AuthKind::None);
    }

    #[tokio::test]
    async fn unknown_models_and_deployments_are_refused() {
        let f = fake(OpenAiMode::OpenAi).await;
        let auth = [("Authorization", "Bearer demo-openai-key")];
        let body = r#"{"model":"gpt-9-turbo","messages":[{"role":"user","content":"x"}]}"#;
        let r = http_with(f.addr, "POST", "/v1/chat/completions", &auth, Some(body))
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str()),
            (404, Some("model_not_found")),
            "{}",
            r.body
        );
        let f = fake(OpenAiMode::LmStudio).await;
        let r = http_with(f.addr, "POST", "/v1/chat/completions", &[], Some(body))
            .await
            .unwrap();
        assert_eq!(r.status, 404, "{}", r.body);

        let f = fake(OpenAiMode::Azure).await;
        let key = [("api-key", "demo-openai-key")];
        let body = r#"{"messages":[{"role":"user","content":"x"}]}"#;
        let r = http_with(
            f.addr,
            "POST",
            "/openai/deployments/not-deployed/chat/completions?api-version=2024-10-21",
            &key,
            Some(body),
        )
        .await
        .unwrap();
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str()),
            (404, Some("DeploymentNotFound")),
            "{}",
            r.body
        );
    }
}
