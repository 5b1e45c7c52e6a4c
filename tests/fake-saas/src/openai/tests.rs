//! Tests of the OpenAI-compatible fake in each flavour: chat, models, auth per flavour, the fail
//! and 429 knobs, the request log, and refused models and deployments.

use serde_json::json;

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
