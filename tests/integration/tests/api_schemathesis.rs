//! Schemathesis (PyPI, installed by `make test` into target/schemathesis/venv) against the
//! served `/v1/openapi.json` of a running daemon with a demo-like config and an admin token:
//! generated valid and invalid requests to every operation; no 5xx, and every error answer in
//! the API's one shape `{"error": {"code", "message"}}` (tests/integration/schemathesis).

use airlock_tests::{Env, doc, root, store_docs, zendesk_config};
use fake_saas::{ZendeskOptions, spawn_zendesk};

/// Examples per operation: enough to reach every parameter and body shape, bounded for CI.
const MAX_EXAMPLES: &str = "25";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_every_error_has_the_one_shape() {
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
    let env = Env::new(&zendesk_config(&fake.base_url, ""));
    env.set_secret("zendesk_token", &ZendeskOptions::default().api_token);
    store_docs(
        &env,
        "zendesk",
        &[doc("t1", "Printer on fire", "the printer is on fire", &[])],
    );
    let d = env.serve();
    let out = tokio::process::Command::new(&st)
        .current_dir(root().join("tests/integration/schemathesis"))
        .env("SCHEMATHESIS_HOOKS", "airlock_checks")
        .args([
            "run",
            &format!("{}/v1/openapi.json", d.base),
            "--header",
            &format!("Authorization: Bearer {}", d.token),
            "--checks",
            "not_a_server_error,airlock_error_shape",
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
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
