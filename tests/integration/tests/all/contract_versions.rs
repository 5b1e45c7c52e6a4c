//! Contract versioning: one host loads components built against `airlock:connector@0.1.0` (the
//! `hostile` fixture, raw wit-bindgen on the frozen `wit/connector.wit`) and `@0.2.0` (the
//! `broken` fixture through the SDK, which targets `wit/v0.2`) side by side; the 0.2.0 addition
//! (`host.progress`) shows up in the sync status and the log, rate-limited; a component from a
//! future contract is refused naming the versions this host supports, while the others serve.

use std::time::Duration;

use airlock_tests::*;
use serde_json::{Value, json};

fn connector(id: &str, wasm: &str) -> String {
    format!(
        "[[connector]]\nid = \"{id}\"\ncomponent = \"{}\"\npermissions = \"tenant\"\n",
        component(wasm).display()
    )
}

/// A `broken` (SDK, contract 0.2.0) connector against the echo upstream at `base`.
fn v2_connector(id: &str, base: &str, fault: &str) -> String {
    format!(
        r#"{}
[connector.settings]
base_url = "{base}"
fault = "{fault}"

[[grant]]
connector = "{id}"
url = "{base}/api/"
methods = ["GET"]
allow_private = true
"#,
        connector(id, "broken")
    )
}

/// Triggers a sync of every stream of `id` and waits until its `items` stream succeeded.
async fn sync_and_wait(d: &Daemon, id: &str) -> Value {
    let (status, v) = d.post(&format!("/v1/sync/{id}"), "{}").await;
    assert_eq!(status, 202, "{v}");
    for _ in 0..400 {
        let (_, v) = d.get("/v1/sync").await;
        let stream = v["streams"].as_array().and_then(|all| {
            all.iter()
                .find(|s| s["connector"] == id && s["stream"] == "items")
                .cloned()
        });
        if let Some(s) = stream
            && s["last_success_at"].is_string()
            && s["running"] == false
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sync of {id} did not finish; log:\n{}", d.log());
}

fn connector_status<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["connectors"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no connector {id} in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_daemon_serves_0_1_and_0_2_components_and_refuses_a_future_contract() {
    let echo = spawn_echo_server().await;
    let base = format!("http://{echo}");
    let env = Env::new(
        &[
            connector("v1", "hostile"),
            v2_connector("v2", &base, "none"),
            connector("future", "future_contract"),
        ]
        .join("\n"),
    );
    let d = env.serve();

    // Each connector reports the contract it was built against; the future one is refused with
    // the versions this host supports, and the other two keep serving.
    let (status, list) = d.get("/v1/connectors").await;
    assert_eq!(status, 200, "{list}");
    let v1 = connector_status(&list, "v1");
    assert_eq!(v1["status"], "ready", "{v1}");
    assert_eq!(v1["contract"], "0.1.0", "{v1}");
    let v2 = connector_status(&list, "v2");
    assert_eq!(v2["status"], "ready", "{v2}");
    assert_eq!(v2["contract"], "0.2.0", "{v2}");
    let future = connector_status(&list, "future");
    assert_eq!(future["status"], "failed", "{future}");
    let error = future["error"].as_str().unwrap_or_default();
    for needle in [
        "airlock:connector@2.0.0",
        "airlock:connector@0.1.x and airlock:connector@0.2.x",
    ] {
        assert!(error.contains(needle), "{needle:?} not in: {error}");
    }

    // Both versions sync; only the 0.2.0 one reports its own progress, the 0.1.0 one falls back
    // to the host's page counts (records) with no connector progress.
    let s1 = sync_and_wait(&d, "v1").await;
    assert_eq!(s1["records"], 2, "{s1}");
    assert!(
        s1["progress"].is_null(),
        "a 0.1.0 component has no progress: {s1}"
    );
    let s2 = sync_and_wait(&d, "v2").await;
    assert_eq!(s2["records"], 6, "{s2}");
    assert_eq!(s2["progress"]["done"], 6, "{s2}");
    assert_eq!(s2["progress"]["total"], 6, "{s2}");
    assert_eq!(s2["progress"]["message"], "page 3 of 3", "{s2}");
    assert!(s2["progress"]["at"].is_string(), "{s2}");
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains("sync progress 2/6: page 1 of 3") && l.contains("v2")),
        "the first progress report of a run is logged:\n{log}"
    );

    // Local search finds both connectors' documents, and `get` answers through either version.
    let (status, v) = d
        .post("/v1/search", &json!({"query": "item"}).to_string())
        .await;
    assert_eq!(status, 200, "{v}");
    let hits: Vec<String> = v["hits"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|h| h["connector"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(hits.iter().any(|c| c == "v1"), "{v}");
    assert!(hits.iter().any(|c| c == "v2"), "{v}");
    let (status, v) = d.invoke("v1", "get", json!({"id": "7"})).await;
    assert_eq!(status, 200, "{v}");
    assert!(v.to_string().contains("Hostile item 7"), "{v}");
    let (status, v) = d.invoke("v2", "get", json!({"id": "4"})).await;
    assert_eq!(status, 200, "{v}");
    assert!(v.to_string().contains("Item 4"), "{v}");
    // `broken` leaves live search to the SDK's default: a contract error, not a trap.
    let (status, v) = d.invoke("v2", "search", json!({"query": "x"})).await;
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("does not support `search`"), "{v}");
    let (status, v) = d.invoke("v1", "search", json!({"query": "x"})).await;
    assert_eq!(status, 200, "{v}");
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chatty_connector_cannot_flood_the_log_with_progress() {
    let echo = spawn_echo_server().await;
    let base = format!("http://{echo}");
    let env = Env::new(&v2_connector("chatty", &base, "chatty-progress"));
    let d = env.serve();
    // 3 pages × 1000 reports, plus one report per page for a stream it is not syncing.
    let s = sync_and_wait(&d, "chatty").await;
    assert_eq!(
        s["progress"]["done"], 6,
        "the status keeps the latest report: {s}"
    );
    let (_, all) = d.get("/v1/sync").await;
    assert!(
        !all.to_string().contains("not-this-stream"),
        "a report for another stream is ignored: {all}"
    );
    let log = d.stop();
    let lines = log
        .lines()
        .filter(|l| l.contains("sync progress") && l.contains("chatty"))
        .count();
    // One line per stream per 5 s; the run takes well under that, so 3000 reports log once (a
    // very slow machine may cross an interval boundary or two).
    assert!(
        (1..=3).contains(&lines),
        "{lines} progress lines for 3000 reports:\n{log}"
    );
}

#[test]
fn check_reports_each_components_contract_version() {
    let env = Env::new("");
    for (wasm, contract) in [
        ("hostile", "airlock:connector@0.1.0"),
        ("broken", "airlock:connector@0.2.0"),
    ] {
        let out = env.airlock(
            &["check", component(wasm).to_str().unwrap_or_default()],
            None,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{wasm}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(contract), "{wasm}: {stdout}");
    }
    let out = env.airlock(
        &[
            "check",
            component("future_contract").to_str().unwrap_or_default(),
        ],
        None,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("airlock:connector@2.0.0")
            && stderr.contains("airlock:connector@0.1.x and airlock:connector@0.2.x"),
        "{stderr}"
    );
}
