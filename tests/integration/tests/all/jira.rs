//! The Jira Service Management connector driven by the host against the Jira fake: every stream
//! fully synced equals the fake's ground truth and an incremental run fetches only changes; search
//! and `get` return the right records; `add-comment` through a write grant reaches the fake (and
//! without one it never does); the retired `/rest/api/3/search` (410 Gone) is never called.

use std::collections::BTreeMap;

use airlock::runtime::connector::{InvokeError, Op};
use airlock::runtime::context::{self, CallContext};
use airlock::store::documents;
use airlock::sync::RunEnd;
use airlock_tests::*;
use fake_saas::jira::{Jira, PLANTED_PHRASE};
use fake_saas::{JiraMutation, JiraOptions, RunningFake, spawn_jira};
use serde_json::json;

async fn fake() -> RunningFake<Jira> {
    spawn_jira("127.0.0.1:0".parse().expect("addr"), JiraOptions::default())
        .await
        .expect("fake")
}

/// Config for the connector as `id`; `writes` decides whether the POST grant allows writes.
fn config(id: &str, base_url: &str, writes: bool) -> String {
    format!(
        r#"
[[connector]]
id = "{id}"
component = "{}"
limits = {{ timeout = "60s" }}
[connector.settings]
base_url = "{base_url}"
page_size = "40"

[[grant]]
connector = "{id}"
url = "{base_url}/rest/"
methods = ["GET"]
allow_private = true
allow_insecure = true
auth = {{ type = "basic", username = "demo@example.com", password = "secret:jira_token" }}

[[grant]]
connector = "{id}"
url = "{base_url}/rest/servicedeskapi/request/"
methods = ["POST"]
exact_paths = ["/rest/servicedeskapi/request/*/comment"]
allow_private = true
writes = {writes}
allow_insecure = true
auth = {{ type = "basic", username = "demo@example.com", password = "secret:jira_token" }}
"#,
        component("jira_servicedesk").display()
    )
}

fn env_for(body: &str) -> Env {
    let env = Env::new(body);
    env.set_secret("jira_token", &JiraOptions::default().api_token);
    env
}

/// Jira's `...+0000` as the connector reports it (RFC 3339 `...+00:00`).
fn rfc3339(jira: &str) -> String {
    let (head, tail) = jira.split_at(jira.len() - 2);
    format!("{head}:{tail}")
}

fn assert_store_equals_truth(env: &Env, f: &RunningFake<Jira>) {
    let truth = f.truth();
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let docs = documents::all(&conn, "jira", Some("request")).expect("requests");
    let stored: BTreeMap<_, _> = docs.iter().map(|d| (d.id.clone(), d)).collect();
    assert_eq!(stored.len(), truth.requests.len(), "request count");
    for r in &truth.requests {
        let d = stored
            .get(&r.key)
            .unwrap_or_else(|| panic!("{} missing", r.key));
        assert_eq!(d.title, r.summary, "{}", r.key);
        assert_eq!(norm(&d.body), norm(&r.description), "{}", r.key);
        assert_eq!(d.updated_at, rfc3339(&r.updated), "{}", r.key);
    }
    let comments = documents::all(&conn, "jira", Some("comment")).expect("comments");
    let stored: BTreeMap<_, _> = comments.iter().map(|d| (d.id.clone(), d)).collect();
    let expected: usize = truth.requests.iter().map(|r| r.comments.len()).sum();
    assert_eq!(stored.len(), expected, "comment count");
    for r in &truth.requests {
        for c in &r.comments {
            let d = stored[&format!("{}/{}", r.key, c.id)];
            assert_eq!(d.body, c.body);
            assert_eq!(d.metadata["public"], c.public);
        }
    }
    let articles = documents::all(&conn, "jira", Some("article")).expect("articles");
    assert_eq!(articles.len(), truth.articles.len(), "article count");
    for a in &truth.articles {
        let d = articles
            .iter()
            .find(|d| d.id == a.page_id.to_string())
            .expect("article stored");
        assert_eq!(
            (d.title.as_str(), norm(&d.body)),
            (a.title.as_str(), norm(&a.excerpt))
        );
    }
}

/// Contract 0.2.0: the `comments` stream (one comments listing per request) reports which request
/// it is on through `host.progress`; the host keeps the latest report for the sync status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_sync_reports_progress_per_request() {
    let f = fake().await;
    let env = env_for(&config("jira", &f.base_url, false));
    let a = start_in_process(&env).await;
    let c = a.connector("jira").expect("jira loaded").clone();
    assert_eq!(c.contract, "0.2.0", "SDK connectors target contract 0.2.0");
    let r = a
        .sync_stream("jira", "comments", false, |_| {})
        .await
        .expect("comments");
    assert_eq!(r.end, RunEnd::Done);
    let p = c
        .ctx
        .progress
        .latest("comments")
        .expect("progress reported");
    let requests = f.truth().requests.len() as u64;
    assert_eq!(p.done, requests, "{p:?}");
    let key = p
        .message
        .strip_prefix("requests covered; comments of ")
        .unwrap_or_default();
    assert!(
        f.truth().requests.iter().any(|r| r.key == key),
        "the message names a request: {p:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_match_ground_truth_and_incremental_runs_fetch_changes() {
    let f = fake().await;
    let env = env_for(&config("jira", &f.base_url, false));
    let a = start_in_process(&env).await;
    for s in ["requests", "comments", "articles"] {
        let r = a.sync_stream("jira", s, false, |_| {}).await.expect(s);
        assert_eq!(r.end, RunEnd::Done, "{s}");
    }
    assert_eq!(
        f.requests_to("/rest/api/3/search/jql"),
        5,
        "200 requests in pages of 40"
    );
    assert_store_equals_truth(&env, &f);

    let m = f.mutate(JiraMutation {
        update: 5,
        create: 3,
        comment: 2,
    });
    f.reset_requests();
    let r = a
        .sync_stream("jira", "requests", false, |_| {})
        .await
        .expect("incremental");
    assert_eq!(r.end, RunEnd::Done);
    let changed: std::collections::BTreeSet<_> = m
        .updated
        .iter()
        .chain(&m.created)
        .chain(&m.commented)
        .collect();
    let changed = changed.len();
    // The boundary minute of the previous run is fetched again.
    assert!(
        r.upserts >= changed as u64 && r.upserts <= changed as u64 + 40,
        "{} upserts for {changed} changes",
        r.upserts
    );
    assert_eq!(f.requests().total, 1, "one JQL page");
    for s in ["comments", "articles"] {
        a.sync_stream("jira", s, false, |_| {}).await.expect(s);
    }
    assert_store_equals_truth(&env, &f);
    assert_eq!(f.requests_to("/rest/api/3/search"), 0, "the 410 endpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_get_and_add_comment() {
    let f = fake().await;
    let env = env_for(&format!(
        "{}\n{}",
        config("jira", &f.base_url, true),
        config("jira-ro", &f.base_url, false)
    ));
    let a = start_in_process(&env).await;
    let truth = f.truth();

    let search = Op::Search {
        query: PLANTED_PHRASE.into(),
        limit: 20,
        cursor: None,
    };
    let r = a.invoke("jira", search).await.expect("search");
    let mut got: Vec<(String, String)> = r["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| {
            (
                h["kind"].as_str().unwrap_or("").into(),
                h["id"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = truth
        .requests
        .iter()
        .filter(|r| r.description.contains(PLANTED_PHRASE))
        .map(|r| ("request".into(), r.key.clone()))
        .chain(
            truth
                .articles
                .iter()
                .filter(|a| a.excerpt.contains(PLANTED_PHRASE))
                .map(|a| ("article".into(), a.page_id.to_string())),
        )
        .collect();
    want.sort();
    assert_eq!(want.len(), 5);
    assert_eq!(got, want);

    let t = &truth.requests[4];
    let d = a
        .invoke("jira", Op::Get { id: t.key.clone() })
        .await
        .expect("get");
    assert_eq!(
        (d["kind"].as_str(), d["title"].as_str()),
        (Some("request"), Some(t.summary.as_str()))
    );
    assert_eq!(norm(d["body"].as_str().unwrap_or("")), norm(&t.description));
    let missing = a
        .invoke(
            "jira",
            Op::Get {
                id: "SD-99999".into(),
            },
        )
        .await;
    assert!(
        matches!(&missing, Err(InvokeError::Connector(c)) if c.code == "not-found"),
        "{missing:?}"
    );
    let bad = a
        .invoke(
            "jira",
            Op::Get {
                id: "SD-1/../x".into(),
            },
        )
        .await;
    assert!(
        matches!(&bad, Err(InvokeError::Connector(c)) if c.code == "invalid-input"),
        "{bad:?}"
    );

    let input = json!({"issue": t.key, "body": "Restarted the VPN gateway.", "public": false});
    let action = |input: serde_json::Value| Op::Action {
        name: "add-comment".into(),
        input,
    };
    let refused = a.invoke("jira-ro", action(input.clone())).await;
    assert!(
        matches!(&refused, Err(InvokeError::Connector(c)) if c.code == "forbidden"),
        "{refused:?}"
    );
    assert_eq!(
        f.truth().requests[4].comments,
        t.comments,
        "no write without a write grant"
    );
    // In-process calls need a context to write (none fails closed).
    let r = context::with(CallContext::trusted(), a.invoke("jira", action(input)))
        .await
        .expect("add-comment");
    assert_eq!(r["issue"], t.key.as_str());
    let after = f.truth().requests[4].comments.clone();
    assert_eq!(after.len(), t.comments.len() + 1);
    let c = after.last().expect("comment");
    assert_eq!(
        (c.body.as_str(), c.public),
        ("Restarted the VPN gateway.", false)
    );
    assert_eq!(r["id"], c.id.to_string());
    assert_eq!(f.requests_to("/rest/api/3/search"), 0, "the 410 endpoint");
}
