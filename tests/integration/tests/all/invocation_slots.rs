//! `[invocations]`: invocations run under a per-tenant cap as well as the node's, so one tenant's
//! burst waits (and, past `queue_wait`, is refused as `rate-limited`) while other tenants' calls
//! still run. Real `openai` components against the OpenAI fake, whose answers are slowed down so
//! a call is provably in flight.

use std::time::Duration;

use airlock_tests::*;
use serde_json::{Value, json};

const KEY: &str = "sk-invocation-slots";

/// One `openai` connector per tenant, both at the same fake.
fn two_tenants(base: &str) -> String {
    let c = component("openai");
    let mut config = String::from(
        "[invocations]\nmax_running = 8\nmax_running_per_tenant = 1\nqueue_wait = \"300ms\"\n",
    );
    for (id, tenant) in [("llm-acme", "acme"), ("llm-beta", "beta")] {
        config.push_str(&format!(
            r#"
[[connector]]
id = "{id}"
component = "{c}"
tenant = "{tenant}"
permissions = "tenant"
[connector.settings]
flavor = "openai"
base_url = "{base}"
model = "gpt-4o-mini"

[[grant]]
connector = "{id}"
url = "{base}/v1/"
methods = ["POST"]
exact_paths = ["/v1/chat/completions"]
allow_private = true
allow_insecure = true
auth = {{ type = "bearer", token = "secret:openai_key" }}
"#,
            c = c.display()
        ));
    }
    config
}

/// Slows the model down and starts a chat of acme's that holds acme's one slot until it answers
/// (about 3 s); returns once the chat has reached the fake.
async fn hold_acmes_slot(
    d: &std::sync::Arc<Daemon>,
    acme: &str,
    oa: &fake_saas::RunningFake<fake_saas::openai::OpenAi>,
) -> tokio::task::JoinHandle<(u16, Value)> {
    oa.set_delay(Duration::from_secs(3));
    let first = {
        let (d, acme) = (d.clone(), acme.to_string());
        tokio::spawn(async move { chat(&d, &acme, "llm-acme").await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while oa.requests_to("/v1/chat/completions") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first chat never reached the fake"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first
}

async fn chat(d: &Daemon, token: &str, connector: &str) -> (u16, Value) {
    let body = json!({"op": "chat", "input": {"messages": [{"role": "user", "content": "hello"}]}});
    http_auth(
        "POST",
        &format!("{}/v1/connectors/{connector}/invoke", d.base),
        Some(token),
        Some(body.to_string()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_at_its_invocation_cap_waits_then_is_refused_while_other_tenants_run() {
    let oa = openai_fake(KEY).await;
    let env = Env::new(&two_tenants(&oa.base_url));
    env.set_secret("openai_key", KEY);
    let d = std::sync::Arc::new(env.serve());
    let acme = env.create_token("ann@acme.example", "acme", &[], false);
    let beta = env.create_token("bo@beta.example", "beta", &[], false);
    // Acme's first call holds acme's one slot while the slowed-down model answers.
    let first = hold_acmes_slot(&d, &acme, &oa).await;

    // Meanwhile: acme's second call waits its queue_wait, then is refused with a retry hint;
    // beta's call runs at once beside acme's.
    let (second, other) = tokio::join!(chat(&d, &acme, "llm-acme"), chat(&d, &beta, "llm-beta"));
    assert_eq!(second.0, 429, "acme over its cap: {}", second.1);
    assert_eq!(second.1["error"]["code"], "rate-limited", "{}", second.1);
    let message = second.1["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("max_running_per_tenant"), "{message}");
    assert_eq!(other.0, 200, "another tenant is not held up: {}", other.1);

    let first = first.await.expect("first call");
    assert_eq!(first.0, 200, "{}", first.1);
    // The slot came back: acme runs again.
    oa.set_delay(Duration::ZERO);
    let again = chat(&d, &acme, "llm-acme").await;
    assert_eq!(again.0, 200, "{}", again.1);
    // Refused calls never reached the model: acme 2 calls, beta 1.
    assert_eq!(oa.requests_to("/v1/chat/completions"), 3);
}

async fn live_search(d: &Daemon, token: &str, connector: &str) -> Value {
    let body =
        json!({"query": "hello", "connector": connector, "live": true, "live_timeout_ms": 500});
    let (status, answer) = http_auth(
        "POST",
        &format!("{}/v1/search", d.base),
        Some(token),
        Some(body.to_string()),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

fn live_failure(answer: &Value) -> String {
    answer["failed"][0]["error"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_search_takes_a_turn_among_its_tenants_invocations() {
    let oa = openai_fake(KEY).await;
    let env = Env::new(&two_tenants(&oa.base_url));
    env.set_secret("openai_key", KEY);
    let d = std::sync::Arc::new(env.serve());
    let acme = env.create_token("ann@acme.example", "acme", &[], false);
    let beta = env.create_token("bo@beta.example", "beta", &[], false);
    // Acme's chat holds acme's one slot while the slowed-down model answers.
    let first = hold_acmes_slot(&d, &acme, &oa).await;

    // Acme's live search waits for that slot and gives up within its live timeout, naming the
    // cap; beta's runs at once (the `openai` connector does not support search, which
    // proves the call reached it).
    let (held, other) = tokio::join!(
        live_search(&d, &acme, "llm-acme"),
        live_search(&d, &beta, "llm-beta")
    );
    let held = live_failure(&held);
    assert!(
        held.contains("max_running_per_tenant") && held.contains("not started"),
        "{held}"
    );
    let other = live_failure(&other);
    assert!(other.contains("does not support `search`"), "{other}");

    let first = first.await.expect("chat");
    assert_eq!(first.0, 200, "{}", first.1);
    // The slot came back: acme's live search reaches its connector again.
    let again = live_failure(&live_search(&d, &acme, "llm-acme").await);
    assert!(again.contains("does not support `search`"), "{again}");
}

/// The `/metrics` line `name{tenant="TENANT"} N`, or None.
async fn tenant_gauge(d: &Daemon, name: &str, tenant: &str) -> Option<i64> {
    let (status, text) = http("GET", &format!("{}/metrics", d.base), None).await;
    assert_eq!(status, 200);
    let text = text.as_str().unwrap_or("").to_string();
    let prefix = format!("airlock_{name}{{tenant=\"{tenant}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_each_tenants_waiting_and_running_invocations() {
    let oa = openai_fake(KEY).await;
    let env = Env::new(&two_tenants(&oa.base_url).replace("\"300ms\"", "\"20s\""));
    env.set_secret("openai_key", KEY);
    let d = std::sync::Arc::new(env.serve());
    let acme = env.create_token("ann@acme.example", "acme", &[], false);
    assert_eq!(
        tenant_gauge(&d, "invocations_waiting", "acme").await,
        Some(0)
    );
    let first = hold_acmes_slot(&d, &acme, &oa).await;
    // Two more calls of acme's queue behind its one slot.
    let queued: Vec<_> = (0..2)
        .map(|_| {
            let (d, acme) = (d.clone(), acme.clone());
            tokio::spawn(async move { chat(&d, &acme, "llm-acme").await })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tenant_gauge(&d, "invocations_waiting", "acme").await != Some(2) {
        assert!(
            std::time::Instant::now() < deadline,
            "acme's two queued calls never showed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        tenant_gauge(&d, "invocations_running", "acme").await,
        Some(1)
    );
    assert_eq!(
        tenant_gauge(&d, "invocations_waiting", "beta").await,
        Some(0)
    );
    assert_eq!(
        tenant_gauge(&d, "invocations_running", "beta").await,
        Some(0)
    );
    oa.set_delay(Duration::ZERO);
    assert_eq!(first.await.expect("first").0, 200);
    for q in queued {
        let (status, v) = q.await.expect("queued call");
        assert_eq!(status, 200, "{v}");
    }
    assert_eq!(
        tenant_gauge(&d, "invocations_waiting", "acme").await,
        Some(0)
    );
    assert_eq!(
        tenant_gauge(&d, "invocations_running", "acme").await,
        Some(0)
    );
}
