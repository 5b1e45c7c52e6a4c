//! Webhooks out end to end: the daemon pushes the change feed to a receiver that verifies every
//! signature with the Standard Webhooks reference library (PyPI `standardwebhooks`) and fails
//! 30 % of deliveries; across a kill -9 of the daemon mid-way, the receiver still gets every
//! change (at least once; deduplicated by `webhook-id`, exactly once). A receiver that always
//! fails dead-letters deliveries after `max_attempts` (and a retry sends one again), and a
//! webhook may not reach a loopback address unless it allows private ones.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use airlock_tests::*;
use fake_saas::{AteraOptions, spawn_atera};
use serde_json::Value;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwc2VjcmV0LWtleQ==";

/// The Python receiver; killed on drop.
struct Receiver {
    child: Child,
    url: String,
    out: PathBuf,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn receiver(dir: &Path, name: &str, fail_rate: f64) -> Receiver {
    let python = root().join("target/polyglot/venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run `make test`",
        python.display()
    );
    let out = dir.join(format!("{name}.jsonl"));
    let mut child = Command::new(python)
        .arg(root().join("tests/integration/python/webhook_receiver.py"))
        .args(["--secret", SECRET, "--fail-rate", &fail_rate.to_string()])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .spawn()
        .expect("receiver");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("receiver line");
    let url = line.trim().rsplit(' ').next().expect("url").to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    Receiver { child, url, out }
}

/// What the receiver accepted: webhook-id → payload (the last of duplicates), how many
/// accepted deliveries in all, and signature failures.
fn received(r: &Receiver) -> (BTreeMap<String, Value>, usize, Vec<String>) {
    let text = std::fs::read_to_string(&r.out).unwrap_or_default();
    let (mut by_id, mut accepted, mut bad) = (BTreeMap::new(), 0, Vec::new());
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("receiver line");
        if let Some(b) = v["bad_signature"].as_str() {
            bad.push(b.to_string());
            continue;
        }
        accepted += 1;
        by_id.insert(
            v["id"].as_str().expect("id").to_string(),
            v["payload"].clone(),
        );
    }
    (by_id, accepted, bad)
}

fn webhook(name: &str, url: &str, extra: &str) -> String {
    format!(
        r#"
[[webhook]]
name = "{name}"
url = "{url}/hooks"
secret = "secret:{name}_secret"
connectors = ["atera"]
kinds = ["ticket"]
allow_insecure = true
backoff = "50ms"
{extra}
"#
    )
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_reaches_a_flaky_receiver_once_deduplicated_across_a_kill_9() {
    let f = spawn_atera(
        "127.0.0.1:0".parse().expect("addr"),
        AteraOptions::default(),
    )
    .await
    .expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let r = receiver(dir.path(), "ticketzero", 0.3);
    let extra = "allow_private = true\nmax_attempts = 50";
    let env = Env::new(&format!(
        "{}{}",
        atera_config(&f.base_url),
        webhook("ticketzero", &r.url, extra)
    ));
    env.set_secret("atera_key", &AteraOptions::default().api_key);
    env.set_secret("ticketzero_secret", SECRET);
    let d = env.serve();
    let (status, body) = d.post("/v1/sync/atera", "").await;
    assert_eq!(status, 202, "{body}");
    // Kill -9 once some deliveries are in, while others wait for a retry.
    wait_for("first deliveries", Duration::from_secs(60), || {
        received(&r).0.len() >= 20
    });
    let mut d = d;
    d.child.kill().expect("kill -9");
    let _ = d.child.wait();
    let before = received(&r).0.len();

    let d = env.serve();
    let technician = env.create_token("tech", "default", &["atera-technicians"], false);
    // Finish the sync the kill may have cut, then change tickets and sync again.
    let (status, _) = d.post("/v1/sync/atera", "").await;
    assert_eq!(status, 202);
    let feed_of = |v: &Value| -> BTreeSet<i64> {
        v["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .map(|c| c["seq"].as_i64().expect("seq"))
            .collect()
    };
    // The run after the restart may add changes, so the feed is read again each time.
    let until = Instant::now() + Duration::from_secs(120);
    let want = loop {
        // Atera tickets are read by the account's technicians (docs/connectors/atera.md).
        let (_, feed) = http_auth(
            "GET",
            &format!(
                "{}/v1/changes?after=0&connector=atera&kind=ticket&limit=1000",
                d.base
            ),
            Some(&technician),
            None,
        )
        .await;
        let want = feed_of(&feed);
        let got: BTreeSet<i64> = received(&r)
            .0
            .values()
            .map(|p| p["data"]["seq"].as_i64().expect("seq"))
            .collect();
        if want.len() >= f.truth().tickets.len() && got == want {
            break want;
        }
        assert!(
            Instant::now() < until,
            "not every change delivered: {} of {} (missing {:?})",
            got.len(),
            want.len(),
            want.difference(&got).take(10).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (by_id, accepted, bad) = received(&r);
    assert!(
        bad.is_empty(),
        "signatures that failed verification: {bad:?}"
    );
    // Deduplicated by webhook-id: exactly one id per change, and each payload says what the
    // feed says.
    let seqs: Vec<i64> = by_id
        .values()
        .map(|p| p["data"]["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs.len(), want.len(), "one webhook-id per change");
    for p in by_id.values() {
        assert_eq!(p["data"]["connector"], "atera");
        assert_eq!(p["data"]["kind"], "ticket");
        assert!(
            p["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("document."))
        );
    }
    assert!(before > 0 && accepted >= by_id.len());
    // The deliveries' state is in the API, and every attempt is audited.
    let until = Instant::now() + Duration::from_secs(30);
    let hooks = loop {
        let (status, hooks) = d.get("/v1/webhooks").await;
        assert_eq!(status, 200, "{hooks}");
        // The last outcomes may still be being recorded.
        if hooks["webhooks"][0]["delivered"].as_u64() == Some(want.len() as u64) {
            break hooks;
        }
        assert!(Instant::now() < until, "{hooks}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let h = &hooks["webhooks"][0];
    assert_eq!(h["name"], "ticketzero");
    assert_eq!(h["pending"].as_u64(), Some(0), "{hooks}");
    assert!(!hooks.to_string().contains(SECRET));
    drop(d);
    let rows = audit_rows(&env);
    let attempts = rows.iter().filter(|r| r.event.event == "webhook").count();
    assert!(
        attempts > want.len(),
        "failed attempts are audited too: {attempts}"
    );
    for (path, bytes) in all_files(&env.data_dir()) {
        assert!(
            !contains(&bytes, SECRET),
            "signing secret in {}",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_deliveries_are_dead_lettered_and_private_addresses_need_allowing() {
    let f = spawn_atera(
        "127.0.0.1:0".parse().expect("addr"),
        AteraOptions::default(),
    )
    .await
    .expect("fake");
    let dir = tempfile::tempdir().expect("dir");
    let down = receiver(dir.path(), "down", 1.0);
    let open = receiver(dir.path(), "open", 0.0);
    let env = Env::new(&format!(
        "{}{}{}",
        atera_config(&f.base_url),
        webhook("down", &down.url, "allow_private = true\nmax_attempts = 2"),
        // Loopback without allow_private: refused by the address rules, never sent.
        webhook("blocked", &open.url, "max_attempts = 1"),
    ));
    env.set_secret("atera_key", &AteraOptions::default().api_key);
    env.set_secret("down_secret", SECRET);
    env.set_secret("blocked_secret", SECRET);
    let d = env.serve();
    let (status, _) = d.post("/v1/sync/atera", "").await;
    assert_eq!(status, 202);
    let tickets = f.truth().tickets.len() as u64;
    let mut hooks = Value::Null;
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        hooks = d.get("/v1/webhooks").await.1;
        let dead = |i: usize| hooks["webhooks"][i]["dead"].as_u64().unwrap_or(0);
        if dead(0) == tickets && dead(1) == tickets {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for h in hooks["webhooks"].as_array().expect("webhooks") {
        assert_eq!(h["dead"].as_u64(), Some(tickets), "{hooks}");
        assert_eq!(h["delivered"].as_u64(), Some(0), "{hooks}");
    }
    assert!(
        hooks["webhooks"][1]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("127.0.0.1")
                || e.contains("private")
                || e.contains("loopback")),
        "{hooks}"
    );
    assert_eq!(
        received(&open).1,
        0,
        "a blocked webhook never reached the receiver"
    );
    let (status, list) = d
        .get("/v1/webhooks/down/deliveries?status=dead&limit=1")
        .await;
    assert_eq!(status, 200, "{list}");
    let one = &list["deliveries"][0];
    assert_eq!(one["attempts"], 2, "{list}");
    assert_eq!(one["last_status"], 500, "{list}");
    // A retry puts it back in line; it fails again (the receiver is still down) and is dead
    // again after its attempts.
    let id = one["id"].as_str().expect("id");
    let (_, _, text) = http_raw("GET", &format!("{}/metrics", d.base), None).await;
    for line in [
        "airlock_webhook_attempts_total{webhook=\"down\",outcome=\"dead\"}",
        "airlock_webhook_attempts_total{webhook=\"down\",outcome=\"retry\"}",
        "airlock_webhook_attempts_total{webhook=\"blocked\",outcome=\"dead\"}",
    ] {
        assert!(text.contains(line), "{line} missing");
    }
    let (status, body) = d
        .post(&format!("/v1/webhooks/down/deliveries/{id}/retry"), "")
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = d
        .post(&format!("/v1/webhooks/down/deliveries/{id}/retry"), "")
        .await;
    assert_eq!(status, 404, "only a dead delivery can be retried");
    let (status, _) = d.get("/v1/webhooks/nope/deliveries").await;
    assert_eq!(status, 404);
    let (status, _) = d.get("/v1/webhooks/down/deliveries?status=lost").await;
    assert_eq!(status, 400);
}
