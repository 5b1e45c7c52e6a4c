//! Webhooks in: an upstream's push notification, verified by the host with the hook's secret
//! from the vault, starts an incremental sync at once; a forged, replayed or wrongly marked one
//! changes nothing and is audited as refused; notifications during a run are coalesced into one
//! more run; Graph's subscription handshake is answered as Graph expects. The fakes push real
//! notifications themselves: Zendesk and Jira webhooks registered through their APIs, signed
//! with the secret the upstream gives or takes; Graph subscriptions that Airlock creates (the
//! fake's validation request answered by the hook route) and renews before they expire.

use std::time::{Duration, Instant};

use airlock_tests::*;
use base64::Engine as _;
use bytes::Bytes;
use fake_saas::{
    Change, JiraMutation, JiraOptions, MsGraphMutation, MsGraphOptions, ZendeskMutation,
    ZendeskOptions, spawn_jira, spawn_msgraph, spawn_zendesk,
};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

const ZD_SECRET: &str = "dGhpcyBpcyBhIHplbmRlc2sgc2lnbmluZyBzZWNyZXQ";

/// POSTs `body` with `headers` to the daemon's hook route: (status, content type, body text).
async fn push(url: &str, headers: &[(&str, String)], body: &str) -> (u16, String, String) {
    send("POST", url, headers, body).await
}

/// One JSON request: (status, content type, body text).
async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = client
        .request(
            req.body(Full::new(Bytes::from(body.to_string())))
                .expect("request"),
        )
        .await
        .expect("push");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, ct, String::from_utf8_lossy(&bytes).to_string())
}

/// Zendesk's signing: base64(HMAC-SHA256(secret, timestamp + body)).
fn zendesk_headers(secret: &str, ts: &str, body: &str) -> Vec<(&'static str, String)> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(ts.as_bytes());
    mac.update(body.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    vec![
        ("x-zendesk-webhook-signature", sig),
        ("x-zendesk-webhook-signature-timestamp", ts.to_string()),
    ]
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The stored record count of a stream, once its latest run has ended successfully after `since`.
async fn synced(d: &Daemon, stream: &str, since: &str) -> Option<u64> {
    let (_, v) = d.get("/v1/sync").await;
    let s = v["streams"]
        .as_array()?
        .iter()
        .find(|s| s["stream"] == stream)?
        .clone();
    let done = s["last_success_at"].as_str().is_some_and(|t| t >= since) && s["running"] != true;
    done.then(|| s["records"].as_u64()).flatten()
}

async fn wait_synced(d: &Daemon, stream: &str, since: &str, want: impl Fn(u64) -> bool) -> u64 {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(n) = synced(d, stream, since).await.filter(|n| want(*n)) {
            return n;
        }
        assert!(
            Instant::now() < until,
            "{stream} did not sync after the hook"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Zendesk fake with 30 tickets (exports hold back nothing) and a config whose connector has
/// a zendesk hook (secret `zd_hook`) on the tickets stream.
async fn zendesk_with_hook() -> (
    ZendeskOptions,
    fake_saas::RunningFake<fake_saas::Zendesk>,
    String,
) {
    let opts = ZendeskOptions {
        tickets: 30,
        recent_exclusion_secs: 0,
        ..ZendeskOptions::default()
    };
    let f = spawn_zendesk("127.0.0.1:0".parse().expect("addr"), opts.clone())
        .await
        .expect("fake");
    let config = with_hook(
        &zendesk_config(&f.base_url, ""),
        "{ kind = \"zendesk\", secret = \"secret:zd_hook\", streams = [\"tickets\"] }",
    );
    (opts, f, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_zendesk_notification_syncs_at_once_and_a_forged_one_does_nothing() {
    let (opts, f, config) = zendesk_with_hook().await;
    let env = Env::new(&config);
    env.set_secret("zendesk_token", &opts.api_token);
    env.set_secret("zd_hook", ZD_SECRET);
    let d = env.serve();
    let url = format!("{}/v1/hooks/zendesk", d.base);
    let body = r#"{"type":"zen:event-type:ticket.created","detail":{"id":"1"}}"#;

    // Forged (wrong secret), replayed (an old timestamp), unsigned: refused, nothing synced.
    let old = (chrono::Utc::now() - chrono::TimeDelta::minutes(10))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (what, headers) in [
        ("forged", zendesk_headers("not-the-secret", &now(), body)),
        ("replayed", zendesk_headers(ZD_SECRET, &old, body)),
        ("unsigned", vec![]),
    ] {
        let (status, _, text) = push(&url, &headers, body).await;
        assert_eq!(status, 401, "{what}: {text}");
    }
    // The signature covers the body: the same headers on another body are refused.
    let (status, _, _) = push(&url, &zendesk_headers(ZD_SECRET, &now(), body), "{}").await;
    assert_eq!(status, 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(synced(&d, "tickets", "").await, None, "nothing synced");
    let (status, _, _) = push(&format!("{}/v1/hooks/nope", d.base), &[], body).await;
    assert_eq!(status, 404);

    // Genuine: the tickets stream syncs at once.
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (status, _, text) = push(&url, &zendesk_headers(ZD_SECRET, &now(), body), body).await;
    assert_eq!(status, 202, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json")["syncing"],
        serde_json::json!(["tickets"])
    );
    let first = wait_synced(&d, "tickets", &since, |n| n > 0).await;

    // A change upstream, then a burst of five notifications: the change arrives, and the burst
    // costs at most two runs (the one it started and one coalesced after it).
    let report = f.mutate(ZendeskMutation {
        create: 3,
        ..ZendeskMutation::default()
    });
    assert_eq!(report.created.len(), 3);
    let path = "/api/v2/incremental/tickets/cursor.json";
    // Each export answer takes 400 ms, so the burst arrives while a run is going.
    f.set_faults(fake_saas::faults::FaultPlan {
        rate: 1.0,
        kinds: vec![fake_saas::faults::FaultKind::Latency],
        latency_ms: 400,
        paths: vec![path.to_string()],
        ..Default::default()
    });
    let before = f.requests_to(path);
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for _ in 0..5 {
        let (status, _, _) = push(&url, &zendesk_headers(ZD_SECRET, &now(), body), body).await;
        assert_eq!(status, 202);
    }
    wait_synced(&d, "tickets", &since, |n| n == first + 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs = f.requests_to(path) - before;
    assert!(
        (1..=4).contains(&runs),
        "five notifications made {runs} export requests"
    );

    let log = d.stop();
    let rows = audit_rows(&env);
    let hooks: Vec<_> = rows.iter().filter(|r| r.event.event == "hook").collect();
    assert_eq!(
        hooks.iter().filter(|r| r.event.decision == "deny").count(),
        4
    );
    assert_eq!(hooks.iter().filter(|r| r.event.decision == "ok").count(), 6);
    assert!(
        hooks
            .iter()
            .all(|r| r.event.principal.as_deref() == Some("hook:zendesk"))
    );
    for (p, bytes) in all_files(&env.data_dir()) {
        assert!(
            !contains(&bytes, ZD_SECRET),
            "hook secret in {}",
            p.display()
        );
    }
    assert!(!log.contains(ZD_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_notifications_need_the_handshake_answer_and_the_client_state() {
    let opts = MsGraphOptions::default();
    let f = spawn_msgraph("127.0.0.1:0".parse().expect("addr"), opts.clone())
        .await
        .expect("fake");
    let config = with_hook(
        &msgraph_config(&f, &opts.client_id),
        "{ kind = \"graph\", secret = \"env:AIRLOCK_TEST_GRAPH_STATE\", streams = [\"users\"] }",
    );
    let env = Env::new(&config);
    env.set_secret("graph_secret", &opts.client_secret);
    // In the daemon's environment only: the test process runs every area's tests on threads
    // that read their own environment (setting it here would race them).
    let d = env.serve_with(&[("AIRLOCK_TEST_GRAPH_STATE", "client-state-7f3a")]);
    let url = format!("{}/v1/hooks/msgraph", d.base);

    // The subscription handshake: the token back as text/plain, no sync.
    let (status, ct, text) = push(
        &format!("{url}?validationToken=Validation%3A%20Testing%20client%20application"),
        &[],
        "",
    )
    .await;
    assert_eq!(
        (status, text.as_str()),
        (200, "Validation: Testing client application")
    );
    assert!(ct.starts_with("text/plain"), "{ct}");

    let note = |state: &str| {
        serde_json::json!({"value": [{"subscriptionId": "sub-1", "clientState": state,
            "changeType": "updated", "resource": "users/1",
            "subscriptionExpirationDateTime": "2026-12-05T00:00:00Z", "tenantId": "t"}]})
        .to_string()
    };
    let (status, _, _) = push(&url, &[], &note("a guess")).await;
    assert_eq!(status, 401);
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (status, _, text) = push(&url, &[], &note("client-state-7f3a")).await;
    assert_eq!(status, 202, "{text}");
    let users = wait_synced(&d, "users", &since, |n| n > 0).await;
    assert!(users > 0);
    let _ = f;
}

fn basic(user: &str, password: &str) -> (&'static str, String) {
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    ("authorization", format!("Basic {pair}"))
}

/// Waits until the fake has sent `n` notifications, and returns them.
async fn deliveries(
    n: usize,
    get: impl Fn() -> Vec<fake_saas::Delivery>,
) -> Vec<fake_saas::Delivery> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let d = get();
        if d.len() >= n {
            return d;
        }
        assert!(
            Instant::now() < until,
            "{} of {n} notifications sent",
            d.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zendesk_fake_pushes_signed_ticket_events_and_each_change_syncs() {
    let (opts, f, config) = zendesk_with_hook().await;
    let env = Env::new(&config);
    env.set_secret("zendesk_token", &opts.api_token);
    let base = env.listen_at(free_port());

    // As an admin would: register Airlock's hook URL as a webhook through Zendesk's API, then copy
    // its signing secret into Airlock's vault.
    let auth = basic(&format!("{}/token", opts.email), &opts.api_token);
    let webhook = serde_json::json!({"webhook": {
        "name": "Airlock", "endpoint": format!("{base}/v1/hooks/zendesk"), "http_method": "POST",
        "request_format": "json", "status": "active",
        "subscriptions": ["zen:event-type:ticket.created", "zen:event-type:ticket.status_changed"],
    }});
    let api = |p: &str| format!("{}/api/v2/webhooks{p}", f.base_url);
    let (status, _, text) = send(
        "POST",
        &api(""),
        std::slice::from_ref(&auth),
        &webhook.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let id = serde_json::from_str::<Value>(&text).expect("json")["webhook"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, _, text) = send("GET", &api(&format!("/{id}/signing_secret")), &[auth], "").await;
    assert_eq!(status, 200, "{text}");
    let secret = serde_json::from_str::<Value>(&text).expect("json")["signing_secret"]["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    env.set_secret("zd_hook", &secret);
    let d = env.serve();
    assert_eq!(d.base, base);

    // Two tickets created upstream: Zendesk pushes two signed events, Airlock syncs at once.
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let created = f.create_tickets(2);
    wait_synced(&d, "tickets", &since, |n| n == 32).await;
    let sent = deliveries(2, || f.deliveries()).await;
    assert!(
        sent.iter()
            .all(|s| s.status == Some(202) && s.attempts == 1),
        "{sent:?}"
    );
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let stored = airlock::store::documents::all(&conn, "zendesk", Some("ticket")).expect("docs");
    for id in &created {
        assert!(stored.iter().any(|d| d.id == id.to_string()), "ticket {id}");
    }

    // A status change: one more event, and the store follows.
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let updated = f.update_tickets(1)[0];
    let subject = f
        .truth()
        .tickets
        .iter()
        .find(|t| t.id == updated)
        .expect("ticket")
        .subject
        .clone();
    wait_synced(&d, "tickets", &since, |_| true).await;
    let doc = airlock::store::documents::all(&conn, "zendesk", Some("ticket"))
        .expect("docs")
        .into_iter()
        .find(|d| d.id == updated.to_string())
        .expect("updated ticket");
    assert_eq!(doc.title, subject);
    let sent = deliveries(3, || f.deliveries()).await;
    assert_eq!(sent[2].event, "zen:event-type:ticket.status_changed");

    let log = d.stop();
    let hooks: Vec<_> = audit_rows(&env)
        .into_iter()
        .filter(|r| r.event.event == "hook")
        .collect();
    assert_eq!(hooks.len(), 3, "one audit row per notification");
    assert!(hooks.iter().all(|r| r.event.decision == "ok"));
    for (p, bytes) in all_files(&env.data_dir()) {
        assert!(
            !contains(&bytes, &secret),
            "signing secret in {}",
            p.display()
        );
    }
    assert!(!log.contains(&secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jira_fake_pushes_signed_issue_events_and_a_wrong_secret_is_refused() {
    let opts = JiraOptions::default();
    let f = spawn_jira("127.0.0.1:0".parse().expect("addr"), opts.clone())
        .await
        .expect("fake");
    let config = with_hook(
        &jira_config(&f.base_url),
        "{ kind = \"jira\", secret = \"secret:jira_hook\", streams = [\"requests\"] }",
    );
    let env = Env::new(&config);
    env.set_secret("jira_token", &opts.api_token);
    const JIRA_SECRET: &str = "jira-hook-secret-6b0e41c9";
    env.set_secret("jira_hook", JIRA_SECRET);
    let base = env.listen_at(free_port());
    let d = env.serve();

    // Two webhooks to the same hook URL: one registered with Airlock's secret, one with another.
    let auth = basic(&opts.email, &opts.api_token);
    for secret in [JIRA_SECRET, "someone-elses-secret"] {
        let body = serde_json::json!({
            "name": "Airlock", "url": format!("{base}/v1/hooks/jira"),
            "events": ["jira:issue_created", "jira:issue_updated"],
            "filters": {"issue-related-events-section": ""}, "excludeBody": false,
            "secret": secret,
        });
        let url = format!("{}/rest/webhooks/1.0/webhook", f.base_url);
        let (status, _, text) =
            send("POST", &url, std::slice::from_ref(&auth), &body.to_string()).await;
        assert_eq!(status, 201, "{text}");
    }
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    f.mutate(JiraMutation {
        create: 2,
        ..JiraMutation::default()
    });
    let want = f.truth().requests.len() as u64;
    wait_synced(&d, "requests", &since, |n| n == want).await;
    // Each event went to both webhooks: the signed ones accepted, the others refused (after
    // Jira's retries).
    let sent = deliveries(4, || f.deliveries()).await;
    let statuses: Vec<Option<u16>> = sent.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == Some(202)).count(),
        2,
        "{sent:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == Some(401)).count(),
        2,
        "{sent:?}"
    );

    let log = d.stop();
    let hooks: Vec<_> = audit_rows(&env)
        .into_iter()
        .filter(|r| r.event.event == "hook")
        .collect();
    assert_eq!(hooks.iter().filter(|r| r.event.decision == "ok").count(), 2);
    assert!(hooks.iter().filter(|r| r.event.decision == "deny").count() >= 2);
    assert!(!log.contains(JIRA_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airlock_keeps_a_graph_subscription_alive_and_its_notifications_sync_users() {
    let opts = MsGraphOptions::default();
    let f = spawn_msgraph("127.0.0.1:0".parse().expect("addr"), opts.clone())
        .await
        .expect("fake");
    const CLIENT_STATE: &str = "client-state-5d1e08a2";
    // The port is chosen first: the subscription names the hook URL.
    let port = free_port();
    let hook_url = format!("http://127.0.0.1:{port}/v1/hooks/msgraph");
    let config = with_hook(
        &msgraph_config(&f, &opts.client_id),
        &format!(
            "{{ kind = \"graph\", secret = \"secret:graph_hook\", streams = [\"users\"], subscribe = {{ resource = \"users\", change_type = \"created,updated\", notification_url = \"{hook_url}\", lifetime = \"6s\" }} }}"
        ),
    ) + &format!(
        r#"
[[grant]]
connector = "msgraph"
url = "{base}/v1.0/subscriptions"
methods = ["POST", "PATCH", "DELETE"]
exact_paths = ["/v1.0/subscriptions", "/v1.0/subscriptions/*"]
allow_private = true
allow_insecure = true
auth = {{ type = "oauth2", token_url = "{token_url}", client_id = "{client_id}", client_secret = "secret:graph_secret", scope = "https://graph.microsoft.com/.default" }}
"#,
        base = f.base_url,
        token_url = f.token_url(),
        client_id = opts.client_id,
    );
    let env = Env::new(&config);
    env.set_secret("graph_secret", &opts.client_secret);
    env.set_secret("graph_hook", CLIENT_STATE);
    env.listen_at(port);
    let d = env.serve();

    // Airlock creates the subscription (the fake's validation request answered by the hook
    // route), then renews it at half its 6 s lifetime.
    let until = Instant::now() + Duration::from_secs(30);
    let sub = loop {
        let subs = f.subscriptions();
        if let Some(s) = subs.iter().find(|s| s.renewals >= 1) {
            assert_eq!(subs.len(), 1, "{subs:?}");
            break s.clone();
        }
        assert!(
            Instant::now() < until,
            "not created and renewed: {subs:?}\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sub.client_state.as_deref(), Some(CLIENT_STATE));
    assert_eq!(sub.notification_url, hook_url);
    assert_eq!(sub.change_type, "created,updated");

    // Changes upstream: Graph notifies, Airlock verifies the clientState and syncs users.
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let report = f.mutate(MsGraphMutation {
        users: Change {
            add: 2,
            update: 1,
            ..Change::default()
        },
        ..MsGraphMutation::default()
    });
    assert_eq!(report.users.added.len(), 2);
    let want = f.truth().users.len() as u64;
    wait_synced(&d, "users", &since, |n| n == want).await;
    let sent = deliveries(1, || f.deliveries()).await;
    assert_eq!(sent[0].status, Some(202), "{sent:?}");

    // A restart renews the same subscription instead of making another.
    d.stop();
    let renewed = f.subscriptions()[0].renewals;
    let d = env.serve();
    let until = Instant::now() + Duration::from_secs(30);
    while f.subscriptions()[0].renewals <= renewed {
        assert!(Instant::now() < until, "not renewed after the restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(f.subscriptions().len(), 1, "no second subscription");

    let log = d.stop();
    let rows = audit_rows(&env);
    let kept: Vec<_> = rows
        .iter()
        .filter(|r| r.event.event == "subscription")
        .collect();
    assert!(kept.len() >= 3, "created, renewed, renewed: {kept:?}");
    assert!(kept.iter().all(|r| r.event.decision == "ok"
        && r.event.principal.as_deref() == Some("hook:graph")));
    assert!(kept[0].event.reason.contains("created"));
    // The subscription calls went through the gate, under the hook's principal.
    assert!(rows.iter().any(|r| r.event.event == "http"
        && r.event.method.as_deref() == Some("PATCH")
        && r.event.principal.as_deref() == Some("hook:graph")));
    for (p, bytes) in all_files(&env.data_dir()) {
        assert!(
            !contains(&bytes, CLIENT_STATE),
            "client state in {}",
            p.display()
        );
    }
    assert!(!log.contains(CLIENT_STATE));
}
