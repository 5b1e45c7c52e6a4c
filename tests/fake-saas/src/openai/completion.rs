//! One chat completion: the request's checks (model, messages, temperature, stream, token
//! limit), the content filter per flavour, and the deterministic reply (an extractive answer to
//! a retrieval prompt, otherwise `echo: <last user message>`) with word counts as token counts.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::errors::{invalid, oa_error};
use super::knobs::Behaviour;
use super::{AZURE_MODEL, OpenAiMode};
use crate::common::{json_reply, now_ms};

pub(super) fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// A user message containing this trips the provider's content filter: Azure answers 400
/// `content_filter` (as its content management policy does), OpenAI 200 with
/// `finish_reason: "content_filter"` and no content; LM Studio has no filter.
pub const FLAGGED: &str = "[flagged]";

/// Validates a chat request and builds the deterministic completion. `known_models`: the models
/// a named `model` must be one of (`None` where the body's model is ignored, as on Azure).
pub(super) fn complete(
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
