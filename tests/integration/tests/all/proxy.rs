//! The egress proxy end to end: a caller with the `proxy` scope sends its own requests to the
//! Atera fake through the connector's gate (credentials injected, the caller's own token never
//! forwarded, audit rows naming the caller), the upstream's answer comes back as sent (errors
//! included), the grant's path rules hold, and a write waits for an approval and lands once.

use std::collections::BTreeMap;

use airlock_tests::*;
use bytes::Bytes;
use fake_saas::{AteraOptions, spawn_atera};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

/// A token with the `proxy` scope for `connectors`.
fn proxy_token(env: &Env, principal: &str, connectors: &str) -> String {
    let out = env.airlock(
        &[
            "tokens",
            "create",
            "--principal",
            principal,
            "--proxy",
            connectors,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One request with any method, headers and body: (status, lowercase headers, body text).
async fn send(
    method: &str,
    url: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, BTreeMap<String, String>, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {token}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let resp = client.request(req).await.expect("http request");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).to_string(),
            )
        })
        .collect();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&bytes).to_string())
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_reads_go_through_the_grant_with_its_credentials_and_the_callers_name() {
    let f = spawn_atera(
        "127.0.0.1:0".parse().expect("addr"),
        AteraOptions::default(),
    )
    .await
    .expect("fake");
    let env = Env::new(&atera_config(&f.base_url));
    let key = AteraOptions::default().api_key;
    env.set_secret("atera_key", &key);
    let svc = proxy_token(&env, "ticketzero", "atera");
    let plain = env.create_token("reader", "default", &[], false);
    let d = env.serve();
    let base = format!("{}/v1/proxy/atera", d.base);

    // A read: the fake answers only with the injected key; the caller never held it.
    let url = format!("{base}/api/v3/tickets?page=1&itemsInPage=5");
    let (status, headers, body) = send("GET", &url, &svc, &[], "").await;
    assert_eq!(status, 200, "{body}");
    let v = json_of(&body);
    assert_eq!(v["items"].as_array().map(Vec::len), Some(5), "{body}");
    assert!(headers["content-type"].starts_with("application/json"));
    let invocation = headers["x-airlock-invocation"].clone();
    assert!(!headers.contains_key("set-cookie"));

    // The upstream's own errors come back as it sent them (Atera's ProblemDetails, not ours).
    let (status, headers, body) = send(
        "GET",
        &format!("{base}/api/v3/tickets/999999"),
        &svc,
        &[],
        "",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "{body}"
    );
    assert_eq!(json_of(&body)["status"], 404, "{body}");

    // Outside the grant's URL: refused by the gate, with the audit row's reason.
    let (status, headers, body) = send("GET", &format!("{base}/other/thing"), &svc, &[], "").await;
    assert_eq!(status, 403, "{body}");
    let v = json_of(&body);
    assert_eq!(v["error"]["code"], "denied", "{body}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("/other/thing"),
        "{body}"
    );
    let denied = headers["x-airlock-invocation"].clone();
    // A traversal out of the granted prefix is refused too (normalised, then matched).
    let (status, _, body) = send(
        "GET",
        &format!("{base}/api/v3/%2e%2e/secret"),
        &svc,
        &[],
        "",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // A method override is refused like a connector's.
    let (status, _, body) = send(
        "GET",
        &url,
        &svc,
        &[("x-http-method-override", "DELETE")],
        "",
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // Without the scope, or for a connector that does not exist: refused before the gate.
    let (status, _, body) = send("GET", &url, &plain, &[], "").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--proxy atera"), "{body}");
    let (status, _, body) =
        send("GET", &format!("{}/v1/proxy/nope/x", d.base), &svc, &[], "").await;
    assert_eq!(status, 404, "{body}");
    let (status, _, _) = send("GET", &url, "alk_not-a-token", &[], "").await;
    assert_eq!(status, 401);

    // The audit rows name the caller and the invocation the answers named.
    let rows = d.stop();
    let rows_now = audit_rows(&env);
    let of = |inv: &str| {
        rows_now
            .iter()
            .filter(|r| r.event.invocation == inv && r.event.event == "http")
            .collect::<Vec<_>>()
    };
    let read = of(&invocation);
    assert_eq!(read.len(), 1, "{rows}");
    assert_eq!(read[0].event.decision, "allow");
    assert_eq!(read[0].event.principal.as_deref(), Some("token:ticketzero"));
    assert_eq!(read[0].event.path.as_deref(), Some("/api/v3/tickets"));
    assert_eq!(of(&denied)[0].event.decision, "deny");
    // Neither the upstream key nor the caller's token is in any row, log line or file.
    for (path, bytes) in all_files(&env.data_dir()) {
        assert!(!contains(&bytes, &key), "key in {}", path.display());
        assert!(
            !contains(&bytes, &svc),
            "caller token in {}",
            path.display()
        );
    }
    assert!(!rows.contains(&key) && !rows.contains(&svc));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxied_write_waits_for_approval_and_lands_once() {
    let f = spawn_atera(
        "127.0.0.1:0".parse().expect("addr"),
        AteraOptions::default(),
    )
    .await
    .expect("fake");
    let env = Env::new(&atera_config(&f.base_url));
    env.set_secret("atera_key", &AteraOptions::default().api_key);
    let svc = proxy_token(&env, "ticketzero", "atera");
    let carol = env.create_token("carol", "default", &[], true);
    let d = env.serve();
    let ticket = f.truth().tickets[0].id;
    let url = format!("{}/v1/proxy/atera/api/v3/tickets/{ticket}/comments", d.base);
    let comment = json!({"CommentText": "Rebooted the VPN gateway",
        "TechnicianCommentDetails": {"TechnicianEmail": "api.technician@msp.example", "IsInternal": false}});
    let ct = [("content-type", "application/json")];

    let (status, _, body) = send("POST", &url, &svc, &ct, &comment.to_string()).await;
    assert_eq!(status, 202, "{body}");
    let v = json_of(&body);
    assert_eq!(v["approval"]["action"], "@proxy", "{body}");
    assert_eq!(v["approval"]["requested_by"], "token:ticketzero");
    assert_eq!(v["approval"]["input"]["method"], "POST");
    let id = v["approval"]["id"].as_str().expect("id").to_string();
    assert!(f.truth().writes.is_empty(), "nothing sent before approval");

    let approve = format!("{}/v1/approvals/{id}/approve", d.base);
    let (status, body) = http_auth("POST", &approve, Some(&carol), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approval"]["status"], "executed", "{body}");
    let result = &body["approval"]["result"];
    assert!(
        result["status"]
            .as_u64()
            .is_some_and(|s| (200..300).contains(&s)),
        "{body}"
    );
    let writes = f.truth().writes;
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].comment, "Rebooted the VPN gateway");
    // Approving again sends nothing.
    let (status, _) = http_auth("POST", &approve, Some(&carol), None).await;
    assert_eq!(status, 409);
    assert_eq!(f.truth().writes.len(), 1);

    // The gate's write rules still hold for the approved write: its row names the approver
    // and the approval's id.
    drop(d);
    let rows = audit_rows(&env);
    let sent: Vec<_> = rows
        .iter()
        .filter(|r| r.event.invocation == id && r.event.event == "http")
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].event.decision, "allow");
    assert_eq!(sent[0].event.method.as_deref(), Some("POST"));
    assert_eq!(sent[0].event.principal.as_deref(), Some("token:carol"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_that_preapproves_writes_lets_a_proxied_write_go_at_once() {
    let f = spawn_atera(
        "127.0.0.1:0".parse().expect("addr"),
        AteraOptions::default(),
    )
    .await
    .expect("fake");
    let config = atera_config(&f.base_url)
        .replace("writes = true", "writes = true\nwrites_preapproved = true");
    let env = Env::new(&config);
    env.set_secret("atera_key", &AteraOptions::default().api_key);
    let svc = proxy_token(&env, "ticketzero", "atera");
    let d = env.serve();
    let ticket = f.truth().tickets[1].id;
    let url = format!("{}/v1/proxy/atera/api/v3/tickets/{ticket}/comments", d.base);
    let bad = json!({"CommentText": "no author"});
    let ct = [("content-type", "application/json")];
    // Atera refuses a comment without an author: its 400 comes back as it was.
    let (status, headers, body) = send("POST", &url, &svc, &ct, &bad.to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    let good = json!({"CommentText": "Done",
        "TechnicianCommentDetails": {"TechnicianEmail": "api.technician@msp.example"}});
    let (status, _, body) = send("POST", &url, &svc, &ct, &good.to_string()).await;
    assert!((200..300).contains(&status), "{status} {body}");
    assert_eq!(f.truth().writes.len(), 1);
    // A method the grant does not list is refused by the gate.
    let (status, _, body) = send("DELETE", &url, &svc, &[], "").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(f.truth().writes.len(), 1);
}
