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
        "INSERT INTO audit SELECT 5, ts, connector, invocation, event, 'allow', 'forged', method, scheme, host, port, path, status, latency_ms, bytes, prev_hash, hash FROM audit WHERE seq = 4;",
    );
    let (code, out) = verify();
    assert_eq!(code, Some(3), "{out}");
    drop(backup);
}
