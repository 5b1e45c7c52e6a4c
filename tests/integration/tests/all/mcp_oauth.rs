//! MCP authorization with the company's identity provider (the resource-server half): `/mcp`
//! and the REST routes take ES256 access tokens minted by a local OpenID Connect provider fake,
//! checked against the keys it publishes; a refused request points the client at the protected
//! resource metadata (RFC 9728); the person, their groups and the token's scopes decide what
//! they see and may do; tokens for another audience, expired, tampered, forged, symmetric or
//! scope-less ones are refused with RFC 6750's errors. API tokens keep working beside them. The
//! official Python MCP SDK's OAuth client runs the whole flow (discovery, registration, the
//! code flow with PKCE, a token bound to the resource) against the provider fake.

use airlock_tests::*;
use base64::Engine as _;
use fake_saas::{Oidc, RunningFake, spawn_oidc};
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::{RoleClient, service::RunningService};
use serde_json::{Value, json};

const RESOURCE: &str = "https://airlock.test/mcp";
const ADA: &str = "ada.adams@contoso.com";

fn config(issuer: &str, resource: &str) -> String {
    format!(
        "{}\n[oauth]\nissuer = \"{issuer}\"\nresource = \"{resource}\"\ntenant = \"acme\"\nallow_private = true\nallow_insecure = true\n",
        two_tenant_config()
    )
}

/// Acme's pages about zeppelins (one for group `eng`, one for Bob) and Beta's.
fn stock(env: &Env) {
    store_docs(
        env,
        "a1",
        &[
            doc("plan", "Zeppelin plan", "zeppelin zeppelin", &["eng"]),
            doc("secret", "Zeppelin note", "only bob reads this", &["bob"]),
        ],
    );
    store_docs(env, "b1", &[doc("beta", "Beta zeppelin", "zeppelin", &[])]);
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Ada's claims: in group `eng`, with the scopes given.
fn claims(issuer: &str, scp: &str) -> Value {
    json!({"iss": issuer, "aud": RESOURCE, "sub": "00u-ada", "preferred_username": ADA,
        "groups": ["eng"], "scp": scp, "iat": now(), "nbf": now() - 5, "exp": now() + 600})
}

async fn setup() -> (RunningFake<Oidc>, Env, Daemon) {
    let idp = spawn_oidc("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("oidc fake");
    let env = Env::new(&config(&idp.issuer(), RESOURCE));
    stock(&env);
    let d = env.serve();
    (idp, env, d)
}

async fn mcp(d: &Daemon, token: &str) -> RunningService<RoleClient, ClientConfig> {
    mcp_http_client(d, token).await.expect("MCP session")
}

async fn call(c: &RunningService<RoleClient, ClientConfig>, name: &str, args: Value) -> Value {
    let mut params = CallToolRequestParams::new(name.to_string());
    if let Value::Object(o) = args {
        params = params.with_arguments(o);
    }
    let r = c.call_tool(params).await.expect("tools/call");
    if let Some(v) = r.structured_content {
        return v;
    }
    let text: String = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_person_searches_through_mcp_and_is_audited_by_name() {
    let (idp, env, d) = setup().await;

    // Discovery: the metadata names the identity provider; a request without a token is told
    // where to find it.
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let (status, meta) = http("GET", &format!("{}{path}", d.base), None).await;
        assert_eq!(status, 200, "{path}: {meta}");
        assert_eq!(meta["resource"], RESOURCE);
        assert_eq!(meta["authorization_servers"], json!([idp.issuer()]));
        assert_eq!(
            meta["scopes_supported"],
            json!(["search", "read", "actions", "writes"])
        );
    }
    let (status, headers, _) = http_raw("POST", &format!("{}/mcp", d.base), None).await;
    assert_eq!(status, 401);
    assert_eq!(
        headers["www-authenticate"],
        "Bearer resource_metadata=\"https://airlock.test/.well-known/oauth-protected-resource/mcp\""
    );

    // Ada's token: MCP lists the tenant's tools and searches as Ada (her group's page, not
    // Bob's, nothing of the other tenant).
    let token = idp.mint(&claims(&idp.issuer(), "search read actions"));
    let c = mcp(&d, &token).await;
    let tools = c.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "a1__echo"));
    assert!(!tools.iter().any(|t| t.name == "b1__echo"), "other tenant");
    let found = call(&c, "search", json!({"query": "zeppelin"})).await;
    let ids: Vec<&str> = found["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("hits: {found}"))
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, ["plan"], "{found}");
    let echoed = call(&c, "a1__echo", json!({"x": 1})).await;
    assert!(!echoed.is_null());
    c.cancel().await.expect("close");

    // An API token still works, side by side.
    let alice = env.create_token("alice", "acme", &["eng"], false);
    let c = mcp(&d, &alice).await;
    assert!(!c.list_all_tools().await.expect("tools").is_empty());
    c.cancel().await.expect("close");

    let log = d.stop();
    let rows = audit_rows(&env);
    assert!(
        rows.iter().any(|r| r.event.connector == "a1"
            && r.event.principal.as_deref() == Some("oauth:ada.adams@contoso.com")),
        "the action's rows name the person"
    );
    assert!(!log.contains(&token), "the access token in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_are_not_for_us_or_not_valid_or_lack_a_scope_are_refused_per_rfc_6750() {
    let (idp, env, d) = setup().await;
    let iss = idp.issuer();
    let changes = format!("{}/v1/changes", d.base);
    let ask = |token: String| {
        let url = changes.clone();
        async move {
            let (status, headers, body) = http_raw("GET", &url, Some(&token)).await;
            let challenge = headers.get("www-authenticate").cloned().unwrap_or_default();
            (status, challenge, body)
        }
    };

    let (status, _, body) = ask(idp.mint(&claims(&iss, "search"))).await;
    assert_eq!(status, 200, "{body}");

    let mut other = claims(&iss, "search");
    other["aud"] = json!("https://another.example/api");
    let mut expired = claims(&iss, "search");
    expired["exp"] = json!(now() - 3600);
    let mut foreign = claims(&iss, "search");
    foreign["iss"] = json!("https://idp.elsewhere.example");
    // The payload swapped for one with more rights, the signature kept.
    let good = idp.mint(&claims(&iss, "search"));
    let parts: Vec<&str> = good.split('.').collect();
    let mut richer = claims(&iss, "search read actions writes");
    richer["groups"] = json!(["eng", "bob"]);
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let tampered = format!("{}.{}.{}", parts[0], b64(&richer), parts[2]);
    let symmetric = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "HS256", "typ": "JWT", "kid": "key-1"})),
        b64(&claims(&iss, "search")),
        "c2lnbmF0dXJl"
    );
    for (what, token, wants) in [
        ("another audience", idp.mint(&other), "another resource"),
        ("expired", idp.mint(&expired), "expired"),
        ("another issuer", idp.mint(&foreign), "another issuer"),
        ("tampered", tampered, "signature"),
        (
            "forged",
            idp.mint_with_unpublished_key(&claims(&iss, "search")),
            "signature",
        ),
        ("symmetric", symmetric, "shared-secret"),
    ] {
        let (status, challenge, body) = ask(token).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(
            challenge.contains("error=\"invalid_token\"") && challenge.contains(wants),
            "{what}: {challenge}"
        );
        assert!(challenge.contains("resource_metadata="), "{what}");
    }

    // Scopes: none of ours, or not the one the route needs.
    let (status, challenge, _) = ask(idp.mint(&claims(&iss, "openid profile"))).await;
    assert_eq!(status, 403);
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    let (status, challenge, _) = ask(idp.mint(&claims(&iss, "read"))).await;
    assert_eq!(status, 403);
    assert!(challenge.contains("scope=\"search\""), "{challenge}");
    // Admin work is for API tokens only; a write needs `writes`.
    let all = idp.mint(&claims(&iss, "search read actions writes"));
    let (status, _, body) = http_raw("GET", &format!("{}/v1/audit", d.base), Some(&all)).await;
    assert_eq!(status, 403, "{body}");
    let (status, v) = http_auth(
        "POST",
        &format!("{}/v1/connectors/a1/invoke", d.base),
        Some(&idp.mint(&claims(&iss, "actions"))),
        Some(json!({"op": "write", "input": {"url": "http://127.0.0.1:9/"}}).to_string()),
    )
    .await;
    assert_eq!(status, 403, "{v}");

    // A rotated key: the new one is fetched once, then kept.
    idp.rotate_key();
    let (status, _, body) = ask(idp.mint(&claims(&iss, "search"))).await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..5 {
        assert_eq!(ask(idp.mint(&claims(&iss, "search"))).await.0, 200);
    }
    assert_eq!(
        idp.requests_to("/discovery/keys"),
        2,
        "keys fetched at the first token and after the rotation only"
    );
    drop(env);
}

/// The official Python MCP SDK (PyPI `mcp`, in target/polyglot/venv) as a hosted assistant: it
/// connects without a token, follows the 401 to the metadata, registers at the provider, signs
/// Ada in with the code flow and PKCE, and searches and runs an action as her.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_mcp_sdk_signs_in_with_oauth_and_works_as_the_person() {
    let python = root().join("target/polyglot/venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run `make test` (it installs the Python MCP SDK)",
        python.display()
    );
    let idp = spawn_oidc("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("oidc fake");
    // The resource is the URL the client connects to (the SDK checks they match).
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let env = Env::new(&config(&idp.issuer(), &resource));
    env.listen_at(port);
    stock(&env);
    let d = env.serve();
    let out = tokio::process::Command::new(&python)
        .arg(root().join("tests/integration/python/mcp_oauth_client.py"))
        .args([&resource, "zeppelin", "a1__echo", r#"{"x": 1}"#])
        .output()
        .await
        .expect("run the Python client");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python client failed: {stderr}");
    let got: Value = serde_json::from_slice(&out.stdout).expect("the client's JSON");
    assert_eq!(got["search_is_error"], false, "{got}");
    let search = got["search"].to_string();
    assert!(search.contains("plan"), "{got}");
    assert!(
        !search.contains("secret") && !search.contains("beta"),
        "{got}"
    );
    assert_eq!(got["action_is_error"], false, "{got}");
    assert_eq!(got["scope"], "search read actions writes", "{got}");
    assert!(
        got["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "a1__echo")),
        "{got}"
    );
    let log = d.stop();
    let ada = audit_rows(&env)
        .into_iter()
        .filter(|r| r.event.principal.as_deref() == Some("oauth:ada.adams@contoso.com"))
        .count();
    assert!(ada > 0, "the action's rows name the signed-in person");
    assert!(!log.contains("eyJ"), "an access token in the daemon's log");
}
