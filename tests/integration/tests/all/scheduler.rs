//! The sync scheduler of `airlock serve`: every interval it runs each scheduled stream again
//! (incrementally), its work is audited as `daemon:scheduler`, and a rate-limited run waits
//! until the upstream's `Retry-After` before the stream is asked again.

use std::time::{Duration, Instant};

use airlock_tests::*;
use fake_saas::{ConfluenceOptions, FaultKind, FaultPlan, spawn_confluence};
use serde_json::Value;

async fn pages_state(d: &Daemon) -> Value {
    let (status, v) = d.get("/v1/sync").await;
    assert_eq!(status, 200, "{v}");
    v["streams"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["connector"] == "confluence" && s["stream"] == "pages")
        })
        .cloned()
        .unwrap_or(Value::Null)
}

async fn wait_for(d: &Daemon, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = pages_state(d).await;
        if ok(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; state: {s:#}\nlog:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_runs_each_interval_as_daemon_scheduler_and_waits_out_a_rate_limit() {
    let f = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions::default(),
    )
    .await
    .expect("fake");
    let env = Env::new(&format!(
        r#"
[[connector]]
id = "confluence"
component = "{}"
sync = {{ interval = "1s", streams = ["pages"] }}
permissions = "tenant"
[connector.settings]
# The runs' counts are page counts: no permission sweep (tests/all/permissions.rs has those).
permission_sync = "off"
base_url = "{base}"

[[grant]]
connector = "confluence"
url = "{base}/wiki/"
methods = ["GET"]
allow_private = true
allow_insecure = true
auth = {{ type = "basic", username = "demo@example.com", password = "secret:confluence_token" }}
"#,
        component("confluence").display(),
        base = f.base_url
    ));
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let d = env.serve();

    // The first scheduled run stores every page.
    let first = wait_for(&d, "the first run", |s| s["records"] == 120).await;
    assert_eq!(first["last_run_upserts"], 120, "{first}");

    // A later run, on its own, picks up exactly what changed upstream.
    f.update_pages(3);
    wait_for(&d, "an interval run with the 3 updates", |s| {
        s["last_run_upserts"] == 3 && s["running"] == false
    })
    .await;

    // Rate-limited: every page request answers 429 with Retry-After: 4 for a while.
    let limited = FaultPlan {
        rate: 1.0,
        kinds: vec![FaultKind::RateLimited],
        paths: vec!["/wiki/api/v2/pages".into()],
        retry_after_secs: 4,
        ..FaultPlan::default()
    };
    f.set_faults(limited);
    let s = wait_for(&d, "a rate-limited run", |s| s["resume_after"].is_string()).await;
    f.set_faults(FaultPlan::default());
    let resume = s["resume_after"].as_str().unwrap_or_default().to_string();
    let resume_at = humantime_parse(&resume);
    let sent = f.requests().total;
    // Until the resume time nothing is sent; after it the stream runs again and succeeds.
    while std::time::SystemTime::now() + Duration::from_millis(700) < resume_at {
        assert_eq!(
            f.requests().total,
            sent,
            "nothing is sent before {resume}; log:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f.update_pages(1);
    let after = wait_for(&d, "a successful run after the resume time", |s| {
        s["resume_after"].is_null()
            && s["last_success_at"]
                .as_str()
                .is_some_and(|t| humantime_parse(t) >= resume_at)
    })
    .await;
    // It resumed from the committed cursor: the updated pages, not the whole space again.
    let upserts = after["last_run_upserts"].as_i64().unwrap_or(0);
    assert!((1..120).contains(&upserts), "{after}");

    // Every scheduled invocation is the scheduler's, and one run per stream at a time: no
    // invocation of the stream started before the previous one ended.
    let rows = audit_rows(&env);
    let invokes: Vec<_> = rows
        .iter()
        .filter(|r| {
            r.event.event == "invoke"
                && r.event.connector == "confluence"
                && r.event.reason.starts_with("sync")
        })
        .collect();
    assert!(invokes.len() >= 3, "{} invoke rows", invokes.len());
    for r in &invokes {
        assert_eq!(
            r.event.principal.as_deref(),
            Some("daemon:scheduler"),
            "{:?}",
            r.event
        );
    }
    let span = |r: &&airlock::store::audit::AuditRow| {
        let end = humantime_parse(&r.ts);
        let took = Duration::from_secs_f64(r.event.latency_ms.unwrap_or(0.0) / 1000.0);
        (end - took, end)
    };
    for pair in invokes.windows(2) {
        let (_, prev_end) = span(&pair[0]);
        let (start, _) = span(&pair[1]);
        assert!(
            start + Duration::from_millis(100) >= prev_end,
            "overlapping runs: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
    d.stop();
}

fn humantime_parse(ts: &str) -> std::time::SystemTime {
    humantime::parse_rfc3339_weak(ts).unwrap_or_else(|e| panic!("time {ts}: {e}"))
}
