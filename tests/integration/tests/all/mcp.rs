//! The MCP server end to end with rmcp's own client: over streamable HTTP against a real
//! `airlock serve` (`/mcp`) and over stdio by spawning `airlock mcp`. Two tenants' connectors
//! (the `hostile` test component), tokens made by the CLI, documents stored as a sync would.

use airlock_tests::*;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

/// An env with acme's and beta's documents about zeppelins, and a token of each tenant.
fn setup() -> (Env, String, String) {
    let env = Env::new(&two_tenant_config());
    let alice = env.create_token("alice", "acme", &["eng"], false);
    let bea = env.create_token("bea", "beta", &[], false);
    store_docs(
        &env,
        "a1",
        &[
            doc("plan", "Zeppelin plan", "zeppelin zeppelin", &["eng"]),
            doc(
                "secret",
                "Zeppelin note",
                "only bob reads this zeppelin",
                &["bob"],
            ),
        ],
    );
    store_docs(&env, "b1", &[doc("beta", "Beta zeppelin", "zeppelin", &[])]);
    (env, alice, bea)
}

type Client = RunningService<RoleClient, ClientConfig>;

async fn http_client(d: &Daemon, token: &str) -> Result<Client, String> {
    mcp_http_client(d, token).await
}

async fn tool_names(c: &Client) -> Vec<String> {
    let mut names: Vec<String> = c
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

async fn call(c: &Client, name: &str, args: Value) -> CallToolResult {
    let mut params = CallToolRequestParams::new(name.to_string());
    if let Value::Object(o) = args {
        params = params.with_arguments(o);
    }
    c.call_tool(params).await.expect("tools/call")
}

/// The result's JSON (its structured content, else its text).
fn json_of(r: &CallToolResult) -> Value {
    if let Some(v) = &r.structured_content {
        return v.clone();
    }
    serde_json::from_str(&text_of(r)).unwrap_or(Value::Null)
}

fn text_of(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn hit_ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v["hits"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|h| {
                    format!(
                        "{}/{}",
                        h["connector"].as_str().unwrap_or("?"),
                        h["id"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// What every principal of tenant acme should get, whatever the transport.
async fn acme_sees_its_tools_search_and_actions(c: &Client) {
    let names = tool_names(c).await;
    for want in [
        "search",
        "get_document",
        "changes",
        "list_connectors",
        "a1__echo",
        "a1__sleep",
    ] {
        assert!(names.contains(&want.to_string()), "{want} in {names:?}");
    }
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("b1__") || n.starts_with("rb__")),
        "beta's tools leaked: {names:?}"
    );
    let tools = c.list_all_tools().await.expect("tools/list");
    let sleep = tools
        .iter()
        .find(|t| t.name == "a1__sleep")
        .expect("a1__sleep");
    assert_eq!(sleep.input_schema["required"], json!(["secs"]));
    assert!(
        sleep
            .description
            .as_deref()
            .is_some_and(|d| d.starts_with("[connector-provided] ")
                && d.contains("Block inside a host call")),
        "{sleep:?}"
    );

    // Search: only acme's documents, only those the ACL lets alice (group eng) read.
    let r = call(c, "search", json!({"query": "zeppelin"})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert_eq!(hit_ids(&json_of(&r)), vec!["a1/plan"], "{}", text_of(&r));

    // The change feed: acme's changes only, and only those the ACL lets alice see.
    let r = call(c, "changes", json!({"after": 0})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let feed = json_of(&r);
    let changed: Vec<&str> = feed["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["id"].as_str().unwrap_or("?"))
        .collect();
    assert!(changed.contains(&"plan"), "{feed}");
    assert!(
        !changed.contains(&"beta") && !changed.contains(&"secret"),
        "{feed}"
    );
    let r = call(c, "changes", json!({"since": 0})).await;
    assert_eq!(r.is_error, Some(true), "an unknown argument is refused");

    // A document of another tenant, or one the ACL hides, is simply not found.
    let r = call(
        c,
        "get_document",
        json!({"connector": "a1", "kind": "page", "id": "plan"}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert_eq!(json_of(&r)["title"], "Zeppelin plan");
    for (connector, id) in [("b1", "beta"), ("a1", "secret")] {
        let r = call(
            c,
            "get_document",
            json!({"connector": connector, "kind": "page", "id": id}),
        )
        .await;
        assert_eq!(r.is_error, Some(true), "{connector}/{id}: {}", text_of(&r));
        assert!(text_of(&r).starts_with("not-found:"), "{}", text_of(&r));
    }

    // An action runs through the REST invoke path.
    let r = call(c, "a1__echo", json!({"x": 1})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert_eq!(json_of(&r)["result"], json!({"x": 1}));

    // Bad input is a tool error with the reason, not a protocol failure.
    let r = call(c, "a1__sleep", json!({})).await;
    assert_eq!(r.is_error, Some(true), "{}", text_of(&r));
    assert!(text_of(&r).contains("HTTP 400"), "{}", text_of(&r));
    let r = call(c, "search", json!({"query": "x", "bogus": 1})).await;
    assert_eq!(r.is_error, Some(true), "{}", text_of(&r));
    assert!(text_of(&r).contains("bogus"), "{}", text_of(&r));

    // Another tenant's action and route are not tools of this principal.
    for name in ["b1__echo", "rb__echo"] {
        let r = call(c, name, json!({})).await;
        assert_eq!(r.is_error, Some(true), "{name}: {}", text_of(&r));
        assert!(text_of(&r).starts_with("no-such-tool:"), "{}", text_of(&r));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_over_http_serves_each_tenant_only_its_tools_and_documents() {
    let (env, alice, bea) = setup();
    let d = env.serve();

    let c = http_client(&d, &alice).await.expect("alice connects");
    acme_sees_its_tools_search_and_actions(&c).await;
    let _ = c.cancel().await;

    // Beta: its connector's actions and its route, none of acme's tools or documents.
    let c = http_client(&d, &bea).await.expect("bea connects");
    let names = tool_names(&c).await;
    assert!(names.contains(&"b1__echo".to_string()), "{names:?}");
    assert!(names.contains(&"rb__echo".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("a1__")), "{names:?}");
    let r = call(&c, "search", json!({"query": "zeppelin"})).await;
    assert_eq!(hit_ids(&json_of(&r)), vec!["b1/beta"], "{}", text_of(&r));
    let r = call(&c, "rb__echo", json!({"y": 2})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    assert_eq!(json_of(&r)["result"]["answered_by"], "b1");
    assert_eq!(json_of(&r)["result"]["result"], json!({"y": 2}));
    let r = call(&c, "a1__echo", json!({})).await;
    assert_eq!(r.is_error, Some(true), "{}", text_of(&r));
    let r = call(&c, "list_connectors", json!({})).await;
    assert_eq!(json_of(&r)["tenant"], "beta", "{}", text_of(&r));
    let _ = c.cancel().await;

    // Tokens never reach the log.
    let log = d.stop();
    assert!(!log.contains(&alice) && !log.contains(&bea));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_over_http_refuses_a_missing_or_bad_token() {
    let (env, alice, _) = setup();
    let d = env.serve();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}})
    .to_string();
    let url = format!("{}/mcp", d.base);
    for token in [None, Some("alk_not-a-real-token"), Some("garbage")] {
        let (status, v) = http_auth("POST", &url, token, Some(init.clone())).await;
        assert_eq!(status, 401, "{token:?}: {v}");
        assert_eq!(v["error"]["code"], "unauthenticated", "{v}");
    }
    assert!(http_client(&d, "alk_not-a-real-token").await.is_err());

    // A token revoked while a client is connected stops working at its next call.
    let c = http_client(&d, &alice).await.expect("alice connects");
    let out = env.airlock(&["tokens", "revoke", "alice"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = c
        .call_tool(CallToolRequestParams::new("list_connectors"))
        .await;
    assert!(
        r.is_err() || r.as_ref().is_ok_and(|r| r.is_error == Some(true)),
        "{r:?}"
    );
}

fn stdio_transport(env: &Env, token: &str) -> TokioChildProcess {
    let (t, _stderr) = TokioChildProcess::builder(
        tokio::process::Command::new(airlock_bin()).configure(|cmd| {
            cmd.arg("mcp")
                .env("AIRLOCK_CONFIG", &env.config)
                .env("AIRLOCK_TOKEN", token)
                .env_remove("RUST_LOG");
        }),
    )
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("spawn airlock mcp");
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_over_stdio_acts_as_the_tokens_principal() {
    let (env, alice, _) = setup();
    let c = ClientConfig::default()
        .serve(stdio_transport(&env, &alice))
        .await
        .expect("stdio handshake");
    acme_sees_its_tools_search_and_actions(&c).await;
    let _ = c.cancel().await;
}

#[test]
fn mcp_over_stdio_refuses_a_bad_or_missing_token() {
    let (env, _, _) = setup();
    let file = env.dir.path().join("mcp-token");
    std::fs::write(&file, "alk_bogus\n").expect("token file");
    let file = file.to_string_lossy().to_string();
    let out = env.airlock(&["mcp", "--token-file", &file], Some(""));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not valid"), "{err}");
    assert!(out.stdout.is_empty(), "nothing on the protocol stream");
    let out = env.airlock(&["mcp"], Some(""));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AIRLOCK_TOKEN") && err.contains("--token-file"),
        "{err}"
    );
}

#[test]
fn mcp_refuses_a_token_on_the_command_line() {
    let (env, alice, _) = setup();
    // Even a valid token: argv is readable by every local user (ps, /proc/PID/cmdline).
    let out = env.airlock(&["mcp", "--token", &alice], Some(""));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--token is no longer accepted"), "{err}");
    assert!(!err.contains(&alice), "the token is not echoed: {err}");
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tool_calls_are_audited_under_the_tokens_principal() {
    let (env, alice, bea) = setup();
    let d = env.serve();
    let c = http_client(&d, &alice).await.expect("alice connects");
    let r = call(&c, "a1__echo", json!({"x": 1})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let _ = c.cancel().await;
    let c = http_client(&d, &bea).await.expect("bea connects");
    let r = call(&c, "rb__echo", json!({"y": 2})).await;
    assert_ne!(r.is_error, Some(true), "{}", text_of(&r));
    let _ = c.cancel().await;
    d.stop();

    let rows = audit_rows(&env);
    let by = |connector: &str, event: &str, reason: &str| {
        rows.iter()
            .find(|r| {
                r.event.connector == connector
                    && r.event.event == event
                    && r.event.reason.contains(reason)
            })
            .and_then(|r| r.event.principal.clone())
    };
    assert_eq!(
        by("a1", "invoke", "action:echo").as_deref(),
        Some("token:alice")
    );
    assert_eq!(
        by("b1", "invoke", "action:echo").as_deref(),
        Some("token:bea")
    );
    assert_eq!(
        by("rb", "route", "answered by").as_deref(),
        Some("token:bea"),
        "{rows:#?}"
    );
}

/// The official Python MCP SDK (PyPI `mcp`, installed by `make test` into target/polyglot/venv)
/// as an independent client: it lists the tools and calls search and an action over /mcp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_mcp_sdk_lists_tools_and_calls_search_and_an_action() {
    let python = root().join("target/polyglot/venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run `make test` (it installs the Python MCP SDK)",
        python.display()
    );
    let (env, alice, _) = setup();
    let d = env.serve();
    let out = tokio::process::Command::new(&python)
        .arg(root().join("tests/integration/python/mcp_client.py"))
        .args([
            &format!("{}/mcp", d.base),
            &alice,
            "zeppelin",
            "a1__echo",
            r#"{"x": 1}"#,
        ])
        .output()
        .await
        .expect("run the Python client");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python client failed: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("client JSON");
    let tools: Vec<&str> = v["tools"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for t in ["search", "get_document", "list_connectors", "a1__echo"] {
        assert!(tools.contains(&t), "{t} missing from {tools:?}");
    }
    assert!(!tools.iter().any(|t| t.starts_with("b1__")), "{tools:?}");
    assert_eq!(v["search_is_error"], false, "{v}");
    let search: Value = serde_json::from_str(v["search"][0].as_str().unwrap_or("null"))
        .expect("search result JSON");
    assert_eq!(hit_ids(&search), vec!["a1/plan"], "{v}");
    assert_eq!(v["action_is_error"], false, "{v}");
    let action: Value = serde_json::from_str(v["action"][0].as_str().unwrap_or("null"))
        .expect("action result JSON");
    assert_eq!(action["result"], json!({"x": 1}), "{v}");
    // The token never shows up in what the daemon logged.
    assert!(!d.log().contains(&alice));
}
