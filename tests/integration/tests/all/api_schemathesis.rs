//! Schemathesis (PyPI, installed by `make test` into target/schemathesis/venv) against the
//! served `/v1/openapi.json` of a running daemon with a demo-like config and an admin token:
//! generated valid and invalid requests to every operation, and stateful runs along the
//! document's links, under every check Schemathesis has (`--checks all`: no 5xx, only documented
//! status codes and content types, answers that match their schemas, valid requests accepted and
//! invalid ones refused, ...) plus the API's own: every error answer in the one shape
//! `{"error": {"code", "message"}}` (tests/integration/schemathesis).

use airlock_tests::{Env, atera_config, doc, root, semantic_config, store_docs, zendesk_config};
use fake_saas::{
    AteraOptions, OpenAiMode, OpenAiOptions, ZendeskOptions, spawn_atera, spawn_openai,
    spawn_zendesk,
};

/// Examples per operation: enough to reach every parameter and body shape, bounded for CI.
const MAX_EXAMPLES: &str = "25";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_its_openapi_contract_under_every_schemathesis_check() {
    let st = root().join("target/schemathesis/venv/bin/schemathesis");
    assert!(
        st.exists(),
        "{} missing: run `make test` (it installs Schemathesis)",
        st.display()
    );
    let fake = spawn_zendesk(
        "127.0.0.1:0".parse().expect("addr"),
        ZendeskOptions {
            tickets: 5,
            ..ZendeskOptions::default()
        },
    )
    .await
    .expect("fake");
    // Atera has a write action: the approvals routes get a real approval to follow links to.
    let atera = spawn_atera(
        "127.0.0.1:0".parse().expect("addr"),
        AteraOptions::default(),
    )
    .await
    .expect("fake");
    // Semantic search configured, so every search `mode` the document lists is served.
    let openai = OpenAiOptions {
        mode: OpenAiMode::OpenAi,
        api_key: "sk-schemathesis".into(),
        ..OpenAiOptions::default()
    };
    let embedder = spawn_openai("127.0.0.1:0".parse().expect("addr"), openai)
        .await
        .expect("fake");
    let env = Env::new(&format!(
        "{}{}{}",
        zendesk_config(&fake.base_url, ""),
        atera_config(&atera.base_url),
        semantic_config(&embedder.base_url)
    ));
    env.set_secret("zendesk_token", &ZendeskOptions::default().api_token);
    env.set_secret("openai_key", "sk-schemathesis");
    env.set_secret("atera_key", &AteraOptions::default().api_key);
    store_docs(
        &env,
        "zendesk",
        &[doc("t1", "Printer on fire", "the printer is on fire", &[])],
    );
    let d = env.serve();
    let ticket = atera.truth().tickets[0].id;
    let ask = serde_json::json!({"op": "add-comment", "input": {"ticket_id": ticket, "comment": "Reboot"}});
    let (status, body) = d
        .post("/v1/connectors/atera/invoke", &ask.to_string())
        .await;
    assert_eq!(status, 202, "a pending approval to test with: {body}");
    let out = tokio::process::Command::new(&st)
        .current_dir(root().join("tests/integration/schemathesis"))
        .env("SCHEMATHESIS_HOOKS", "airlock_checks")
        .args([
            "run",
            &format!("{}/v1/openapi.json", d.base),
            "--header",
            &format!("Authorization: Bearer {}", d.token),
            "--checks",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            "11",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--no-color",
        ])
        .output()
        .await
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}\ndaemon log (tail):\n{}",
        tail(&d.log(), 60)
    );
    assert!(
        !stdout.contains("No operations"),
        "nothing was tested:\n{stdout}"
    );
    // The stateful phase went from lists to items along the document's links.
    let covered = stdout
        .split("API Links:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(covered >= 3, "only {covered} links followed:\n{stdout}");
    eprintln!("{stdout}");
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
