//! The change feed: every committed upsert and delete once, in commit order, resumable from any
//! sequence across SIGKILLed syncs; through the API scoped to the caller's tenant and filtered by
//! each document's ACL, with a long poll that answers as soon as a change is committed.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use airlock_tests::*;
use fake_saas::{ConfluenceOptions, spawn_confluence};
use serde_json::Value;

/// `airlock changes --after N` as parsed JSON lines.
fn changes_after(env: &Env, after: i64) -> Vec<Value> {
    let out = env.airlock(&["changes", "--after", &after.to_string()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_resuming_across_sigkilled_syncs_gets_every_change_once_in_order() {
    let options = ConfluenceOptions {
        pages: 1000,
        ..ConfluenceOptions::default()
    };
    let fake = spawn_confluence("127.0.0.1:0".parse().expect("addr"), options)
        .await
        .expect("fake");
    // Every page of the listing takes 10 ms, so a whole run (100 pages) outlasts each kill's delay.
    fake.set_faults(fake_saas::FaultPlan {
        rate: 1.0,
        kinds: vec![fake_saas::FaultKind::Latency],
        latency_ms: 10,
        ..Default::default()
    });
    let body = confluence_config(&fake.base_url)
        .replace("base_url = ", "page_limit = \"10\"\nbase_url = ");
    let env = Env::new(&body);
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);

    // 20 rounds: the daemon starts a full run of the stream, and is SIGKILLed in the middle of
    // it after a seeded pseudo-random delay; the upstream changes between rounds. The follower
    // reads between the crashes, each time from the last sequence it saw.
    let mut seen: Vec<Value> = Vec::new();
    let mut last = 0i64;
    let mut seed = 0xfeed_u64;
    let mut kills_mid_run = 0;
    let mut rounds_with_changes = 0;
    for _ in 0..20 {
        let mut d = env.serve();
        let (status, v) = http_auth(
            "POST",
            &format!("{}/v1/sync/confluence", d.base),
            Some(&d.token),
            Some(r#"{"stream": "pages", "full": true}"#.into()),
        )
        .await;
        assert_eq!(status, 202, "{v}");
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis(60 + (seed >> 33) % 500)).await;
        let (_, state) = d.get("/v1/sync").await;
        let running = state["streams"].as_array().is_some_and(|s| {
            s.iter()
                .any(|s| s["stream"] == "pages" && s["running"] == true)
        });
        d.child.kill().expect("SIGKILL");
        let _ = d.child.wait();
        kills_mid_run += usize::from(running);
        let new = changes_after(&env, last);
        rounds_with_changes += usize::from(!new.is_empty());
        for c in new {
            last = c["seq"].as_i64().expect("seq");
            seen.push(c);
        }
        fake.mutate(fake_saas::Mutation {
            update: 3,
            create: 2,
            ..Default::default()
        });
    }
    assert_eq!(kills_mid_run, 20, "every kill must land in a running sync");
    eprintln!(
        "{rounds_with_changes} of 20 killed runs committed changes ({} in all)",
        seen.len()
    );
    assert!(
        rounds_with_changes >= 10,
        "the killed runs must commit changes ({rounds_with_changes} of 20 did)"
    );
    fake.set_faults(fake_saas::FaultPlan::default());
    let out = env.airlock(&["sync", "confluence", "--stream", "pages"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for c in changes_after(&env, last) {
        seen.push(c);
    }

    // Exactly the feed as committed: nothing lost or repeated by resuming, strictly in order.
    let whole = changes_after(&env, 0);
    assert_eq!(seen, whole, "resuming lost or repeated changes");
    let seqs: Vec<i64> = seen
        .iter()
        .map(|c| c["seq"].as_i64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "not in commit order");
    // Every page upstream was committed and is in the feed.
    let upserted: BTreeSet<String> = seen
        .iter()
        .filter(|c| c["op"] == "upsert")
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect();
    let truth: BTreeSet<String> = fake.truth().pages.iter().map(|p| p.id.clone()).collect();
    assert_eq!(
        upserted, truth,
        "the feed holds every page the upstream has"
    );
    // Each change is what the store holds: as many upserts as the store has committed pages'
    // records, and the documents are there.
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let stored = airlock::store::documents::all(&conn, "confluence", Some("page")).expect("docs");
    assert_eq!(stored.len(), truth.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_feed_is_scoped_to_the_tenant_filtered_by_acl_and_long_polls() {
    let env = Env::new(&two_tenant_config());
    store_docs(
        &env,
        "a1",
        &[
            doc("open", "Open page", "anyone", &[]),
            doc("hr", "HR page", "hr only", &["group:hr"]),
        ],
    );
    store_docs(&env, "b1", &[doc("beta", "Beta page", "other tenant", &[])]);
    let d = env.serve();
    let alice = env.create_token("alice", "acme", &["group:hr"], false);
    let bob = env.create_token("bob", "acme", &[], false);
    let get = |token: String, query: &str| {
        let url = format!("{}/v1/changes{query}", d.base);
        async move { http_auth("GET", &url, Some(&token), None).await }
    };
    let ids = |v: &Value| -> HashSet<String> {
        v["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .map(|c| c["id"].as_str().expect("id").to_string())
            .collect()
    };
    let (status, a) = get(alice.clone(), "").await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(ids(&a), HashSet::from(["open".into(), "hr".into()]));
    let (_, b) = get(bob.clone(), "").await;
    assert_eq!(
        ids(&b),
        HashSet::from(["open".into()]),
        "ACL and tenant filter"
    );
    assert_eq!(a["next"], b["next"], "both move past what they may not see");
    let (status, e) = get(bob.clone(), "?connector=b1").await;
    assert_eq!(status, 404, "another tenant's connector: {e}");
    let (status, e) = get(bob.clone(), "?limit=0").await;
    assert_eq!(status, 400, "{e}");

    // A long poll answers once a change is committed (here by another process).
    let next = a["next"].as_i64().expect("next");
    let started = Instant::now();
    let poll = tokio::spawn(get(alice.clone(), &format!("?after={next}&wait=20")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    store_docs(&env, "a1", &[doc("new", "New page", "fresh", &[])]);
    let (status, p) = poll.await.expect("poll");
    assert_eq!(status, 200, "{p}");
    assert_eq!(ids(&p), HashSet::from(["new".into()]));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the poll waited {:?} after the commit",
        started.elapsed()
    );
    // With nothing new, a short wait answers empty with the same `next`.
    let after = p["next"].as_i64().expect("next");
    let (status, empty) = get(alice, &format!("?after={after}&wait=1")).await;
    assert_eq!(status, 200);
    assert_eq!(empty["changes"].as_array().map(Vec::len), Some(0));
    assert_eq!(empty["next"], after);
}
