//! The REST API's bearer tokens, tenants and document ACLs, end to end: a real `airlock serve`
//! with two tenants' connectors (the `hostile` test component), tokens made by the CLI, real
//! HTTP requests.

use std::time::Duration;

use airlock_tests::*;
use serde_json::{Value, json};

const DOCS_SEARCH: &str = "/v1/search";

struct Tokens {
    /// acme admin, no groups.
    ann: String,
    /// acme, group `eng`.
    alice: String,
    /// acme, no groups.
    bob: String,
    /// beta admin.
    bea: String,
}

async fn call(
    d: &Daemon,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    http_auth(
        method,
        &format!("{}{path}", d.base),
        Some(token),
        body.map(|b| b.to_string()),
    )
    .await
}

/// Syncs a connector through the API with an admin token of its tenant and waits for the run.
async fn sync_and_wait(d: &Daemon, admin: &str, connector: &str) {
    let (status, v) = call(d, admin, "POST", &format!("/v1/sync/{connector}"), None).await;
    assert_eq!(status, 202, "{v}");
    for _ in 0..200 {
        let (_, v) = call(d, admin, "GET", "/v1/sync", None).await;
        let done = v["streams"].as_array().is_some_and(|s| {
            s.iter().any(|s| {
                s["connector"] == connector
                    && s["last_success_at"].is_string()
                    && s["running"] == false
            })
        });
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sync of {connector} did not finish");
}

/// A daemon with a1 (acme) and b1 (beta) synced, plus ACL'd acme documents and an open beta
/// one, all mentioning `zeppelin`.
async fn setup() -> (Env, Daemon, Tokens) {
    let env = Env::new(&two_tenant_config());
    let t = Tokens {
        ann: env.create_token("ann", "acme", &[], true),
        alice: env.create_token("alice", "acme", &["eng"], false),
        bob: env.create_token("bob", "acme", &[], false),
        bea: env.create_token("bea", "beta", &[], true),
    };
    let d = env.serve();
    sync_and_wait(&d, &t.ann, "a1").await;
    sync_and_wait(&d, &t.bea, "b1").await;
    store_docs(
        &env,
        "a1",
        &[
            // Ranks first (title match), readable only by the `eng` group.
            doc(
                "plan",
                "Zeppelin merger plan",
                "zeppelin zeppelin",
                &["eng"],
            ),
            doc("note", "Note", "a note about the zeppelin", &["bob"]),
            doc("open", "Open", "everyone may read about the zeppelin", &[]),
        ],
    );
    store_docs(&env, "b1", &[doc("beta", "Beta zeppelin", "zeppelin", &[])]);
    (env, d, t)
}

fn ids(v: &Value) -> Vec<String> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_of_one_tenant_gets_nothing_of_another_through_any_route() {
    let (_env, d, t) = setup().await;

    // Connectors list: only the tenant's connector, no route of another tenant.
    let (status, v) = call(&d, &t.alice, "GET", "/v1/connectors", None).await;
    assert_eq!(status, 200, "{v}");
    let listed: Vec<&str> = v["connectors"]
        .as_array()
        .expect("connectors")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(listed, vec!["a1"]);
    assert_eq!(v["routes"], json!([]));
    let (_, v) = call(&d, &t.bea, "GET", "/v1/connectors", None).await;
    assert_eq!(v["routes"][0]["name"], "rb", "{v}");

    // Local search, also when naming the other tenant's connector.
    let (status, v) = call(
        &d,
        &t.alice,
        "POST",
        DOCS_SEARCH,
        Some(json!({"query": "hostile zeppelin"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    // Every word must match: no acme document has both, and beta's are never searched.
    assert_eq!(ids(&v), Vec::<String>::new(), "{v}");
    assert_eq!(v["partial"], false, "{v}");
    let (_, v) = call(
        &d,
        &t.alice,
        "POST",
        DOCS_SEARCH,
        Some(json!({"query": "hostile"})),
    )
    .await;
    assert_eq!(ids(&v), vec!["a1/1", "a1/2"], "{v}");
    let (_, v) = call(
        &d,
        &t.alice,
        "POST",
        DOCS_SEARCH,
        Some(json!({"query": "zeppelin", "connector": "b1"})),
    )
    .await;
    assert_eq!(ids(&v), Vec::<String>::new(), "{v}");
    let (_, v) = call(
        &d,
        &t.bea,
        "POST",
        DOCS_SEARCH,
        Some(json!({"query": "zeppelin"})),
    )
    .await;
    assert_eq!(ids(&v), vec!["b1/beta"], "{v}");

    // Live search fans out only to the tenant's connectors.
    let (status, v) = call(
        &d,
        &t.alice,
        "POST",
        DOCS_SEARCH,
        Some(
            json!({"query": "nothing stored matches this", "live": true, "live_timeout_ms": 20000}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(ids(&v), vec!["a1/1"], "{v}");
    assert!(
        v["hits"]
            .as_array()
            .is_some_and(|h| h.iter().all(|h| h["source"] == "live"))
    );
    assert!(!v.to_string().contains("b1"), "{v}");

    // Get document.
    let (status, v) = call(&d, &t.alice, "GET", "/v1/documents/a1/item/1", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["title"], "Hostile item 1");
    let (status, v) = call(&d, &t.alice, "GET", "/v1/documents/b1/item/1", None).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["code"], "not-found");

    // Invoke: another tenant's connector, or a route over it, is as absent as a missing one.
    let (status, v) = call(
        &d,
        &t.alice,
        "POST",
        "/v1/connectors/a1/invoke",
        Some(json!({"op": "echo", "input": {"x": 1}})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    for id in ["b1", "rb", "missing"] {
        let (status, v) = call(
            &d,
            &t.ann,
            "POST",
            &format!("/v1/connectors/{id}/invoke"),
            Some(json!({"op": "echo", "input": {}})),
        )
        .await;
        assert_eq!(status, 404, "{id}: {v}");
        assert_eq!(v["error"]["code"], "no-such-connector", "{v}");
    }
    let (status, v) = call(
        &d,
        &t.bea,
        "POST",
        "/v1/connectors/rb/invoke",
        Some(json!({"op": "echo", "input": {"y": 2}})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["answered_by"], "b1");

    // Sync status and triggers.
    let (_, v) = call(&d, &t.alice, "GET", "/v1/sync", None).await;
    let conns: Vec<&str> = v["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["connector"].as_str())
        .collect();
    assert_eq!(conns, vec!["a1"], "{v}");
    let (status, v) = call(&d, &t.bea, "POST", "/v1/sync/a1", None).await;
    assert_eq!(status, 404, "{v}");

    // Audit: only the tenant's rows, and another tenant's connector cannot be named.
    let (status, v) = call(&d, &t.ann, "GET", "/v1/audit?limit=1000", None).await;
    assert_eq!(status, 200, "{v}");
    let rows = v["rows"].as_array().expect("rows");
    assert!(!rows.is_empty(), "{v}");
    assert!(rows.iter().all(|r| r["connector"] == "a1"), "{v}");
    let (_, v) = call(&d, &t.bea, "GET", "/v1/audit?limit=1000", None).await;
    let rows = v["rows"].as_array().expect("rows");
    assert!(rows.iter().any(|r| r["connector"] == "rb"), "{v}");
    assert!(
        rows.iter()
            .all(|r| r["connector"] == "b1" || r["connector"] == "rb"),
        "{v}"
    );
    let (status, v) = call(&d, &t.ann, "GET", "/v1/audit?connector=b1", None).await;
    assert_eq!(status, 404, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_whose_acl_excludes_a_principal_never_reaches_it() {
    let (_env, d, t) = setup().await;
    let search = |token: &str, limit: u32| {
        let token = token.to_string();
        let d = &d;
        async move {
            let (status, v) = call(
                d,
                &token,
                "POST",
                DOCS_SEARCH,
                Some(json!({"query": "zeppelin", "limit": limit})),
            )
            .await;
            assert_eq!(status, 200, "{v}");
            ids(&v)
        }
    };
    // alice is in `eng`; bob is named; ann (an admin) is neither: ACLs bind admins too.
    assert_eq!(search(&t.alice, 10).await, vec!["a1/open", "a1/plan"]);
    assert_eq!(search(&t.bob, 10).await, vec!["a1/note", "a1/open"]);
    assert_eq!(search(&t.ann, 10).await, vec!["a1/open"]);
    // The filter runs before the limit: the best-ranked document is not readable by bob, and
    // a limit of 2 still brings his 2 permitted hits.
    assert_eq!(search(&t.bob, 2).await, vec!["a1/note", "a1/open"]);
    assert_eq!(search(&t.ann, 1).await, vec!["a1/open"]);

    for (token, path, want) in [
        (&t.alice, "/v1/documents/a1/page/plan", 200),
        (&t.bob, "/v1/documents/a1/page/plan", 404),
        (&t.ann, "/v1/documents/a1/page/plan", 404),
        (&t.bob, "/v1/documents/a1/page/note", 200),
        (&t.alice, "/v1/documents/a1/page/note", 404),
        (&t.bob, "/v1/documents/a1/page/open", 200),
    ] {
        let (status, v) = call(&d, token, "GET", path, None).await;
        assert_eq!(status, want, "{path}: {v}");
        if status == 404 {
            assert!(!v.to_string().contains("zeppelin"), "{v}");
        } else {
            assert!(
                v["body"].as_str().is_some_and(|b| b.contains("zeppelin")),
                "{v}"
            );
            assert!(v.get("acl").is_none(), "{v}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_admins_cannot_trigger_syncs_read_audit_or_page_raw_sync() {
    let (_env, d, t) = setup().await;
    for (method, path, body) in [
        ("POST", "/v1/sync/a1", None),
        ("GET", "/v1/audit", None),
        (
            "POST",
            "/v1/connectors/a1/invoke",
            Some(json!({"op": "sync", "input": {"stream": "items"}})),
        ),
    ] {
        let (status, v) = call(&d, &t.alice, method, path, body.clone()).await;
        assert_eq!(status, 403, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], "forbidden", "{v}");
        let (status, v) = call(&d, &t.ann, method, path, body).await;
        assert!(
            status == 200 || status == 202,
            "{method} {path}: {status} {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_invalid_and_revoked_tokens_get_401_and_tokens_are_not_stored_in_clear() {
    let env = Env::new(&two_tenant_config());
    let carol = env.create_token("carol", "acme", &[], false);
    let d = env.serve();

    // Every /v1 route the OpenAPI description lists refuses a request without a valid token,
    // and answers an admin token with something other than "no such route".
    let (status, spec) = call(&d, &d.token, "GET", "/v1/openapi.json", None).await;
    assert_eq!(status, 200, "{spec}");
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.len() >= 11, "{spec}");
    for (path, ops) in paths {
        let url_path = path
            .replace("{id}", "x")
            .replace("{connector}", "x")
            .replace("{kind}", "x");
        for (method, op) in ops.as_object().expect("ops") {
            let method = method.to_uppercase();
            let url = format!("{}{url_path}", d.base);
            if op["security"] == json!([]) {
                let (status, v) = http(&method, &url, None).await;
                // The hook and connect-callback routes are open but answer only connectors
                // that have a hook or an `oauth2-user` grant.
                let want = if path.starts_with("/v1/hooks/") || path.starts_with("/v1/connections/")
                {
                    404
                } else {
                    200
                };
                assert_eq!(status, want, "{method} {path} is open: {v}");
                continue;
            }
            for token in [None, Some("alk_not-a-real-token"), Some("garbage")] {
                let (status, v) = http_auth(&method, &url, token, Some("{}".into())).await;
                assert_eq!(status, 401, "{method} {path} with {token:?}: {v}");
                assert_eq!(v["error"]["code"], "unauthenticated", "{v}");
            }
            let (status, v) = http_auth(&method, &url, Some(&d.token), Some("{}".into())).await;
            assert!(
                status != 405 && v["error"]["code"] != "no-such-route",
                "{method} {path}: {status} {v}"
            );
        }
    }

    // Revocation takes effect on the running daemon.
    let (status, _) = call(&d, &carol, "GET", "/v1/connectors", None).await;
    assert_eq!(status, 200);
    let out = env.airlock(&["tokens", "revoke", "carol"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, v) = call(&d, &carol, "GET", "/v1/connectors", None).await;
    assert_eq!(status, 401, "{v}");

    // `tokens list` never shows a token.
    let out = env.airlock(&["tokens", "list"], None);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("carol") && listed.contains("revoked"),
        "{listed}"
    );
    assert!(
        !listed.contains(&carol) && !listed.contains(&d.token),
        "{listed}"
    );

    // Neither the data directory (database, WAL, keys) nor the daemon's log holds a token.
    let admin = d.token.clone();
    let log = d.stop();
    for token in [&carol, &admin] {
        assert!(!log.contains(token.as_str()), "token in the daemon log");
        for (path, bytes) in all_files(&env.data_dir()) {
            assert!(
                !contains(&bytes, token),
                "token in clear in {}",
                path.display()
            );
        }
    }
    let hash = airlock::store::tokens::hash_token(&carol);
    let db = std::fs::read(airlock::store::db_path(&env.data_dir())).unwrap_or_default();
    let wal = std::fs::read(env.data_dir().join("airlock.db-wal")).unwrap_or_default();
    assert!(
        contains(&db, &hash) || contains(&wal, &hash),
        "the hash is what is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_has_the_one_json_shape() {
    let env = Env::new(&two_tenant_config());
    let d = env.serve();
    let big = format!("{{\"query\": \"{}\"}}", "x".repeat(2 << 20));
    for (method, path, body, want, code) in [
        ("GET", "/v1/nope", None, 404, "no-such-route"),
        ("GET", "/nope", None, 404, "no-such-route"),
        ("GET", "/v1/search", None, 405, "method-not-allowed"),
        ("DELETE", "/v1/connectors", None, 405, "method-not-allowed"),
        (
            "POST",
            "/v1/search",
            Some("{not json".to_string()),
            400,
            "bad-request",
        ),
        (
            "POST",
            "/v1/search",
            Some("{\"query\": 3}".to_string()),
            400,
            "bad-request",
        ),
        (
            "POST",
            "/v1/search",
            Some("{\"query\": \"a\", \"bogus\": 1}".to_string()),
            400,
            "bad-request",
        ),
        ("POST", "/v1/search", Some(big), 413, "payload-too-large"),
        (
            "POST",
            "/v1/sync/a1",
            Some("[1]".to_string()),
            404,
            "no-such-connector",
        ),
        ("GET", "/v1/audit?since=yesterday", None, 400, "bad-request"),
        ("GET", "/v1/audit?limit=many", None, 400, "bad-request"),
    ] {
        let (status, v) =
            http_auth(method, &format!("{}{path}", d.base), Some(&d.token), body).await;
        assert_eq!(status, want, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], code, "{method} {path}: {v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_405_names_the_allowed_methods_in_an_allow_header() {
    let env = Env::new(&two_tenant_config());
    let d = env.serve();
    // Every route the OpenAPI description lists, plus the ones it does not (MCP, dashboard).
    let (_, spec) = d.get("/v1/openapi.json").await;
    let mut routes: Vec<(String, Vec<String>)> = spec["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, ops)| {
            let methods = ops
                .as_object()
                .expect("ops")
                .keys()
                .map(|m| m.to_uppercase())
                .collect();
            (path.replace('{', "x").replace('}', ""), methods)
        })
        .collect();
    routes.push(("/mcp".into(), vec!["POST".into()]));
    routes.push(("/".into(), vec!["GET".into()]));
    routes.push(("/dashboard/app.js".into(), vec!["GET".into()]));
    assert!(routes.len() > 10, "{routes:?}");
    for (path, methods) in routes {
        // (OPTIONS for the egress proxy, which forwards the other three.)
        let wrong = ["PUT", "DELETE", "PATCH", "OPTIONS"]
            .into_iter()
            .find(|m| !methods.iter().any(|x| x == m))
            .expect("a method the route does not serve");
        let (status, headers, body) =
            http_raw(wrong, &format!("{}{path}", d.base), Some(&d.token)).await;
        assert_eq!(status, 405, "{wrong} {path}: {body}");
        let allow = headers
            .get("allow")
            .unwrap_or_else(|| panic!("{wrong} {path}: no Allow"));
        for m in &methods {
            assert!(
                allow.split(',').any(|a| a.trim() == m),
                "{wrong} {path}: Allow `{allow}` lacks {m}"
            );
        }
        let v: Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(
            v["error"]["code"], "method-not-allowed",
            "{wrong} {path}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_search_and_invoked_get_and_search_are_filtered_by_each_documents_acl() {
    let (_env, d, t) = setup().await;
    // The hostile connector answers the query `acl-test` live with `open` (no ACL), `acl=bob`
    // (bob only) and `acl=ops+carol` (group ops or carol).
    let live = |token: String| {
        let d = &d;
        async move {
            let (status, v) = call(
                d,
                &token,
                "POST",
                DOCS_SEARCH,
                Some(json!({"query": "acl-test", "connector": "a1", "live": true})),
            )
            .await;
            assert_eq!(status, 200, "{v}");
            assert!(
                v["hits"].as_array().is_some_and(|h| h
                    .iter()
                    .all(|h| h["source"] == "live" && h.get("score").is_none())),
                "live hits carry no score: {v}"
            );
            ids(&v)
        }
    };
    assert_eq!(live(t.bob.clone()).await, vec!["a1/acl=bob", "a1/open"]);
    assert_eq!(live(t.alice.clone()).await, vec!["a1/open"]);
    assert_eq!(live(t.ann.clone()).await, vec!["a1/open"]);

    let invoke = |token: String, op: &'static str, input: Value| {
        let d = &d;
        async move {
            call(
                d,
                &token,
                "POST",
                "/v1/connectors/a1/invoke",
                Some(json!({"op": op, "input": input})),
            )
            .await
        }
    };
    let (status, v) = invoke(t.bob.clone(), "search", json!({"query": "acl-test"})).await;
    assert_eq!(status, 200, "{v}");
    let mut got: Vec<&str> = v["result"]["hits"]
        .as_array()
        .map(|h| h.iter().filter_map(|h| h["id"].as_str()).collect())
        .unwrap_or_default();
    got.sort();
    assert_eq!(got, vec!["acl=bob", "open"], "{v}");
    let (status, v) = invoke(t.alice.clone(), "search", json!({"query": "acl-test"})).await;
    assert_eq!(status, 200, "{v}");
    let got: Vec<&str> = v["result"]["hits"]
        .as_array()
        .map(|h| h.iter().filter_map(|h| h["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(got, vec!["open"], "{v}");

    for (token, id, want) in [
        (&t.bob, "acl=bob", 200),
        (&t.alice, "acl=bob", 404),
        (&t.ann, "acl=bob", 404),
        (&t.alice, "acl=ops+carol", 404),
        (&t.alice, "open", 200),
    ] {
        let (status, v) = invoke(token.clone(), "get", json!({"id": id})).await;
        assert_eq!(status, want, "{id}: {v}");
        if status == 404 {
            assert!(!v.to_string().contains("Body of hostile"), "{v}");
        } else {
            assert_eq!(v["result"]["id"], id, "{v}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_approval_cannot_be_listed_read_approved_or_denied() {
    // a1 (acme) may write through one grant, so its `write` action waits for an approval.
    let env = Env::new(&format!(
        "{}\n[[grant]]\nconnector = \"a1\"\nurl = \"http://127.0.0.1:9/w/\"\nmethods = [\"POST\"]\nwrites = true\nallow_private = true\n",
        two_tenant_config()
    ));
    let ann = env.create_token("ann", "acme", &[], true);
    let bea = env.create_token("bea", "beta", &[], true);
    let d = env.serve();
    let (status, v) = call(
        &d,
        &ann,
        "POST",
        "/v1/connectors/a1/invoke",
        Some(json!({"op": "write", "input": {"url": "http://127.0.0.1:9/w/x", "method": "POST"}})),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let id = v["approval"]["id"]
        .as_str()
        .expect("approval id")
        .to_string();

    let (status, v) = call(&d, &bea, "GET", "/v1/approvals", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["approvals"].as_array().map(Vec::len), Some(0), "{v}");
    for (method, path) in [
        ("GET", format!("/v1/approvals/{id}")),
        ("POST", format!("/v1/approvals/{id}/approve")),
        ("POST", format!("/v1/approvals/{id}/deny")),
    ] {
        let (status, v) = call(&d, &bea, method, &path, None).await;
        assert_eq!(status, 404, "{method} {path}: {v}");
        assert!(
            !v.to_string().contains("a1"),
            "nothing of acme's leaks: {v}"
        );
    }
    let (status, v) = call(&d, &ann, "GET", &format!("/v1/approvals/{id}"), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["approval"]["status"], "pending",
        "beta's attempts changed nothing: {v}"
    );
}
