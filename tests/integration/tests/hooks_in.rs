//! Webhooks in: an upstream's push notification, verified by the host with the hook's secret
//! from the vault, starts an incremental sync at once; a forged, replayed or wrongly marked one
//! changes nothing and is audited as refused; notifications during a run are coalesced into one
//! more run; Graph's subscription handshake is answered as Graph expects. Notifications are
//! built the way Zendesk and Microsoft Graph send them.

use std::time::{Duration, Instant};

use airlock_tests::*;
use base64::Engine as _;
use bytes::Bytes;
use fake_saas::{MsGraphOptions, ZendeskMutation, ZendeskOptions, spawn_msgraph, spawn_zendesk};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use serde_json::Value;

const ZD_SECRET: &str = "dGhpcyBpcyBhIHplbmRlc2sgc2lnbmluZyBzZWNyZXQ";

/// POSTs `body` with `headers` to the daemon's hook route: (status, content type, body text).
async fn push(url: &str, headers: &[(&str, String)], body: &str) -> (u16, String, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = hyper::Request::post(url).header("content-type", "application/json");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_zendesk_notification_syncs_at_once_and_a_forged_one_does_nothing() {
    let opts = ZendeskOptions {
        tickets: 30,
        recent_exclusion_secs: 0,
        ..ZendeskOptions::default()
    };
    let f = spawn_zendesk("127.0.0.1:0".parse().expect("addr"), opts.clone())
        .await
        .expect("fake");
    let config = zendesk_config(&f.base_url, "").replacen(
        "limits = { timeout = \"60s\" }",
        "limits = { timeout = \"60s\" }\nhook = { kind = \"zendesk\", secret = \"secret:zd_hook\", streams = [\"tickets\"] }",
        1,
    );
    assert!(config.contains("hook = "), "{config}");
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
    let config = msgraph_config(&f, &opts.client_id).replacen(
        "limits = { timeout = \"60s\" }",
        "limits = { timeout = \"60s\" }\nhook = { kind = \"graph\", secret = \"env:AIRLOCK_TEST_GRAPH_STATE\", streams = [\"users\"] }",
        1,
    );
    let env = Env::new(&config);
    env.set_secret("graph_secret", &opts.client_secret);
    // SAFETY: set before the daemon (a child process) starts; no other thread reads it here.
    unsafe { std::env::set_var("AIRLOCK_TEST_GRAPH_STATE", "client-state-7f3a") };
    let d = env.serve();
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
