//! One `openai.wasm` component as three connector instances (LM Studio, Azure OpenAI, OpenAI),
//! chosen by settings alone, each against a fake playing that flavour: `chat` returns the fake's
//! deterministic reply and usage, the gate injected the right kind of credential (Bearer, `api-key`,
//! none), and wrong keys, rate limits and upstream failures map to the contract's errors.

use airlock::runtime::connector::{InvokeError, Op};
use airlock_tests::*;
use fake_saas::openai::{AuthKind, OpenAi, OpenAiMode, OpenAiOptions};
use fake_saas::{RunningFake, spawn_openai};
use serde_json::json;

const OPENAI_KEY: &str = "sk-test-openai";
const AZURE_KEY: &str = "azure-test-key";

async fn fake(mode: OpenAiMode, api_key: &str) -> RunningFake<OpenAi> {
    let opts = OpenAiOptions {
        mode,
        api_key: api_key.into(),
        ..OpenAiOptions::default()
    };
    spawn_openai("127.0.0.1:0".parse().expect("addr"), opts)
        .await
        .expect("fake")
}

fn chat(content: &str) -> Op {
    Op::Action {
        name: "chat".into(),
        input: json!({"messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": content}]}),
    }
}

fn code(r: &Result<serde_json::Value, InvokeError>) -> String {
    match r {
        Err(InvokeError::Connector(c)) => c.code.clone(),
        other => format!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_component_three_providers() {
    let lm = fake(OpenAiMode::LmStudio, "").await;
    let az = fake(OpenAiMode::Azure, AZURE_KEY).await;
    let oa = fake(OpenAiMode::OpenAi, OPENAI_KEY).await;
    let env = Env::new(&openai_config(&lm.base_url, &az.base_url, &oa.base_url));
    env.set_secret("openai_key", OPENAI_KEY);
    env.set_secret("azure_openai_key", AZURE_KEY);
    let a = start_in_process(&env).await;

    let cases = [
        ("lmstudio", &lm, "local-model", AuthKind::None),
        ("azure-openai", &az, "gpt-4o-2024-08-06", AuthKind::ApiKey),
        ("openai", &oa, "gpt-4o-mini", AuthKind::Bearer),
    ];
    for (id, f, model, auth) in cases {
        let r = a
            .invoke(id, chat(&format!("hello from {id}")))
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            r,
            json!({"reply": format!("echo: hello from {id}"), "model": model,
                   "finish_reason": "stop",
                   "usage": {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}}),
            "{id}"
        );
        let h = a.invoke(id, Op::Health).await.expect("health");
        assert_eq!(h["ok"], true, "{id}: {h}");
        let t = f.truth();
        assert!(!t.requests.is_empty());
        assert!(
            t.requests.iter().all(|r| r.auth == auth && r.status == 200),
            "{id}: {:?}",
            t.requests
        );
        let r = a
            .invoke(
                id,
                Op::Sync {
                    stream: "anything".into(),
                    cursor: None,
                },
            )
            .await;
        assert_eq!(code(&r), "invalid-input", "{id}: {r:?}");
    }
    // Only OpenAI got the model from the settings; Azure's deployment names it.
    assert_eq!(oa.truth().requests[0].model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(az.truth().requests[0].model, None);
    assert!(
        az.truth().requests[0]
            .path
            .ends_with("/gpt-4o/chat/completions")
    );

    // Input options reach the upstream; a per-call model overrides the setting.
    let r = a
        .invoke(
            "openai",
            Op::Action {
                name: "chat".into(),
                input: json!({"messages": [{"role": "user", "content": "one two three four"}],
                              "model": "gpt-4o", "temperature": 0.2, "max_completion_tokens": 2}),
            },
        )
        .await
        .expect("chat");
    assert_eq!(
        (&r["reply"], &r["model"], &r["finish_reason"]),
        (&json!("echo: one"), &json!("gpt-4o"), &json!("length"))
    );
    let bad = a
        .invoke(
            "openai",
            Op::Action {
                name: "chat".into(),
                input: json!({"messages": []}),
            },
        )
        .await;
    assert_eq!(code(&bad), "invalid-input");

    // Upstream failures map through the SDK.
    oa.fail_next(1, 429);
    assert_eq!(code(&a.invoke("openai", chat("x")).await), "rate-limited");
    az.fail_next(1, 500);
    assert_eq!(code(&a.invoke("azure-openai", chat("x")).await), "upstream");
    lm.fail_next(1, 503);
    assert_eq!(code(&a.invoke("lmstudio", chat("x")).await), "upstream");
    assert_eq!(
        a.invoke("lmstudio", chat("again")).await.expect("chat")["reply"],
        "echo: again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_are_unauthorized() {
    let lm = fake(OpenAiMode::LmStudio, "").await;
    let az = fake(OpenAiMode::Azure, AZURE_KEY).await;
    let oa = fake(OpenAiMode::OpenAi, OPENAI_KEY).await;
    let env = Env::new(&openai_config(&lm.base_url, &az.base_url, &oa.base_url));
    env.set_secret("openai_key", "sk-wrong");
    env.set_secret("azure_openai_key", "wrong-azure-key");
    let a = start_in_process(&env).await;
    for id in ["openai", "azure-openai"] {
        let r = a.invoke(id, chat("hi")).await;
        assert_eq!(code(&r), "unauthorized", "{id}: {r:?}");
        let r = a.invoke(id, Op::Health).await;
        assert_eq!(code(&r), "unauthorized", "{id}: {r:?}");
    }
    assert_eq!(oa.truth().requests[0].auth, AuthKind::Bearer);
    assert_eq!(az.truth().requests[0].auth, AuthKind::ApiKey);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_route_falls_over_to_the_next_provider_and_names_it() {
    let lm = fake(OpenAiMode::LmStudio, "").await;
    let az = fake(OpenAiMode::Azure, AZURE_KEY).await;
    let oa = fake(OpenAiMode::OpenAi, OPENAI_KEY).await;
    let body = format!(
        "{}\n[[route]]\nname = \"chat\"\naction = \"chat\"\nconnectors = [\"lmstudio\", \"azure-openai\", \"openai\"]\n",
        openai_config(&lm.base_url, &az.base_url, &oa.base_url)
    );
    let env = Env::new(&body);
    env.set_secret("openai_key", OPENAI_KEY);
    env.set_secret("azure_openai_key", AZURE_KEY);
    let a = start_in_process(&env).await;

    // The local model is down (500): Azure OpenAI answers.
    lm.fail_next(1, 500);
    let r = a.invoke("chat", chat("first")).await.expect("route");
    assert_eq!(r["answered_by"], "azure-openai", "{r}");
    assert_eq!(tried(&r), vec!["lmstudio"], "{r}");
    assert_eq!(oa.truth().requests.len(), 0, "openai was never asked");
    assert_eq!(r["result"]["reply"], "echo: first");
    // Both fail (500, then 429): OpenAI answers.
    lm.fail_next(1, 500);
    az.fail_next(1, 429);
    let r = a.invoke("chat", chat("second")).await.expect("route");
    assert_eq!(r["answered_by"], "openai", "{r}");
    assert_eq!(tried(&r), vec!["lmstudio", "azure-openai"], "{r}");
    // Healthy again: the first provider answers.
    let r = a.invoke("chat", chat("third")).await.expect("route");
    assert_eq!(r["answered_by"], "lmstudio", "{r}");
    assert_eq!(tried(&r), Vec::<String>::new(), "{r}");
    // All down: one clear error naming every attempt.
    lm.fail_next(1, 500);
    az.fail_next(1, 500);
    oa.fail_next(1, 500);
    let r = a.invoke("chat", chat("fourth")).await;
    match r {
        Err(InvokeError::Unavailable { message }) => {
            for id in ["lmstudio", "azure-openai", "openai"] {
                assert!(message.contains(id), "{message}");
            }
        }
        other => panic!("expected every provider to fail: {other:?}"),
    }
}

/// The providers a route tried and gave up on, in order.
fn tried(r: &serde_json::Value) -> Vec<String> {
    r["failed"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|x| x["connector"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Azure answers a deployment it does not have with 404 `DeploymentNotFound`, OpenAI a model it
/// does not serve with 404 `model_not_found`: a misnamed deployment or model is a `not-found`
/// naming the upstream's reason, not a reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_deployment_or_model_is_not_found() {
    let lm = fake(OpenAiMode::LmStudio, "").await;
    let az = fake(OpenAiMode::Azure, AZURE_KEY).await;
    let oa = fake(OpenAiMode::OpenAi, OPENAI_KEY).await;
    let body = openai_config(&lm.base_url, &az.base_url, &oa.base_url)
        .replace(r#"deployment = "gpt-4o""#, r#"deployment = "gpt-4o-typo""#);
    let env = Env::new(&body);
    env.set_secret("openai_key", OPENAI_KEY);
    env.set_secret("azure_openai_key", AZURE_KEY);
    let a = start_in_process(&env).await;

    let r = a.invoke("azure-openai", chat("hi")).await;
    assert_eq!(code(&r), "not-found", "{r:?}");
    assert!(
        format!("{r:?}").contains("deployment for this resource does not exist"),
        "{r:?}"
    );
    let t = az.truth();
    assert_eq!(t.requests.len(), 1);
    assert!(
        t.requests[0]
            .path
            .ends_with("/gpt-4o-typo/chat/completions")
    );
    assert_eq!(t.requests[0].status, 404);

    let r = a
        .invoke(
            "openai",
            Op::Action {
                name: "chat".into(),
                input: json!({"messages": [{"role": "user", "content": "hi"}],
                              "model": "gpt-9-turbo"}),
            },
        )
        .await;
    assert_eq!(code(&r), "not-found", "{r:?}");
    assert!(
        format!("{r:?}").contains("`gpt-9-turbo` does not exist"),
        "{r:?}"
    );
    assert_eq!(oa.truth().requests[0].model.as_deref(), Some("gpt-9-turbo"));
    assert_eq!(oa.truth().requests[0].status, 404);
}

/// The failover a help desk can trust: Azure's content filter (400 `content_filter`) and an empty
/// reply move the route on like an outage does; a slow local model gets its own (longer)
/// deadline while a cloud one keeps a short one; a caller's bad input stops the route at once;
/// the answer says why each provider was skipped; metrics count attempts and tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_fail_over_on_content_filters_empty_replies_and_timeouts_but_not_caller_errors() {
    let lm = fake(OpenAiMode::LmStudio, "").await;
    let az = fake(OpenAiMode::Azure, AZURE_KEY).await;
    let oa = fake(OpenAiMode::OpenAi, OPENAI_KEY).await;
    // Per-provider deadlines: the local model may take 5 s, Azure only 1 s.
    let body = openai_config(&lm.base_url, &az.base_url, &oa.base_url)
        .replace(
            "id = \"lmstudio\"\n",
            "id = \"lmstudio\"\nlimits = { timeout = \"5s\" }\n",
        )
        .replace(
            "id = \"azure-openai\"\n",
            "id = \"azure-openai\"\nlimits = { timeout = \"1s\" }\n",
        );
    let body = format!(
        "{body}\n[[route]]\nname = \"chat\"\naction = \"chat\"\nconnectors = [\"azure-openai\", \"openai\", \"lmstudio\"]\n"
    );
    let env = Env::new(&body);
    env.set_secret("openai_key", OPENAI_KEY);
    env.set_secret("azure_openai_key", AZURE_KEY);
    let a = start_in_process(&env).await;
    let reasons = |r: &serde_json::Value| -> Vec<(String, String)> {
        r["failed"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let s = |k: &str| f[k].as_str().unwrap_or("?").to_string();
                (s("connector"), s("reason"))
            })
            .collect()
    };

    // Azure's content filter refuses the prompt (400), OpenAI's answers 200 with
    // `finish_reason: content_filter` and no text: both are skipped, the local model answers.
    let r = a
        .invoke("chat", chat("tell me about [flagged] things"))
        .await
        .expect("route");
    assert_eq!(r["answered_by"], "lmstudio", "{r}");
    let skipped = vec![
        ("azure-openai".to_string(), "content-filter".to_string()),
        ("openai".to_string(), "content-filter".to_string()),
    ];
    assert_eq!(reasons(&r), skipped, "{r}");

    // An empty reply is not an answer.
    az.set_empty_reply(true);
    let r = a.invoke("chat", chat("hello")).await.expect("route");
    assert_eq!(r["answered_by"], "openai", "{r}");
    assert_eq!(
        reasons(&r),
        vec![("azure-openai".to_string(), "empty-reply".to_string())]
    );
    az.set_empty_reply(false);

    // Azure slower than its 1 s deadline: skipped as a timeout. The local model takes 2 s,
    // within its own 5 s: it answers.
    az.set_delay(std::time::Duration::from_millis(1500));
    oa.fail_next(1, 503);
    lm.set_delay(std::time::Duration::from_secs(2));
    let r = a.invoke("chat", chat("slow")).await.expect("route");
    assert_eq!(r["answered_by"], "lmstudio", "{r}");
    let why: Vec<String> = reasons(&r).into_iter().map(|(_, w)| w).collect();
    assert_eq!(why, ["timeout", "server-error"], "{r}");
    az.set_delay(std::time::Duration::ZERO);
    lm.set_delay(std::time::Duration::ZERO);

    // A caller's error (input the action's schema refuses) stops at the first provider.
    let before = (az.truth().requests.len(), oa.truth().requests.len());
    let bad = Op::Action {
        name: "chat".into(),
        input: json!({"messages": "not a list"}),
    };
    let r = a.invoke("chat", bad).await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(
        (az.truth().requests.len(), oa.truth().requests.len()),
        before
    );

    // Attempts, their outcomes and the tokens of answers are in the metrics.
    let m = a.metrics.render();
    for line in [
        "airlock_route_attempts_total{route=\"chat\",connector=\"azure-openai\",outcome=\"content-filter\"} 1",
        "airlock_route_attempts_total{route=\"chat\",connector=\"azure-openai\",outcome=\"timeout\"} 1",
        "airlock_route_attempts_total{route=\"chat\",connector=\"lmstudio\",outcome=\"ok\"} 2",
    ] {
        assert!(m.contains(line), "{line} missing from\n{m}");
    }
    assert!(m.contains("airlock_llm_tokens_total{connector=\"lmstudio\",kind=\"completion\"}"));
    assert!(m.contains("airlock_route_attempt_duration_seconds_bucket{"));
}

/// A route marked `local_only` may hold only connectors whose grants reach local addresses, so
/// sensitive text sent to it never leaves the machine; the config says which grant is not.
#[test]
fn a_local_only_route_refuses_a_connector_that_reaches_a_public_host() {
    let body = openai_config(
        "http://127.0.0.1:1234",
        "https://acme.openai.azure.com",
        "https://api.openai.com",
    );
    let route = |connectors: &str| {
        format!(
            "{body}\n[[route]]\nname = \"private\"\naction = \"chat\"\nlocal_only = true\nconnectors = [{connectors}]\n"
        )
    };
    let env = Env::new(&route("\"lmstudio\""));
    let out = env.airlock(&["config", "check"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("local_only"), "{stderr}");
    let env = Env::new(&route("\"lmstudio\", \"azure-openai\""));
    let out = env.airlock(&["config", "check"], None);
    let stderr =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("local_only") && stderr.contains("acme.openai.azure.com"),
        "{stderr}"
    );
}
