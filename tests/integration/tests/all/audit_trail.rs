//! The audit trail holds under a hostile upstream and a hostile connector: a poison rate-limit
//! header cannot panic the gate or lose its rows, a flood of denials is cut off by the
//! invocation's denial budget, and the chain is anchored by signed checkpoints that `audit
//! verify` checks.

use airlock_tests::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback upstream that answers every request 200 with the rate-limit headers given.
async fn spawn_poison_upstream(headers: &'static str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        // Read the declared body too, so the request is complete.
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let body = "{\"ok\":true}";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_rate_limit_header_after_a_post_is_audited_and_the_daemon_keeps_serving() {
    let poison =
        spawn_poison_upstream("x-ratelimit-remaining: 0\r\nx-ratelimit-reset: 1e20\r\n").await;
    let echo = spawn_echo_server().await;
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "h"
component = "{}"

[[grant]]
connector = "h"
url = "http://127.0.0.1:{}/"
methods = ["POST"]
allow_private = true
writes = true
writes_preapproved = true

[[grant]]
connector = "h"
url = "http://127.0.0.1:{}/"
allow_private = true
"#,
        component("hostile").display(),
        poison.port(),
        echo.port()
    ));
    let d = env.serve();
    let (status, v) = d
        .invoke(
            "h",
            "write",
            json!({"url": format!("http://127.0.0.1:{}/items", poison.port()), "method": "POST", "body": "{}"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["status"], json!(200), "{v}");

    // The daemon keeps serving: health, and another connector request through another grant.
    let (status, _) = http("GET", &format!("{}/healthz", d.base), None).await;
    assert_eq!(status, 200);
    let (status, v) = d
        .invoke(
            "h",
            "fetch",
            json!({"url": format!("http://127.0.0.1:{}/after", echo.port())}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let log = d.stop();
    assert!(!log.contains("panicked"), "{log}");

    let rows = audit_rows(&env);
    let post = rows
        .iter()
        .find(|r| r.event.event == "http" && r.event.method.as_deref() == Some("POST"))
        .unwrap_or_else(|| panic!("no http row for the POST: {rows:#?}"));
    assert_eq!(post.event.decision, "allow");
    assert_eq!(post.event.status, Some(200));
    let invoke = rows
        .iter()
        .find(|r| r.event.event == "invoke" && r.event.invocation == post.event.invocation)
        .unwrap_or_else(|| panic!("no invoke row for the POST's invocation: {rows:#?}"));
    assert_eq!(invoke.event.decision, "ok", "{invoke:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_denials_stops_the_invocation_after_its_budget_with_one_summary_row() {
    let echo = spawn_echo_server().await;
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "h"
component = "{}"
limits = {{ denial_budget = 10 }}

[[grant]]
connector = "h"
url = "http://127.0.0.1:{}/allowed/"
allow_private = true
"#,
        component("hostile").display(),
        echo.port()
    ));
    let a = start_in_process(&env).await;
    let started = std::time::Instant::now();
    let r = a
        .invoke(
            "h",
            airlock::runtime::connector::Op::Action {
                name: "fetch-many".into(),
                input: json!({"url": format!("http://127.0.0.1:{}/denied", echo.port()), "count": 2000}),
            },
        )
        .await;
    let took = started.elapsed();
    match &r {
        Err(e) => assert_eq!(e.code(), "denial-budget", "{e}"),
        Ok(v) => panic!("the flood ran to completion: {v}"),
    }
    a.flush();
    let rows = audit_rows(&env);
    let denials: Vec<_> = rows
        .iter()
        .filter(|r| r.event.event == "http" && r.event.decision == "deny")
        .collect();
    // Ten denials audited one by one, then one summary row; nothing else.
    assert_eq!(denials.len(), 11, "{denials:#?}");
    let summary = denials.last().expect("summary");
    assert!(
        summary.event.reason.contains("denial budget of 10 spent"),
        "{summary:?}"
    );
    let invoke = rows
        .iter()
        .find(|r| r.event.event == "invoke" && r.event.reason.starts_with("action:fetch-many"))
        .expect("invoke row");
    assert_eq!(invoke.event.decision, "error");
    assert!(
        invoke.event.reason.contains("denied requests"),
        "{invoke:?}"
    );
    let metrics = a.metrics.render();
    assert!(
        metrics.contains(r#"airlock_denial_budget_stops_total{connector="h"} 1"#),
        "{metrics}"
    );
    // The next invocation has a fresh budget and works.
    let ok = a
        .invoke(
            "h",
            airlock::runtime::connector::Op::Action {
                name: "fetch".into(),
                input: json!({"url": format!("http://127.0.0.1:{}/allowed/x", echo.port())}),
            },
        )
        .await
        .expect("fresh budget");
    assert_eq!(ok["status"], 200, "{ok}");
    eprintln!("flood of 2000 denied requests stopped after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_metrics_token_or_an_admin_token_when_one_is_configured() {
    let env = Env::new(&format!(
        "[[connector]]\nid = \"h\"\ncomponent = \"{}\"\n",
        component("hostile").display()
    ));
    let text = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        text.replacen(
            "data_dir = \"data\"\n",
            "data_dir = \"data\"\nmetrics_token = \"file:metrics.token\"\n",
            1,
        ),
    )
    .expect("config");
    std::fs::write(env.dir.path().join("metrics.token"), "scrape-me-8841\n").expect("token");
    let reader = env.create_token("reader", "default", &[], false);
    let d = env.serve();
    let url = format!("{}/metrics", d.base);
    let (status, body) = http("GET", &url, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated", "{body}");
    assert_eq!(http_auth("GET", &url, Some("wrong"), None).await.0, 401);
    assert_eq!(http_auth("GET", &url, Some(&reader), None).await.0, 403);
    let (status, body) = http_auth("GET", &url, Some("scrape-me-8841"), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.as_str().unwrap_or_default().contains("airlock_"),
        "{body}"
    );
    assert_eq!(http_auth("GET", &url, Some(&d.token), None).await.0, 200);
    let log = d.stop();
    assert!(!log.contains("scrape-me-8841"), "{log}");
}

fn verify(env: &Env, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["audit", "verify"];
    args.extend_from_slice(extra);
    let out = env.airlock(&args, None);
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn sql(db: &std::path::Path, statement: &str) {
    let c = rusqlite::Connection::open(db).expect("open");
    c.execute_batch(statement).expect("sql");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_truncation_rewrite_and_a_missing_checkpoint_with_distinct_codes() {
    let echo = spawn_echo_server().await;
    let env = Env::new(&format!(
        "[[connector]]\nid = \"h\"\ncomponent = \"{}\"\n[[grant]]\nconnector = \"h\"\nurl = \"http://127.0.0.1:{}/\"\nallow_private = true\n",
        component("hostile").display(),
        echo.port()
    ));
    for i in 0..3 {
        let (ok, _, err) = env.invoke(
            "h",
            "fetch",
            &json!({"url": format!("http://127.0.0.1:{}/p{i}", echo.port())}).to_string(),
        );
        assert!(ok, "{err}");
    }
    let (code, out) = verify(&env, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("anchored:") && out.contains("signs row 9"),
        "{out}"
    );

    let db = env.data_dir().join("airlock.db");
    let key = std::fs::read_to_string(env.data_dir().join("audit-signing.pub")).expect("pub");
    let head: (i64, String) = rusqlite::Connection::open(&db)
        .expect("db")
        .query_row("SELECT seq, hash FROM audit_head", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("head");
    let expect = format!("{}:{}", head.0, head.1);
    let (code, out) = verify(&env, &["--expect", &expect, "--public-key", key.trim()]);
    assert_eq!(code, Some(0), "{out}");
    let wrong = format!("{}:{}", head.0, "ab".repeat(32));
    let (code, out) = verify(&env, &["--expect", &wrong]);
    assert_eq!(code, Some(5), "{out}");
    assert!(
        out.contains("REWRITTEN") && out.contains("--expect"),
        "{out}"
    );

    // Cut the last three rows and move the head back: the chain alone agrees, the signed
    // checkpoint does not.
    sql(
        &db,
        "DELETE FROM audit WHERE seq > 6; UPDATE audit_head SET seq = 6, hash = (SELECT hash FROM audit WHERE seq = 6);",
    );
    let (code, out) = verify(&env, &[]);
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("TRUNCATED") && out.contains("rows 7..=9"),
        "{out}"
    );
    let (code, _) = verify(&env, &["--expect", &expect]);
    assert_eq!(code, Some(4));

    // Without the checkpoint file there is nothing to anchor to.
    std::fs::remove_file(env.data_dir().join("audit-checkpoints.jsonl")).expect("rm");
    let (code, out) = verify(&env, &[]);
    assert_eq!(code, Some(6), "{out}");
    assert!(
        out.contains("UNANCHORED") && out.contains("missing"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_the_invocation_times_out_still_has_its_http_row() {
    // An upstream that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "h"
component = "{}"
limits = {{ timeout = "1s" }}

[[grant]]
connector = "h"
url = "http://127.0.0.1:{port}/"
allow_private = true
"#,
        component("hostile").display()
    ));
    let a = start_in_process(&env).await;
    let r = a
        .invoke(
            "h",
            airlock::runtime::connector::Op::Action {
                name: "fetch".into(),
                input: json!({"url": format!("http://127.0.0.1:{port}/slow")}),
            },
        )
        .await;
    assert!(matches!(&r, Err(e) if e.code() == "timeout"), "{r:?}");
    // The gate's task notices the drop right after the invocation ends.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    a.flush();
    let rows = audit_rows(&env);
    let http = rows
        .iter()
        .find(|r| r.event.event == "http" && r.event.path.as_deref() == Some("/slow"))
        .unwrap_or_else(|| panic!("no http row for the request in flight: {rows:#?}"));
    assert_eq!(http.event.decision, "error");
    assert!(http.event.reason.contains("abandoned"), "{http:?}");
    assert!(
        rows.iter()
            .any(|r| r.event.event == "invoke" && r.event.decision == "error"),
        "{rows:#?}"
    );
}
