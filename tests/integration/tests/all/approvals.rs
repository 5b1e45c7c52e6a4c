//! Write approvals end to end: through the API or CLI a write action waits as a pending
//! approval and changes nothing upstream; approved, it runs exactly once (a replayed approval
//! does not run it again) and its audit rows carry the approval's id; denied, it never runs; a
//! write outside an approved write action is refused and audited; a grant may pre-approve.

use airlock_tests::*;
use fake_saas::{AteraOptions, spawn_atera};
use serde_json::json;

fn atera_env(base: &str, extra: &str) -> Env {
    let env = Env::new(&format!("{}{extra}\n", atera_config(base)));
    env.set_secret("atera_key", &AteraOptions::default().api_key);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_write_runs_once_and_a_replay_or_a_denied_one_changes_nothing() {
    let f = spawn_atera(
        "127.0.0.1:0".parse().expect("addr"),
        AteraOptions::default(),
    )
    .await
    .expect("fake");
    let env = atera_env(&f.base_url, "");
    let d = env.serve();
    let ticket = f.truth().tickets[0].id;
    let ask = |comment: &str| {
        json!({"op": "add-comment", "input": {"ticket_id": ticket, "comment": comment}}).to_string()
    };

    // Asking changes nothing upstream: the write waits for a decision.
    let (status, body) = d
        .post("/v1/connectors/atera/invoke", &ask("Please reboot"))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["approval"]["id"]
        .as_str()
        .expect("approval id")
        .to_string();
    assert_eq!(body["approval"]["status"], "pending");
    assert_eq!(body["approval"]["requested_by"], "token:test-admin");
    assert!(
        f.truth().writes.is_empty(),
        "nothing written before approval"
    );
    let (_, list) = d.get("/v1/approvals?status=pending").await;
    assert_eq!(list["approvals"][0]["id"], id.as_str(), "{list}");

    // Non-admins may look but not decide.
    let bob = env.create_token("bob", "default", &[], false);
    let url = format!("{}/v1/approvals/{id}/approve", d.base);
    let (status, _) = http_auth("POST", &url, Some(&bob), None).await;
    assert_eq!(status, 403);
    assert!(f.truth().writes.is_empty());

    // Whoever asked may not approve it (no `allow_self_approval`): another admin must.
    let (status, body) = d.post(&format!("/v1/approvals/{id}/approve"), "").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("may not approve"),
        "{body}"
    );
    assert!(f.truth().writes.is_empty());
    let carol = env.create_token("carol", "default", &[], true);

    // Approved by a second admin: it runs once.
    let (status, body) = http_auth("POST", &url, Some(&carol), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["approval"]["decided_by"], "token:carol", "{body}");
    assert_eq!(body["approval"]["status"], "executed", "{body}");
    assert_eq!(body["approval"]["result"]["added"], true, "{body}");
    assert_eq!(f.truth().writes.len(), 1);
    // Replaying the approval (or denying it now) runs nothing.
    for verb in ["approve", "deny"] {
        let (status, body) = d.post(&format!("/v1/approvals/{id}/{verb}"), "").await;
        assert_eq!(status, 409, "{verb}: {body}");
        assert_eq!(body["error"]["code"], "already-decided");
    }
    assert_eq!(f.truth().writes.len(), 1, "a replay must not write twice");

    // Denied: never runs.
    let (_, body) = d.post("/v1/connectors/atera/invoke", &ask("Wipe it")).await;
    let denied = body["approval"]["id"].as_str().expect("id").to_string();
    let (status, body) = d.post(&format!("/v1/approvals/{denied}/deny"), "").await;
    assert_eq!(
        (status, &body["approval"]["status"]),
        (200, &json!("denied"))
    );
    let (status, _) = d.post(&format!("/v1/approvals/{denied}/approve"), "").await;
    assert_eq!(status, 409);
    assert_eq!(f.truth().writes.len(), 1);

    // The approval, its decision and the calls it made share one id in the audit log.
    let (_, audit) = d.get("/v1/audit?connector=atera&limit=1000").await;
    let rows: Vec<_> = audit["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["invocation"] == id.as_str())
        .collect();
    let has = |event: &str, decision: &str| {
        rows.iter()
            .any(|r| r["event"] == event && r["decision"] == decision)
    };
    assert!(has("approval", "pending"), "{rows:#?}");
    assert!(has("approval", "approved"), "{rows:#?}");
    assert!(has("invoke", "ok"), "{rows:#?}");
    assert!(
        rows.iter()
            .any(|r| r["event"] == "http" && r["method"] == "POST" && r["decision"] == "allow"),
        "{rows:#?}"
    );
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_outside_an_approved_write_action_are_refused_and_the_cli_flow_works() {
    let echo = spawn_echo_server().await;
    let port = echo.port();
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "probe"
component = "{}"

[[grant]]
connector = "probe"
url = "http://127.0.0.1:{port}/"
methods = ["GET", "POST"]
allow_private = true
writes = true
"#,
        component("hostile").display()
    ));
    let post = json!({"url": format!("http://127.0.0.1:{port}/x"), "method": "POST", "body": "hi"})
        .to_string();
    // An ordinary action may not write through a writes grant.
    let out = env.airlock(&["invoke", "probe", "fetch", &post], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("forbidden") || stderr.contains("denied"),
        "{stderr}"
    );
    // The write action waits for an approval (exit 10: nothing ran yet)...
    let out = env.airlock(&["invoke", "probe", "write", &post], None);
    assert_eq!(
        out.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = v["approval"]["id"].as_str().expect("id").to_string();
    let out = env.airlock(&["approvals", "list", "--status", "pending"], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
    // ...which its own requester may not give, unless the config allows self-approval...
    let out = env.airlock(&["approvals", "approve", &id], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("may not approve"), "{stderr}");
    let text = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        format!("{text}\n[approvals]\nallow_self_approval = true\n"),
    )
    .expect("config");
    // ...and runs once approved.
    let out = env.airlock(&["approvals", "approve", &id], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["approval"]["status"], "executed", "{v}");
    assert_eq!(v["approval"]["result"]["status"], 200, "{v}");
    let out = env.airlock(&["approvals", "approve", &id], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already decided"));

    let rows = audit_rows(&env);
    assert!(
        rows.iter().any(|r| r.event.decision == "deny"
            && r.event
                .reason
                .contains("allows writes only inside an approved write action")),
        "the refused write is audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_that_pre_approves_writes_runs_them_at_once() {
    let f = spawn_atera(
        "127.0.0.1:0".parse().expect("addr"),
        AteraOptions::default(),
    )
    .await
    .expect("fake");
    let env = atera_env(&f.base_url, "writes_preapproved = true");
    let d = env.serve();
    let ticket = f.truth().tickets[0].id;
    let (status, body) = d
        .post(
            "/v1/connectors/atera/invoke",
            &json!({"op": "add-comment", "input": {"ticket_id": ticket, "comment": "ok"}})
                .to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["added"], true, "{body}");
    assert_eq!(f.truth().writes.len(), 1);
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_approval_belongs_to_the_grant_that_says_so() {
    let echo = spawn_echo_server().await;
    let port = echo.port();
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "probe"
component = "{}"

[[grant]]
connector = "probe"
url = "http://127.0.0.1:{port}/pre/"
methods = ["POST"]
allow_private = true
writes = true
writes_preapproved = true

[[grant]]
connector = "probe"
url = "http://127.0.0.1:{port}/other/"
methods = ["POST"]
allow_private = true
writes = true
"#,
        component("hostile").display()
    ));
    let d = env.serve();
    let write = |path: &str| {
        json!({"op": "write", "input": {"url": format!("http://127.0.0.1:{port}{path}"), "method": "POST", "body": "x"}})
            .to_string()
    };
    // The other writes grant does not pre-approve: the write waits for a decision.
    let (status, body) = d
        .post("/v1/connectors/probe/invoke", &write("/other/x"))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["approval"]["status"], "pending", "{body}");
    d.stop();
    let rows = audit_rows(&env);
    assert!(
        !rows
            .iter()
            .any(|r| r.event.event == "http" && r.event.path.as_deref() == Some("/other/x")),
        "nothing was sent before an approval"
    );

    // With only pre-approving writes grants the action runs at once, and only through them.
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "probe"
component = "{}"

[[grant]]
connector = "probe"
url = "http://127.0.0.1:{port}/pre/"
methods = ["POST"]
allow_private = true
writes = true
writes_preapproved = true
"#,
        component("hostile").display()
    ));
    let d = env.serve();
    let (status, body) = d
        .post("/v1/connectors/probe/invoke", &write("/pre/x"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["status"], 200, "{body}");
    d.stop();
}
