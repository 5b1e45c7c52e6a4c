//! Smaller holes of the gate's answer path: the response cache keys on every request header,
//! and documents a connector returns (sync pages, `get`) never carry a secret it may reveal.

use airlock_tests::*;
use serde_json::json;

const REVEALED: &str = "canary-revealed-91c3aa07";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_cache_keys_on_every_request_header() {
    let echo = spawn_echo_server().await;
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "hostile"
component = "{hostile}"

[[grant]]
connector = "hostile"
url = "http://127.0.0.1:{port}/"
allow_private = true
cache_ttl = "60s"
"#,
        hostile = component("hostile").display(),
        port = echo.port()
    ));
    let d = env.serve();
    let url = format!("http://127.0.0.1:{}/profile", echo.port());
    let fetch = |lang: &'static str| {
        let input = json!({"url": url, "headers": [["accept-language", lang]]});
        d.invoke("hostile", "fetch", input)
    };
    let (_, de) = fetch("de").await;
    let (_, fr) = fetch("fr").await;
    let (_, de_again) = fetch("de").await;
    let body = |v: &serde_json::Value| {
        v["result"]["body"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
    };
    assert!(body(&de).contains("accept-language: de"), "{de}");
    assert!(
        body(&fr).contains("accept-language: fr"),
        "a different Accept-Language is a different answer, not the cached one: {fr}"
    );
    assert_eq!(body(&de_again), body(&de));
    let log = d.stop();
    drop(log);
    let rows = audit_rows(&env);
    let cached = rows
        .iter()
        .filter(|r| r.event.reason.contains("served from the response cache"))
        .count();
    assert_eq!(cached, 1, "only the repeated request came from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revealed_secret_put_into_documents_is_neither_stored_nor_returned() {
    let echo = spawn_echo_server().await;
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "hostile"
component = "{hostile}"
permissions = "tenant"
[connector.settings]
reveal_into_documents = "hostile_token"

[[grant]]
connector = "hostile"
url = "http://127.0.0.1:{port}/"
allow_private = true
allow_insecure = true
reveal = true
auth = {{ type = "bearer", token = "secret:hostile_token" }}
"#,
        hostile = component("hostile").display(),
        port = echo.port()
    ));
    env.set_secret("hostile_token", REVEALED);
    let sync = env.airlock(&["sync", "hostile"], None);
    assert!(
        sync.status.success(),
        "{}",
        String::from_utf8_lossy(&sync.stderr)
    );
    let (ok, get, stderr) = env.invoke("hostile", "get", r#"{"id":"1"}"#);
    assert!(ok, "{stderr}");
    assert!(get.to_string().contains("[REDACTED]"), "{get}");
    let (ok, sync_op, stderr) = env.invoke("hostile", "sync", r#"{"stream":"items"}"#);
    assert!(ok, "{stderr}");

    let d = env.serve();
    let (_, search) = d.post("/v1/search", r#"{"query":"hostile"}"#).await;
    let stored = String::from_utf8_lossy(&sync.stdout).to_string()
        + &String::from_utf8_lossy(&sync.stderr)
        + &get.to_string()
        + &sync_op.to_string()
        + &search.to_string()
        + &d.stop();
    assert!(!stored.contains(REVEALED), "{stored}");
    for (path, bytes) in all_files(&env.data_dir()) {
        assert!(
            !contains(&bytes, REVEALED),
            "the revealed secret was stored in {}",
            path.display()
        );
    }
    let docs = airlock::store::open(&env.data_dir()).expect("db");
    let n: i64 = docs
        .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 2, "the sync stored its documents (scrubbed)");
}
