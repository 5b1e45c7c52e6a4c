//! Write actions stay off by default (refused and audited unless the grant allows writes), and a
//! `[[route]]` fails over from a failing connector instance to the next, reporting who answered.

use airlock::runtime::connector::{InvokeError, Op};
use airlock::runtime::context::{self, CallContext};
use airlock_tests::*;
use serde_json::json;

fn hostile(id: &str) -> String {
    format!(
        "[[connector]]\nid = \"{id}\"\ncomponent = \"{}\"\n",
        component("hostile").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_action_needs_a_write_grant_and_is_audited() {
    let echo = spawn_echo_server().await;
    let port = echo.port();
    let body = format!(
        "{}{}
[[grant]]
connector = \"readonly\"
url = \"http://127.0.0.1:{port}/\"
methods = [\"GET\", \"POST\"]
exact_paths = [\"/tickets/1/comments\"]
allow_private = true

[[grant]]
connector = \"writer\"
url = \"http://127.0.0.1:{port}/\"
methods = [\"GET\", \"POST\"]
allow_private = true
writes = true
",
        hostile("readonly"),
        hostile("writer")
    );
    let env = Env::new(&body);
    let a = start_in_process(&env).await;
    let post = json!({"url": format!("http://127.0.0.1:{port}/tickets/1/comments"), "method": "POST", "body": "hello"});
    let write = |id: &'static str, input: serde_json::Value| {
        a.invoke(
            id,
            Op::Action {
                name: "write".into(),
                input,
            },
        )
    };

    // Without `writes = true` the write never reaches the upstream.
    let r = write("readonly", post.clone()).await;
    assert!(
        matches!(&r, Err(InvokeError::Connector(c)) if c.code == "forbidden"),
        "{r:?}"
    );
    // Reads from a write action, and writes from an ordinary action, follow `methods` as usual.
    let r = write(
        "readonly",
        json!({"url": format!("http://127.0.0.1:{port}/tickets/1")}),
    )
    .await
    .expect("GET from a write action");
    assert_eq!(r["status"], 200);
    let r = a
        .invoke(
            "readonly",
            Op::Action {
                name: "fetch".into(),
                input: post.clone(),
            },
        )
        .await
        .expect("POST from a read action is governed by methods");
    assert_eq!(r["status"], 200);
    // A call without a context fails closed: not approved, so the write grant refuses it.
    let r = write("writer", post.clone()).await;
    assert!(
        matches!(&r, Err(InvokeError::Connector(c)) if c.code == "forbidden"),
        "{r:?}"
    );
    // With a grant that allows writes and a trusted caller, the write goes through.
    let r = context::with(CallContext::trusted(), write("writer", post))
        .await
        .expect("write grant");
    assert!(
        r["body"]
            .as_str()
            .unwrap_or("")
            .starts_with("POST /tickets/1/comments"),
        "{r}"
    );

    a.flush();
    let rows = audit_rows(&env);
    assert!(
        rows.iter().any(|r| r.event.connector == "readonly"
            && r.event.decision == "deny"
            && r.event.method.as_deref() == Some("POST")
            && r.event.reason.contains("action `write` writes")),
        "no audit row for the refused write"
    );
    assert!(
        rows.iter().any(|r| r.event.connector == "writer"
            && r.event.decision == "deny"
            && r.event.principal.as_deref() == Some("unknown")
            && r.event.reason.contains("was not approved")),
        "no audit row naming the unknown principal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_fails_over_and_reports_who_answered() {
    let echo = spawn_echo_server().await;
    let port = echo.port();
    let body = format!(
        "{}{}{}
[[grant]]
connector = \"second\"
url = \"http://127.0.0.1:{port}/\"
allow_private = true

[[route]]
name = \"fetcher\"
action = \"fetch\"
connectors = [\"first\", \"second\", \"third\"]
",
        hostile("first"),
        hostile("second"),
        hostile("third")
    );
    let env = Env::new(&body);
    let a = start_in_process(&env).await;
    let input = json!({"url": format!("http://127.0.0.1:{port}/v1/chat")});
    let r = a
        .invoke(
            "fetcher",
            Op::Action {
                name: "fetch".into(),
                input: input.clone(),
            },
        )
        .await
        .expect("route");
    assert_eq!(r["answered_by"], "second", "{r}");
    let failed: Vec<&str> = r["failed"]
        .as_array()
        .map(|f| f.iter().filter_map(|x| x["connector"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        failed,
        vec!["first"],
        "tried first, answered by second, never third: {r}"
    );
    assert_eq!(r["result"]["status"], 200);

    // Only the route's action is served through it.
    let r = a
        .invoke(
            "fetcher",
            Op::Action {
                name: "echo".into(),
                input: json!({}),
            },
        )
        .await;
    assert!(matches!(r, Err(InvokeError::BadInput { .. })), "{r:?}");

    // The same over the API and the CLI: a route is usable wherever an action is.
    a.flush();
    let (ok, v, err) = env.invoke("fetcher", "fetch", &input.to_string());
    assert!(ok, "{err}");
    assert_eq!(v["answered_by"], "second");
    let d = env.serve();
    let (status, v) = d.invoke("fetcher", "fetch", input).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["result"]["answered_by"], "second");
    // What happened shows up in the metrics, and every connector loaded so the daemon is ready.
    let (status, text) = http("GET", &format!("{}/metrics", d.base), None).await;
    assert_eq!(status, 200);
    let text = text.as_str().unwrap_or_default().to_string();
    for needle in [
        "airlock_invocations_total{connector=\"second\",op=\"action:fetch\",outcome=\"ok\"} 1",
        "airlock_outbound_denials_total{connector=\"first\"} 1",
        "airlock_outbound_requests_total{connector=\"second\",grant=\"grant-0\",status=\"200\"} 1",
        "airlock_outbound_requests_total{connector=\"first\",grant=\"none\",status=\"denied\"} 1",
        "airlock_invocation_duration_seconds_bucket",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    // Labels come from the configuration: never a requested host.
    assert!(!text.contains("host=\""), "{text}");
    let (status, _) = http("GET", &format!("{}/readyz", d.base), None).await;
    assert_eq!(status, 200);
    let rows = audit_rows(&env);
    assert!(
        rows.iter()
            .any(|r| r.event.event == "route" && r.event.reason.contains("answered by `second`"))
    );
}

#[test]
fn route_config_errors_are_named() {
    for (body, key) in [
        (
            "[[route]]\nname = \"r\"\naction = \"chat\"\nconnectors = [\"ghost\"]\n",
            "route[0].connectors",
        ),
        (
            "[[route]]\nname = \"r\"\naction = \"chat\"\nconnectors = []\n",
            "route[0].connectors",
        ),
    ] {
        let env = Env::new(body);
        let out = env.airlock(&["sync", "--status"], None);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{stderr}");
    }
}
