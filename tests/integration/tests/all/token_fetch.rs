//! The identity provider cannot be hammered through the gate: token fetches are coalesced,
//! run under the host's own timeout (not the connector's first-byte timeout), and back off
//! after a failure instead of re-posting the client secret on every request.

use airlock_tests::*;
use fake_saas::{Azure, AzureOptions, RunningFake, spawn_azure};
use serde_json::{Value, json};

async fn azure() -> RunningFake<Azure> {
    spawn_azure(
        "127.0.0.1:0".parse().expect("addr"),
        AzureOptions::default(),
    )
    .await
    .expect("azure fake")
}

/// The hostile connector with an OAuth2 grant on the fake's ARM API; the vault holds
/// `client_secret` as `azure_secret`.
fn env(f: &RunningFake<Azure>, client_secret: &str, extra: &str) -> Env {
    let o = AzureOptions::default();
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "hostile"
component = "{hostile}"

[[grant]]
connector = "hostile"
url = "{base}/subscriptions/"
allow_private = true
allow_insecure = true
auth = {{ type = "oauth2", token_url = "{token_url}", client_id = "{client}", client_secret = "secret:azure_secret", scope = "https://management.azure.com/.default" }}
{extra}
"#,
        hostile = component("hostile").display(),
        base = f.base_url,
        token_url = f.token_url(),
        client = o.client_id,
    ));
    env.set_secret("azure_secret", client_secret);
    env
}

fn vms_url(f: &RunningFake<Azure>) -> String {
    format!(
        "{}/subscriptions/{}/providers/Microsoft.Compute/virtualMachines?api-version=2023-09-01",
        f.base_url,
        AzureOptions::default().subscription
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_requests_without_a_token_make_one_token_request() {
    let f = azure().await;
    let env = env(&f, &AzureOptions::default().client_secret, "");
    let d = env.serve();
    let url = vms_url(&f);
    let calls = (0..20).map(|_| d.invoke("hostile", "fetch", json!({ "url": url })));
    let results = futures::future::join_all(calls).await;
    for (status, v) in &results {
        assert_eq!(*status, 200, "{v}");
        assert_eq!(v["result"]["status"], 200, "{v}");
    }
    assert_eq!(
        f.token_requests(),
        1,
        "one token request for 20 concurrent calls"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_millisecond_guest_timeout_does_not_cut_the_token_fetch() {
    let f = azure().await;
    let env = env(&f, &AzureOptions::default().client_secret, "");
    let d = env.serve();
    let url = vms_url(&f);
    for _ in 0..10 {
        let input = json!({ "url": url, "first_byte_timeout_ms": 1 });
        let _ = d.invoke("hostile", "fetch", input).await;
    }
    assert_eq!(
        f.token_requests(),
        1,
        "the token was fetched once, under the host's timeout, and reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_endpoint_is_not_asked_again_on_every_request() {
    let f = azure().await;
    let env = env(&f, "wrong-client-secret", "");
    let d = env.serve();
    let url = vms_url(&f);
    let mut errors = Vec::new();
    for i in 0..20 {
        let mut input = json!({ "url": url });
        if i % 2 == 0 {
            input["first_byte_timeout_ms"] = Value::from(1);
        }
        let (_, v) = d.invoke("hostile", "fetch", input).await;
        errors.push(v.to_string());
    }
    // Sequential calls within the first backoff window (2 s): one request, then the remembered
    // failure; a slow machine may see the window pass once.
    let n = f.token_requests();
    assert!((1..=2).contains(&n), "{n} token requests for 20 calls");
    assert!(
        errors.iter().all(|e| e.contains("credentials unavailable")),
        "{errors:?}"
    );
    let audit = env.airlock(&["audit", "tail", "-n", "1000", "--json"], None);
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(text.contains("token requests paused"), "{text}");
    assert!(!text.contains("wrong-client-secret"), "{text}");
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_fetches_spend_the_grants_rate_budget() {
    let f = azure().await;
    // One request per minute, no burst beyond it: the token fetch takes the only token.
    let env = env(
        &f,
        &AzureOptions::default().client_secret,
        "rate = { per_second = 0.016, burst = 1 }",
    );
    let d = env.serve();
    let (status, v) = d
        .invoke("hostile", "fetch", json!({ "url": vms_url(&f) }))
        .await;
    assert_eq!(f.token_requests(), 1, "{status} {v}");
    assert_eq!(
        v["result"]["status"], 429,
        "the token fetch spent the budget; the request itself is answered rate-limited: {v}"
    );
}
