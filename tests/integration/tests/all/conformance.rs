//! The conformance kit (`airlock conformance`), run as the real binary: every connector in the
//! repository passes it against its fake, and the `broken` test component fails it with a
//! message naming the rule it breaks (while the same component without a fault passes, so each
//! failure is the fault's doing).

use std::process::Output;

use airlock_tests::*;
use fake_saas::openai::{OpenAiMode, OpenAiOptions};
use fake_saas::{
    AteraOptions, AzureOptions, ConfluenceOptions, JiraOptions, ZendeskOptions, spawn_atera,
    spawn_azure, spawn_confluence, spawn_jira, spawn_openai, spawn_zendesk,
};

fn addr() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// `airlock conformance WASM --connector ID` with the env's config, off the async runtime (the
/// fakes need its threads while the child runs).
async fn conformance(env: Env, wasm: &str, id: &str) -> (Env, Output) {
    let wasm = component(wasm).display().to_string();
    let id = id.to_string();
    tokio::task::spawn_blocking(move || {
        let out = env.airlock(&["conformance", &wasm, "--connector", &id], None);
        (env, out)
    })
    .await
    .expect("conformance task")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Exit 0, no FAIL line, and the rules that matter for this connector did run.
fn assert_passes(out: &Output, expect_rules: &[&str]) {
    let t = text(out);
    println!("{t}");
    assert!(out.status.success(), "conformance failed:\n{t}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("FAIL "), "{t}");
    for rule in [
        "PASS load:",
        "PASS info.well-formed:",
        "PASS info.action-schemas:",
        "PASS health:",
        "PASS search.well-formed:",
        "PASS errors.unknown-stream:",
        "PASS errors.unknown-action:",
        "PASS errors.get-unknown-id:",
        "PASS grants.no-denied-requests:",
    ]
    .iter()
    .chain(expect_rules)
    {
        assert!(stdout.contains(rule), "missing `{rule}`:\n{t}");
    }
}

/// Exit 1 and a FAIL line for `rule` whose reason contains `reason`.
fn assert_fails(out: &Output, rule: &str, reason: &str) {
    let t = text(out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("FAIL {rule}:")))
        .unwrap_or_else(|| panic!("no `FAIL {rule}` line:\n{t}"));
    assert!(line.contains(reason), "`{line}` lacks `{reason}`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluence_passes_conformance_against_its_fake() {
    let f = spawn_confluence(addr(), ConfluenceOptions::default())
        .await
        .expect("fake");
    let env = Env::new(&confluence_config(&f.base_url));
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let (_env, out) = conformance(env, "confluence", "confluence").await;
    assert_passes(
        &out,
        &["PASS sync.terminates[pages]:", "PASS sync.resume[pages]:"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zendesk_passes_conformance_against_its_fake() {
    let opts = ZendeskOptions {
        tickets: 300,
        recent_exclusion_secs: 0,
        ..ZendeskOptions::default()
    };
    let f = spawn_zendesk(addr(), opts).await.expect("fake");
    let env = Env::new(&zendesk_config(&f.base_url, "page_size = \"50\""));
    env.set_secret("zendesk_token", &ZendeskOptions::default().api_token);
    let (_env, out) = conformance(env, "zendesk", "zendesk").await;
    assert_passes(
        &out,
        &[
            "PASS sync.resume[tickets]:",
            "PASS sync.resume[comments]:",
            "PASS sync.resume[articles]:",
            "PASS errors.invalid-input[ticket-comments]:",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jira_servicedesk_passes_conformance_against_its_fake() {
    let f = spawn_jira(addr(), JiraOptions::default())
        .await
        .expect("fake");
    let base = &f.base_url;
    let env = Env::new(&jira_config(base));
    env.set_secret("jira_token", &JiraOptions::default().api_token);
    let (_env, out) = conformance(env, "jira_servicedesk", "jira").await;
    assert_passes(&out, &["PASS sync.resume["]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atera_passes_conformance_against_its_fake() {
    let f = spawn_atera(addr(), AteraOptions::default())
        .await
        .expect("fake");
    let base = &f.base_url;
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "atera"
component = "{}"
limits = {{ timeout = "60s" }}
[connector.settings]
base_url = "{base}"

[[grant]]
connector = "atera"
url = "{base}/api/v3/"
methods = ["GET"]
allow_private = true
allow_insecure = true
auth = {{ type = "header", name = "X-API-KEY", value = "secret:atera_key" }}
"#,
        component("atera").display()
    ));
    env.set_secret("atera_key", &AteraOptions::default().api_key);
    let (_env, out) = conformance(env, "atera", "atera").await;
    assert_passes(&out, &["PASS sync.resume[tickets]:"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_passes_conformance_against_its_fake() {
    let f = spawn_azure(addr(), AzureOptions::default())
        .await
        .expect("fake");
    let o = AzureOptions::default();
    let env = Env::new(&azure_config(
        &f.base_url,
        &f.token_url(),
        &o.subscription,
        &o.client_id,
    ));
    env.set_secret("azure_secret", &o.client_secret);
    let (_env, out) = conformance(env, "azure", "azure").await;
    assert_passes(&out, &["PASS sync.resume[virtual-machines]:"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgraph_passes_conformance_against_its_fake() {
    let o = fake_saas::MsGraphOptions::default();
    let f = fake_saas::spawn_msgraph(addr(), o.clone())
        .await
        .expect("fake");
    let env = Env::new(&msgraph_config(&f, &o.client_id));
    env.set_secret("graph_secret", &o.client_secret);
    let (_env, out) = conformance(env, "msgraph", "msgraph").await;
    assert_passes(&out, &["PASS sync.resume[users]:"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_passes_conformance_against_its_fake() {
    const KEY: &str = "sk-test-conformance";
    let f = spawn_openai(
        addr(),
        OpenAiOptions {
            mode: OpenAiMode::OpenAi,
            api_key: KEY.into(),
            ..OpenAiOptions::default()
        },
    )
    .await
    .expect("fake");
    let base = &f.base_url;
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "openai"
component = "{}"
[connector.settings]
flavor = "openai"
base_url = "{base}/v1"
model = "gpt-4o-mini"

[[grant]]
connector = "openai"
url = "{base}/v1/"
methods = ["GET", "POST"]
exact_paths = ["/v1/chat/completions"]
allow_private = true
allow_insecure = true
auth = {{ type = "bearer", token = "secret:openai_key" }}
"#,
        component("openai").display()
    ));
    env.set_secret("openai_key", KEY);
    let (_env, out) = conformance(env, "openai", "openai").await;
    assert_passes(&out, &["PASS errors.invalid-input[chat]:"]);
}

/// The `broken` component against an echo upstream, with `fault` selecting its bug.
async fn broken(fault: &str) -> Output {
    broken_with(fault, &[]).await
}

async fn broken_with(fault: &str, extra_args: &[&str]) -> Output {
    let echo = spawn_echo_server().await;
    let base = format!("http://{echo}");
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "broken"
component = "{}"
[connector.settings]
base_url = "{base}"
fault = "{fault}"

[[grant]]
connector = "broken"
url = "{base}/api/"
methods = ["GET"]
allow_private = true
"#,
        component("broken").display()
    ));
    let wasm = component("broken").display().to_string();
    let mut args: Vec<String> = ["conformance", &wasm, "--connector", "broken"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra_args.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        env.airlock(&args, None)
    })
    .await
    .expect("conformance task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_component_without_a_fault_passes() {
    let out = broken("none").await;
    assert_passes(
        &out,
        &[
            "PASS sync.terminates[items]: done after 3 page(s)",
            "PASS sync.resume[items]:",
            "PASS errors.invalid-input[echo]:",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_loop_fails_sync_terminates() {
    let out = broken("cursor-loop").await;
    assert_fails(
        &out,
        "sync.terminates[items]",
        "returns cursor \"page:2\" already given to page 2",
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SKIP sync.resume[items]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_report_names_each_rule_with_its_status() {
    let out = broken_with("cursor-loop", &["--json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(v["connector"], "broken");
    let status = |rule: &str| {
        v["outcomes"]
            .as_array()
            .and_then(|o| o.iter().find(|x| x["rule"] == rule))
            .map(|x| x["status"].clone())
    };
    assert_eq!(status("sync.terminates[items]"), Some("FAIL".into()));
    assert_eq!(status("sync.resume[items]"), Some("SKIP".into()));
    assert_eq!(status("health"), Some("PASS".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_action_schema_fails_info_action_schemas() {
    let out = broken("bad-schema").await;
    assert_fails(
        &out,
        "info.action-schemas",
        "action `echo`: input-schema is not a valid JSON Schema",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outside_the_grants_fails_grants_no_denied_requests() {
    let out = broken("outside-grant").await;
    assert_fails(&out, "grants.no-denied-requests", "/admin/export denied");
    // The connector hides the refusal, so only the audit log shows it: the rest passes.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("FAIL ").count(), 1, "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeating_a_committed_record_fails_sync_resume() {
    let out = broken("resume-duplicates").await;
    assert_fails(
        &out,
        "sync.resume[items]",
        "returned item/2 updated 2024-05-01T10:00:02Z already committed by page 1",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_error_variant_fails_errors_unknown_action() {
    let out = broken("wrong-error").await;
    assert_fails(
        &out,
        "errors.unknown-action",
        "answered internal: crashed on `airlock-conformance-unknown`; expected not-found or invalid-input",
    );
}

#[test]
fn conformance_with_an_unknown_connector_id_is_a_clear_error() {
    let env = Env::new("");
    let wasm = component("broken").display().to_string();
    let out = env.airlock(&["conformance", &wasm, "--connector", "nope"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no connector `nope` is configured"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_says_what_a_default_health_and_a_missing_search_leave_unchecked() {
    let out = broken("sdk-health").await;
    let stdout = text(&out);
    assert!(
        stdout.contains("PASS health: ok: `ok`, the SDK's default answer")
            && stdout.contains("not checked: reachability and credentials"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PASS search.well-formed: not checked: the connector has no live search"),
        "{stdout}"
    );
    // A connected health check says nothing of the kind.
    let out = broken("none").await;
    assert!(
        text(&out).contains("PASS health: ok: reachable"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_that_refuses_a_plain_word_fails_search_well_formed() {
    let out = broken("search-refuses").await;
    assert_fails(
        &out,
        "search.well-formed",
        "answered invalid-input: query syntax not accepted",
    );
}
