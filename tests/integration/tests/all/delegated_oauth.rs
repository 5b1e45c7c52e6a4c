//! Delegated OAuth to upstreams (`auth = { type = "oauth2-user" }`): people connect their own
//! Microsoft Graph account through `/v1/connections/msgraph/authorize` → the fake's sign-in →
//! the callback, and a live search then runs with the caller's own token, so the upstream trims
//! it to what that person may open. Also: no connection → a clear error naming the connect URL;
//! a disconnect stops the next call at once and revokes upstream; an expired access token is
//! refreshed with rotation (the used refresh token is refused from then on); a sync never uses a
//! person's token; and no token value ever shows in logs, audit rows, answers or the data files.

use std::collections::BTreeSet;

use airlock_tests::*;
use fake_saas::{MsGraph, MsGraphOptions, RunningFake, spawn_msgraph};
use serde_json::{Value, json};

const QUERY: &str = "airlock rollout";

async fn graph() -> RunningFake<MsGraph> {
    spawn_msgraph(
        "127.0.0.1:0".parse().expect("addr"),
        MsGraphOptions::default(),
    )
    .await
    .expect("graph fake")
}

/// The Graph connector with an `oauth2-user` grant on the fake, listening on a known port (the
/// redirect URI names it); the connected account is read from the id_token (scope `openid`).
fn env(f: &RunningFake<MsGraph>) -> (Env, String) {
    env_reading_account(f, false)
}

/// As [`env`]; with `userinfo`, the account is read from the fake's `/v1.0/me` instead.
fn env_reading_account(f: &RunningFake<MsGraph>, userinfo: bool) -> (Env, String) {
    let o = MsGraphOptions::default();
    let app_only = msgraph_config(f, &o.client_id);
    let start = app_only.find("auth = {").expect("auth line");
    let end = start + app_only[start..].find('\n').expect("line end");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let user_auth = format!(
        r#"auth = {{ type = "oauth2-user", authorize_url = "{authorize}", token_url = "{token}", revoke_url = "{revoke}", client_id = "{client}", client_secret = "secret:graph_secret", scopes = [{scopes}], redirect_uri = "{base}/v1/connections/msgraph/callback"{account} }}"#,
        authorize = f.authorize_url(),
        token = f.token_url(),
        revoke = f.revoke_url(),
        client = o.client_id,
        scopes = if userinfo {
            r#""Files.Read.All", "offline_access""#
        } else {
            r#""openid", "Files.Read.All", "offline_access""#
        },
        account = if userinfo {
            format!(r#", userinfo_url = "{}/v1.0/me""#, f.base_url)
        } else {
            String::new()
        },
    );
    let config = format!("{}{}{}", &app_only[..start], user_auth, &app_only[end..]);
    let env = Env::new(&config);
    env.listen_at(port);
    env.set_secret("graph_secret", &o.client_secret);
    (env, base)
}

/// The UPNs of the fake's users.
fn upns(f: &RunningFake<MsGraph>) -> Vec<String> {
    f.truth()
        .users
        .iter()
        .filter_map(|u| u["userPrincipalName"].as_str().map(str::to_lowercase))
        .collect()
}

/// Everything the test saw in answers, for the canary check.
#[derive(Default)]
struct Seen(String);

impl Seen {
    fn add(&mut self, s: &str) {
        self.0.push_str(s);
        self.0.push('\n');
    }
}

/// Connects `upn` (whose Airlock token is `token`) the way a browser would: authorize → the
/// fake's sign-in (the account is the login hint) → the callback.
async fn connect(base: &str, token: &str, upn: &str, seen: &mut Seen) {
    let url = format!("{base}/v1/connections/msgraph/authorize?login_hint={upn}");
    let (status, h, body) = http_raw("GET", &url, Some(token)).await;
    seen.add(&body);
    assert_eq!(status, 302, "{body}");
    let to_upstream = h.get("location").expect("location").clone();
    assert!(
        to_upstream.contains("code_challenge_method=S256"),
        "{to_upstream}"
    );
    assert!(to_upstream.contains("state="), "{to_upstream}");
    let (status, h, body) = http_raw("GET", &to_upstream, None).await;
    assert_eq!(status, 302, "{body}");
    let back = h.get("location").expect("location").clone();
    assert!(
        back.starts_with(&format!("{base}/v1/connections/msgraph/callback?")),
        "{back}"
    );
    let (status, _, body) = http_raw("GET", &back, None).await;
    seen.add(&body);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["principal"], format!("token:{upn}"), "{v}");
    // The state is single-use: the same callback again is refused.
    let (status, _, body) = http_raw("GET", &back, None).await;
    seen.add(&body);
    assert_eq!(status, 400, "{body}");
}

/// A live search through the connector as `token`: (status, answer).
async fn search(base: &str, token: &str, seen: &mut Seen) -> (u16, Value) {
    let body = json!({ "op": "search", "input": { "query": QUERY } }).to_string();
    let url = format!("{base}/v1/connectors/msgraph/invoke");
    let (status, v) = http_auth("POST", &url, Some(token), Some(body)).await;
    seen.add(&v.to_string());
    (status, v)
}

/// The drive item ids among a search answer's hits.
fn hit_items(v: &Value, truth_ids: &[String]) -> BTreeSet<String> {
    let hits = v["result"]["hits"].as_array().cloned().unwrap_or_default();
    hits.iter()
        .filter_map(|h| h["id"].as_str())
        .map(|id| {
            truth_ids
                .iter()
                .find(|t| id.ends_with(t.as_str()))
                .cloned()
                .unwrap_or_else(|| format!("unexpected:{id}"))
        })
        .collect()
}

fn all_item_ids(f: &RunningFake<MsGraph>) -> Vec<String> {
    f.truth()
        .drive_items
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect()
}

/// No user token the fake issued appears in the daemon's log, its audit rows, its data files
/// (they are stored sealed) or anything it answered.
fn assert_no_token_leaked(f: &RunningFake<MsGraph>, env: &Env, log: &str, seen: &Seen) {
    let tokens = f.issued_user_tokens();
    assert!(!tokens.is_empty(), "no user token was issued");
    let rows = serde_json::to_string(&audit_rows(env)).expect("rows");
    let files = all_files(&env.data_dir());
    for t in &tokens {
        assert!(
            !log.contains(t.as_str()),
            "a user token is in the daemon log"
        );
        assert!(
            !rows.contains(t.as_str()),
            "a user token is in an audit row"
        );
        assert!(!seen.0.contains(t.as_str()), "a user token is in an answer");
        for (path, bytes) in &files {
            assert!(
                !contains(bytes, t),
                "a user token is readable in {}",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_connect_and_each_live_search_answers_only_what_they_may_open() {
    let f = graph().await;
    let (env, base) = env(&f);
    let users = upns(&f);
    // The items matching QUERY are authored by users 4, 13, 22, 31 and shared with the next.
    let (a, b, c) = (users[4].clone(), users[13].clone(), users[50].clone());
    let (ta, tb, tc) = (
        env.create_token(&a, "default", &[], false),
        env.create_token(&b, "default", &[], false),
        env.create_token(&c, "default", &[], false),
    );
    let d = env.serve();
    let mut seen = Seen::default();

    // Before connecting: a clear error naming where to connect, and no request upstream.
    let (status, v) = search(&base, &ta, &mut seen).await;
    assert_ne!(status, 200, "{v}");
    assert!(
        v.to_string().contains("/v1/connections/msgraph/authorize"),
        "the error names the connect URL: {v}"
    );
    let (_, list) = http_auth("GET", &format!("{base}/v1/connections"), Some(&ta), None).await;
    seen.add(&list.to_string());
    assert_eq!(list["connections"][0]["connected"], false, "{list}");

    connect(&base, &ta, &a, &mut seen).await;
    connect(&base, &tb, &b, &mut seen).await;

    let ids = all_item_ids(&f);
    let (want_a, want_b) = (
        f.delegated_search_truth(&a, QUERY),
        f.delegated_search_truth(&b, QUERY),
    );
    assert!(!want_a.is_empty() && !want_b.is_empty() && want_a != want_b);
    let (status, va) = search(&base, &ta, &mut seen).await;
    assert_eq!(status, 200, "{va}");
    let (status, vb) = search(&base, &tb, &mut seen).await;
    assert_eq!(status, 200, "{vb}");
    let got_a = hit_items(&va, &ids);
    let got_b = hit_items(&vb, &ids);
    println!("A ({a}) sees {got_a:?}; B ({b}) sees {got_b:?}");
    assert_eq!(got_a, want_a.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(got_b, want_b.iter().cloned().collect::<BTreeSet<_>>());
    // An app-only search would have answered every match: the trimming is the user's token.
    let everything = fake_saas::msgraph::search_matches(&f.truth().drive_items, QUERY).len();
    assert!(got_a.len() < everything, "{got_a:?} of {everything}");

    // Someone who never connected is told where to, never answered with another's token.
    let (status, vc) = search(&base, &tc, &mut seen).await;
    assert_ne!(status, 200, "{vc}");
    let text = vc.to_string();
    assert!(text.contains("/v1/connections/msgraph/authorize"), "{text}");
    assert!(text.contains("has not connected"), "{text}");

    let (_, list) = http_auth("GET", &format!("{base}/v1/connections"), Some(&ta), None).await;
    seen.add(&list.to_string());
    assert_eq!(list["connections"][0]["connected"], true, "{list}");
    assert_eq!(list["connections"][0]["refreshable"], true, "{list}");
    let log = d.stop();
    assert_no_token_leaked(&f, &env, &log, &seen);
}

/// Follows a connect started at `authorize` (an Airlock URL) through the fake's sign-in, which
/// signs in whoever the login hint names: (status, answer) of the callback.
async fn finish_connect(authorize: &str, token: &str, seen: &mut Seen) -> (u16, String) {
    let (status, h, body) = http_raw("GET", authorize, Some(token)).await;
    seen.add(&body);
    assert_eq!(status, 302, "{body}");
    let (status, h2, body) = http_raw("GET", &h["location"], None).await;
    assert_eq!(status, 302, "{body}");
    let (status, _, body) = http_raw("GET", &h2["location"], None).await;
    seen.add(&body);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_link_finished_by_someone_else_connects_nothing() {
    // Both ways of reading the signed-in account: the id_token, and `userinfo_url`.
    for userinfo in [false, true] {
        let f = graph().await;
        let (env, base) = env_reading_account(&f, userinfo);
        let users = upns(&f);
        let (mallory, victim) = (users[13].clone(), users[4].clone());
        let tm = env.create_token(&mallory, "default", &[], false);
        let bot = env.create_token("ops-bot", "default", &[], false);
        let d = env.serve();
        let mut seen = Seen::default();

        // Mallory starts a connect and sends the sign-in link to the victim, who signs in.
        let hijack = format!("{base}/v1/connections/msgraph/authorize?login_hint={victim}");
        let (status, body) = finish_connect(&hijack, &tm, &mut seen).await;
        assert_eq!(status, 403, "userinfo={userinfo}: {body}");
        assert!(
            body.contains(&victim) && body.contains("nothing was connected"),
            "{body}"
        );
        let (_, list) = http_auth("GET", &format!("{base}/v1/connections"), Some(&tm), None).await;
        assert_eq!(list["connections"][0]["connected"], false, "{list}");
        let (status, v) = search(&base, &tm, &mut seen).await;
        assert_ne!(status, 200, "the victim's account answers nobody: {v}");
        assert!(v.to_string().contains("has not connected"), "{v}");
        // The victim's new tokens were revoked upstream, not left live.
        assert_eq!(f.delegated_counts().revocations, 1, "userinfo={userinfo}");

        // A principal without an email cannot start one.
        let url = format!("{base}/v1/connections/msgraph/authorize");
        let (status, _, body) = http_raw("GET", &url, Some(&bot)).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("verify_account"), "{body}");

        // Mallory's own account connects; the sign-in is hinted at her email by default.
        let (status, body) = finish_connect(&url, &tm, &mut seen).await;
        assert_eq!(status, 200, "{body}");
        let (status, v) = search(&base, &tm, &mut seen).await;
        assert_eq!(status, 200, "{v}");

        let log = d.stop();
        let rows = audit_rows(&env);
        let denied = rows
            .iter()
            .find(|r| r.event.event == "connection" && r.event.decision == "denied")
            .expect("the refused connect is audited");
        assert_eq!(
            denied.event.principal.as_deref(),
            Some(format!("token:{mallory}").as_str())
        );
        assert!(
            denied.event.reason.contains(&victim),
            "{}",
            denied.event.reason
        );
        assert_no_token_leaked(&f, &env, &log, &seen);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_stops_the_next_call_at_once_and_revokes_upstream() {
    let f = graph().await;
    let (env, base) = env(&f);
    let a = upns(&f)[4].clone();
    let ta = env.create_token(&a, "default", &[], false);
    let d = env.serve();
    let mut seen = Seen::default();
    connect(&base, &ta, &a, &mut seen).await;
    let (status, v) = search(&base, &ta, &mut seen).await;
    assert_eq!(status, 200, "{v}");

    let url = format!("{base}/v1/connections/msgraph");
    let (status, v) = http_auth("DELETE", &url, Some(&ta), None).await;
    seen.add(&v.to_string());
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["disconnected"], true, "{v}");
    assert_eq!(v["revoke_error"], Value::Null, "{v}");
    assert_eq!(f.delegated_counts().revocations, 1);

    let (status, v) = search(&base, &ta, &mut seen).await;
    assert_ne!(status, 200, "{v}");
    assert!(
        v.to_string().contains("/v1/connections/msgraph/authorize"),
        "{v}"
    );
    let log = d.stop();
    let rows = audit_rows(&env);
    assert!(
        rows.iter()
            .any(|r| r.event.event == "connection" && r.event.reason == "disconnected"),
        "the disconnect is audited"
    );
    assert_no_token_leaked(&f, &env, &log, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_and_the_used_refresh_token_is_refused() {
    let f = graph().await;
    f.set_token_lifetime_secs(2);
    let (env, base) = env(&f);
    let a = upns(&f)[4].clone();
    let ta = env.create_token(&a, "default", &[], false);
    let d = env.serve();
    let mut seen = Seen::default();
    connect(&base, &ta, &a, &mut seen).await;
    let want: BTreeSet<String> = f.delegated_search_truth(&a, QUERY).into_iter().collect();
    let ids = all_item_ids(&f);
    for round in 1..=2u64 {
        tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
        let (status, v) = search(&base, &ta, &mut seen).await;
        assert_eq!(status, 200, "round {round}: {v}");
        assert_eq!(hit_items(&v, &ids), want, "round {round}");
        assert_eq!(
            f.delegated_counts().refreshes,
            round,
            "one refresh per expiry"
        );
    }
    // Each rotation spent the refresh token it used: the fake refuses every one of them now.
    let used = f.used_refresh_tokens();
    assert_eq!(used.len(), 2, "{used:?}");
    let o = MsGraphOptions::default();
    for old in &used {
        let form = format!(
            "grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
            o.client_id, o.client_secret, old
        );
        let (status, v) = http_form(&f.token_url(), &form).await;
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"], "invalid_grant", "{v}");
    }
    assert_eq!(f.delegated_counts().refused_refreshes, 2);
    let rows = audit_rows(&env);
    assert!(
        rows.iter()
            .filter(|r| r.event.event == "oauth-token" && r.event.decision == "ok")
            .count()
            >= 2,
        "each refresh is audited"
    );
    let log = d.stop();
    assert_no_token_leaked(&f, &env, &log, &seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_never_runs_with_a_persons_token() {
    let f = graph().await;
    let (env, base) = env(&f);
    // An admin triggers it (its principal is named on the run): still no person's token.
    let d = env.serve();
    let mut seen = Seen::default();
    let (status, v) = http_auth(
        "POST",
        &format!("{base}/v1/sync/msgraph"),
        Some(&d.token),
        Some(json!({ "stream": "users" }).to_string()),
    )
    .await;
    seen.add(&v.to_string());
    assert!(status == 202 || status == 200, "{status} {v}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let error = loop {
        let (_, s) = d.get("/v1/sync").await;
        let err = s["streams"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["connector"] == "msgraph" && x["stream"] == "users")
            .and_then(|x| x["last_error"].as_str().map(str::to_string));
        if let Some(e) = err {
            break e;
        }
        assert!(std::time::Instant::now() < deadline, "no sync error: {s}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(error.contains("scheduled or background sync"), "{error}");
    drop(d);
}

/// POSTs a form (the fake's token endpoint): (status, JSON body).
async fn http_form(url: &str, form: &str) -> (u16, Value) {
    use http_body_util::{BodyExt as _, Full};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let req = hyper::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(bytes::Bytes::from(form.to_string())))
        .expect("request");
    let resp = client.request(req).await.expect("token request");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The store's connection records behave the same on SQLite and PostgreSQL: a pending connect
/// is taken once and not after it expired, a rotation replaces only the version it read, and a
/// removal hands the row back once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_stored_the_same_on_both_backends() {
    use airlock::store::backend::Store;
    use airlock::store::connections::{PendingConnect, UserConnection};
    use std::sync::Arc;

    let pg = tokio::task::spawn_blocking(pg_cluster::PgCluster::start)
        .await
        .expect("cluster");
    pg.create_database("connections").expect("database");
    let postgres = Store::Postgres(Arc::new(
        airlock::store::pg::PgStore::open(&pg.url_of("connections"))
            .await
            .expect("postgres store"),
    ));
    let dir = tempfile::tempdir().expect("dir");
    let sqlite = Store::Sqlite(Arc::new(airlock::store::Db::open(dir.path()).expect("db")));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    for (name, store) in [("sqlite", sqlite), ("postgres", postgres)] {
        let pending = |expires_ms| PendingConnect {
            connector: "msgraph".into(),
            principal: "token:alice".into(),
            nonce: vec![1; 12],
            ciphertext: vec![2; 40],
            expires_ms,
        };
        store
            .put_pending_connect("h1", pending(now + 60_000))
            .await
            .expect("put");
        store
            .put_pending_connect("h2", pending(now - 1))
            .await
            .expect("put");
        let taken = store.take_pending_connect("h1").await.expect("take");
        assert_eq!(taken, Some(pending(now + 60_000)), "{name}");
        assert_eq!(
            store.take_pending_connect("h1").await.expect("take"),
            None,
            "{name}: once"
        );
        assert_eq!(
            store.take_pending_connect("h2").await.expect("take"),
            None,
            "{name}: expired"
        );

        let conn = UserConnection {
            connector: "msgraph".into(),
            principal: "token:alice".into(),
            nonce: vec![3; 12],
            ciphertext: vec![4; 50],
            expires_ms: Some(now + 3_600_000),
            scopes: "Files.Read.All".into(),
            version: 0,
            connected_at: String::new(),
            updated_at: String::new(),
        };
        store.put_user_connection(conn.clone()).await.expect("put");
        let got = store
            .user_connection("msgraph", "token:alice")
            .await
            .expect("get")
            .expect("stored");
        assert_eq!(
            (got.version, got.ciphertext.clone()),
            (1, vec![4; 50]),
            "{name}"
        );
        assert!(
            store
                .user_connection("msgraph", "token:bob")
                .await
                .expect("get")
                .is_none()
        );
        let rotated = store
            .rotate_user_connection(
                "msgraph",
                "token:alice",
                1,
                (vec![5; 12], vec![6; 50]),
                None,
            )
            .await
            .expect("rotate");
        assert!(rotated, "{name}: the version read");
        let stale = store
            .rotate_user_connection(
                "msgraph",
                "token:alice",
                1,
                (vec![7; 12], vec![8; 50]),
                None,
            )
            .await
            .expect("rotate");
        assert!(!stale, "{name}: a stale version loses");
        let list = store.user_connections("token:alice").await.expect("list");
        assert_eq!(list.len(), 1, "{name}");
        assert_eq!(
            (list[0].version, list[0].ciphertext.clone()),
            (2, vec![6; 50]),
            "{name}"
        );
        let removed = store
            .remove_user_connection("msgraph", "token:alice")
            .await
            .expect("rm");
        assert!(removed.is_some(), "{name}");
        assert!(
            store
                .remove_user_connection("msgraph", "token:alice")
                .await
                .expect("rm")
                .is_none()
        );
    }
}
