//! JSON logs of a real daemon: an operator follows one invocation id through every line (the
//! sync page, the invocation and each outbound request nest), the access log has one line per API
//! request naming its route template, and a grant's secret reaches no line.

use std::collections::HashMap;

use airlock_tests::*;
use base64::Engine as _;
use fake_saas::{ConfluenceOptions, spawn_confluence};
use serde_json::{Value, json};

const CANARY: &str = "canary-trace-5c1d93ee";

/// The spans a JSON line ran in, outermost first.
fn spans(line: &Value) -> Vec<&Value> {
    line["spans"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

fn span<'a>(line: &'a Value, name: &str) -> Option<(usize, &'a Value)> {
    spans(line)
        .into_iter()
        .enumerate()
        .find(|(_, s)| s["name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_follow_each_invocation_and_api_request_and_keep_secrets_out() {
    let opts = ConfluenceOptions {
        api_token: CANARY.into(),
        ..ConfluenceOptions::default()
    };
    let fake = spawn_confluence("127.0.0.1:0".parse().expect("addr"), opts)
        .await
        .expect("fake");
    let env = Env::new(&confluence_config(&fake.base_url));
    env.set_secret("confluence_token", CANARY);
    let d = env.serve_with(&[("AIRLOCK_LOG_JSON", "true")]);
    let mut requests = 0;

    // An invocation and a sync through the API.
    let (status, v) = d
        .invoke("confluence", "search", json!({"query": "quarterly review"}))
        .await;
    requests += 1;
    assert_eq!(status, 200, "{v}");
    let (status, v) = d.post("/v1/sync/confluence", r#"{"stream":"pages"}"#).await;
    requests += 1;
    assert_eq!(status, 202, "{v}");
    requests += d.wait_until_synced("pages").await;
    // A route with ids and a query, once without a token.
    let doc = "/v1/documents/confluence/page/id-4711?probe=q-0815";
    let (status, _) = http("GET", &format!("{}{doc}", d.base), None).await;
    requests += 1;
    assert_eq!(status, 401);
    let (status, headers, _) = http_raw("GET", &format!("{}{doc}", d.base), Some(&d.token)).await;
    requests += 1;
    assert_eq!(status, 404);
    let request_id = headers.get("x-request-id").expect("x-request-id").clone();
    // A path no route matches is logged without it.
    let (status, _) = http("GET", &format!("{}/no/such/path-0042", d.base), None).await;
    requests += 1;
    assert_eq!(status, 404);

    let log = d.stop();
    let rows = audit_rows(&env);
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();

    // (a) Every line inside an invocation, a sync page or an outbound request names one
    // invocation id in each of those spans, and the outbound span nests in the invocation span.
    let mut answered: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        let ids: Vec<&Value> = spans(line)
            .into_iter()
            .filter(|s| {
                ["invocation", "sync_page", "outbound"].contains(&s["name"].as_str().unwrap_or(""))
            })
            .map(|s| &s["invocation"])
            .collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "ids differ: {line}");
        if let Some((o, out)) = span(line, "outbound") {
            // (b) The request nests in its invocation.
            let (i, _) = span(line, "invocation").unwrap_or_else(|| panic!("orphan: {line}"));
            assert!(i < o, "{line}");
            assert_eq!(
                (&out["method"], &out["host"], &out["grant"]),
                (&json!("GET"), &json!("127.0.0.1"), &json!(0)),
                "{line}"
            );
            if line["fields"]["message"] == "outbound request answered" {
                let id = out["invocation"].as_str().expect("id").to_string();
                *answered.entry(id).or_default() += 1;
            }
        }
    }
    // One "answered" line per allowed request of the audit log, under the request's invocation.
    let mut allowed: HashMap<String, usize> = HashMap::new();
    for r in rows
        .iter()
        .filter(|r| r.event.event == "http" && r.event.decision == "allow")
    {
        *allowed.entry(r.event.invocation.clone()).or_default() += 1;
    }
    assert!(allowed.len() >= 2, "a search and sync pages: {allowed:?}");
    assert_eq!(answered, allowed);

    // The search's lines carry the API request it came from; each sync page's, its number.
    let search = lines
        .iter()
        .find(|l| span(l, "invocation").is_some_and(|(_, s)| s["op"] == "search"))
        .expect("a line of the search");
    let (_, req) = span(search, "request").expect("inside its API request");
    assert_eq!(req["route"], "/v1/connectors/{id}/invoke", "{search}");
    let (_, inv) = span(search, "invocation").expect("invocation");
    assert_eq!(inv["principal"], "token:test-admin", "{search}");
    let sync_invocations: Vec<&str> = rows
        .iter()
        .filter(|r| r.event.event == "invoke" && r.event.reason == "sync:pages")
        .map(|r| r.event.invocation.as_str())
        .collect();
    assert!(
        sync_invocations.len() > 1,
        "several pages: {sync_invocations:?}"
    );
    for (n, id) in sync_invocations.iter().enumerate() {
        let page = lines.iter().find_map(|l| {
            span(l, "sync_page")
                .filter(|(_, s)| s["invocation"] == *id && span(l, "invocation").is_some())
        });
        let (_, page) = page.unwrap_or_else(|| panic!("no line of page {id}"));
        assert_eq!(
            (&page["stream"], &page["page"]),
            (&json!("pages"), &json!(n + 1))
        );
    }

    // (c) One access line per API request: route template, status, principal, request id.
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "airlock::access")
        .collect();
    assert_eq!(access.len(), requests, "{access:#?}");
    let seen: Vec<(&str, &str, u64, &str)> = access
        .iter()
        .map(|l| {
            let f = &l["fields"];
            assert!(
                f["ms"].as_f64().is_some()
                    && f["request_id"].as_str().is_some_and(|s| s.len() == 26),
                "{l}"
            );
            (
                f["method"].as_str().unwrap_or(""),
                f["route"].as_str().unwrap_or(""),
                f["status"].as_u64().unwrap_or(0),
                f["principal"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let admin = "token:test-admin";
    assert_eq!(seen[0], ("POST", "/v1/connectors/{id}/invoke", 200, admin));
    assert_eq!(seen[1], ("POST", "/v1/sync/{id}", 202, admin));
    assert!(
        seen[2..requests - 3]
            .iter()
            .all(|s| *s == ("GET", "/v1/sync", 200, admin)),
        "{seen:?}"
    );
    let doc_route = "/v1/documents/{connector}/{kind}/{id}";
    assert_eq!(seen[requests - 3], ("GET", doc_route, 401, "-"));
    assert_eq!(seen[requests - 2], ("GET", doc_route, 404, admin));
    assert_eq!(seen[requests - 1], ("GET", "(no route)", 404, "-"));
    // The id the answer carried names its line.
    assert_eq!(
        access[requests - 2]["fields"]["request_id"],
        request_id.as_str()
    );
    for l in &access {
        let text = l.to_string();
        assert!(
            !["id-4711", "q-0815", "path-0042"]
                .iter()
                .any(|raw| text.contains(raw)),
            "raw path logged: {text}"
        );
    }

    // (d) The grant's secret, plain or in its Basic header, is in no line.
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("demo@example.com:{CANARY}"));
    assert!(
        !log.contains(CANARY) && !log.contains(&basic),
        "secret in the log"
    );
    assert!(!lines.is_empty() && lines.len() >= requests);
}
