//! `airlock audit verify` passes on an untouched log and reports a row edited, deleted or
//! inserted by hand with sqlite3.

use airlock_tests::*;
use serde_json::json;

fn sql(db: &std::path::Path, statement: &str) {
    // Prefer the sqlite3 shell (what an attacker would use); fall back to the library.
    let shell = std::process::Command::new("sqlite3")
        .arg(db)
        .arg(statement)
        .status();
    if !matches!(shell, Ok(s) if s.success()) {
        let c = rusqlite::Connection::open(db).expect("open");
        c.execute_batch(statement).expect("sql");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_detects_hand_edits() {
    let echo = spawn_echo_server().await;
    let env = Env::new(&format!(
        "[[connector]]\nid = \"h\"\ncomponent = \"{}\"\n[[grant]]\nconnector = \"h\"\nurl = \"http://127.0.0.1:{}/\"\nallow_private = true\n",
        component("hostile").display(),
        echo.port()
    ));
    for i in 0..4 {
        let (ok, _, err) = env.invoke(
            "h",
            "fetch",
            &json!({"url": format!("http://127.0.0.1:{}/p{i}", echo.port())}).to_string(),
        );
        assert!(ok, "{err}");
    }
    let verify = || {
        let out = env.airlock(&["audit", "verify"], None);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, out) = verify();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("audit log intact: 12 rows"),
        "4 invocations x (load info + invoke + http) = 12 rows: {out}"
    );

    let db = env.data_dir().join("airlock.db");
    let backup = std::fs::read(&db).expect("read db");
    // Checkpoint so the edit below lands in the main file the way a hand edit would.
    sql(&db, "PRAGMA wal_checkpoint(TRUNCATE);");

    sql(&db, "UPDATE audit SET status = 500 WHERE seq = 2;");
    let (code, out) = verify();
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("row 2") && out.contains("edited"), "{out}");

    sql(
        &db,
        "UPDATE audit SET status = 200 WHERE seq = 2; DELETE FROM audit WHERE seq = 5;",
    );
    let (code, out) = verify();
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("missing"), "{out}");

    sql(
        &db,
        "INSERT INTO audit SELECT 5, ts, connector, invocation, event, 'allow', 'forged', method, scheme, host, port, path, status, latency_ms, bytes, prev_hash, hash, principal FROM audit WHERE seq = 4;",
    );
    let (code, out) = verify();
    assert_eq!(code, Some(3), "{out}");
    drop(backup);
}

/// The `hostile` probe as connector `h`, reaching the echo server (GET and approved writes).
fn probe_env(port: u16) -> Env {
    Env::new(&format!(
        r#"
[[connector]]
id = "h"
component = "{}"

[[grant]]
connector = "h"
url = "http://127.0.0.1:{port}/"
methods = ["GET", "POST"]
allow_private = true
writes = true
"#,
        component("hostile").display()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_cli_sync_and_approval_rows_name_who_asked() {
    let echo = spawn_echo_server().await;
    let port = echo.port();
    let env = probe_env(port);
    let alice = env.create_token("alice", "default", &[], false);
    let d = env.serve();
    let invoke = |op: &str, method: &str| {
        json!({"op": op, "input": {"url": format!("http://127.0.0.1:{port}/{op}"), "method": method}})
            .to_string()
    };
    let url = format!("{}/v1/connectors/h/invoke", d.base);

    // Alice invokes an action, and asks for a write that an admin then approves.
    let (status, v) = http_auth("POST", &url, Some(&alice), Some(invoke("fetch", "GET"))).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = http_auth("POST", &url, Some(&alice), Some(invoke("write", "POST"))).await;
    assert_eq!(status, 202, "{v}");
    let approval = v["approval"]["id"].as_str().expect("id").to_string();
    let (status, v) = d
        .post(&format!("/v1/approvals/{approval}/approve"), "")
        .await;
    assert_eq!(
        (status, &v["approval"]["status"]),
        (200, &json!("executed")),
        "{v}"
    );
    // The admin triggers a sync.
    let (status, v) = d.post("/v1/sync/h", "").await;
    assert_eq!(status, 202, "{v}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, s) = d.get("/v1/sync").await;
        let done = s["streams"].as_array().is_some_and(|a| {
            a.iter()
                .any(|s| s["stream"] == "items" && s["records"] == 2 && s["running"] == false)
        });
        if done {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sync did not finish: {s}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Alice's rows, found by the principal filter: her invocation with its outbound request,
    // and her request for the write.
    let (_, v) = d.get("/v1/audit?principal=token:alice&limit=1000").await;
    let rows = v["rows"].as_array().expect("rows").clone();
    assert!(rows.iter().all(|r| r["principal"] == "token:alice"), "{v}");
    let has =
        |rows: &[serde_json::Value], event: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
            rows.iter().any(|r| r["event"] == event && pred(r))
        };
    assert!(
        has(&rows, "invoke", &|r| r["reason"] == "action:fetch"),
        "{v}"
    );
    assert!(
        has(&rows, "http", &|r| r["path"] == "/fetch"
            && r["decision"] == "allow"),
        "{v}"
    );
    assert!(
        has(&rows, "approval", &|r| r["decision"] == "pending"),
        "{v}"
    );
    // The admin's: the decision, the approved run (and its write), the sync it triggered.
    let (_, v) = d
        .get("/v1/audit?principal=token:test-admin&limit=1000")
        .await;
    let rows = v["rows"].as_array().expect("rows").clone();
    assert!(
        has(&rows, "approval", &|r| r["decision"] == "approved"),
        "{v}"
    );
    assert!(
        has(&rows, "http", &|r| r["method"] == "POST"
            && r["invocation"] == approval.as_str()),
        "{v}"
    );
    assert!(
        has(&rows, "invoke", &|r| r["reason"] == "sync:items"),
        "{v}"
    );
    d.stop();

    // The CLI names the OS user, in the rows and in `audit tail`.
    let (ok, _, err) = env.invoke(
        "h",
        "fetch",
        &json!({"url": format!("http://127.0.0.1:{port}/cli")}).to_string(),
    );
    assert!(ok, "{err}");
    let rows = audit_rows(&env);
    let cli_http = rows
        .iter()
        .find(|r| r.event.event == "http" && r.event.path.as_deref() == Some("/cli"))
        .expect("the CLI's outbound row");
    assert!(
        cli_http
            .event
            .principal
            .as_deref()
            .is_some_and(|p| p.starts_with("cli:")),
        "{cli_http:?}"
    );
    let tail = env.airlock(&["audit", "tail", "-n", "5"], None);
    assert!(String::from_utf8_lossy(&tail.stdout).contains("[by cli:"));
    // Rows with a principal still chain and verify.
    let out = env.airlock(&["audit", "verify"], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn creating_and_revoking_a_token_is_audited_without_the_token() {
    let env = Env::new("");
    let token = env.create_token("dora", "acme", &["ops"], true);
    let out = env.airlock(&["tokens", "list", "--json"], None);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = list[0]["id"].as_str().expect("token id").to_string();
    let out = env.airlock(&["tokens", "revoke", "dora"], None);
    assert!(out.status.success());

    let rows = audit_rows(&env);
    let row = |decision: &str| {
        rows.iter()
            .find(|r| r.event.event == "token" && r.event.decision == decision)
            .unwrap_or_else(|| panic!("no token/{decision} row in {rows:#?}"))
    };
    for decision in ["created", "revoked"] {
        let r = row(decision);
        assert_eq!(r.event.invocation, id);
        for part in [id.as_str(), "`dora`", "`acme`", "admin: true"] {
            assert!(r.event.reason.contains(part), "{part}: {}", r.event.reason);
        }
        assert!(
            r.event
                .principal
                .as_deref()
                .is_some_and(|p| p.starts_with("cli:")),
            "{r:?}"
        );
    }
    for r in &rows {
        let text = serde_json::to_string(r).expect("row json");
        assert!(
            !text.contains(&token),
            "the token itself is in an audit row"
        );
    }
}
