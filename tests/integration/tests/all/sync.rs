//! Host-owned sync into the local store: a full run equals the fake's ground truth, an
//! incremental run fetches only changes, a rate limit ends a run cleanly and it resumes, a crash
//! (SIGKILL) at any point costs nothing but time, and search works locally and live.

use std::collections::BTreeMap;

use airlock::store::{documents, sync_state};
use airlock::sync::RunEnd;
use airlock_tests::*;
use fake_saas::{ConfluenceOptions, spawn_confluence};

/// The store's pages equal the fake's current pages: same ids, titles, bodies, versions.
fn assert_store_equals_truth(env: &Env, fake: &fake_saas::RunningFake) {
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let docs = documents::all(&conn, "confluence", Some("page")).expect("docs");
    let truth = fake.truth();
    let stored: BTreeMap<_, _> = docs.iter().map(|d| (d.id.clone(), d)).collect();
    assert_eq!(stored.len(), docs.len(), "duplicate documents in the store");
    let expected: BTreeMap<_, _> = truth.pages.iter().map(|p| (p.id.clone(), p)).collect();
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !stored.contains_key(*k))
        .collect();
    let extra: Vec<_> = stored
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra (deleted upstream) {extra:?}"
    );
    for (id, p) in &expected {
        let d = stored[id];
        assert_eq!(d.title, p.title, "title of {id}");
        assert_eq!(d.updated_at, p.version_created_at, "version of {id}");
        assert_eq!(norm(&d.body), norm(&p.body_text), "body of {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_then_incremental_sync_match_ground_truth() {
    let fake = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions::default(),
    )
    .await
    .expect("fake");
    let env = Env::new(&confluence_config(&fake.base_url));
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let a = start_in_process(&env).await;
    let r = a
        .sync_stream("confluence", "pages", false, |_| {})
        .await
        .expect("full run");
    assert_eq!(r.end, RunEnd::Done);
    assert_eq!(r.upserts, 120);
    assert_store_equals_truth(&env, &fake);

    let m = fake.mutate(fake_saas::Mutation {
        update: 7,
        delete: 4,
        create: 3,
        ..Default::default()
    });
    fake.reset_requests();
    let r = a
        .sync_stream("confluence", "pages", false, |_| {})
        .await
        .expect("incremental run");
    assert_store_equals_truth(&env, &fake);
    assert!(
        r.upserts >= 10 && r.upserts < 30,
        "incremental run fetched {} pages for 10 changes",
        r.upserts
    );
    assert_eq!(r.deletes, m.deleted.len() as u64);
    assert!(
        fake.requests().total <= 3,
        "incremental run made {} requests",
        fake.requests().total
    );

    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let st = sync_state::get(&conn, "confluence", "pages")
        .expect("state")
        .expect("row");
    assert!(st.last_success_at.is_some() && st.last_error.is_none() && st.cursor.is_some());

    // --full starts over but converges to the same store.
    a.sync_stream("confluence", "pages", true, |_| {})
        .await
        .expect("full again");
    assert_store_equals_truth(&env, &fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_run_ends_cleanly_and_resumes() {
    let fake = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions {
            pages: 300,
            ..ConfluenceOptions::default()
        },
    )
    .await
    .expect("fake");
    let mut body = confluence_config(&fake.base_url);
    body = body.replace("base_url = ", "page_limit = \"25\"\nbase_url = ");
    // The gate would wait a short Retry-After out and retry; with retries off the connector
    // sees the 429, as it would for a wait longer than its deadline.
    body.push_str("retry = { attempts = 1 }\n");
    let env = Env::new(&body);
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let a = start_in_process(&env).await;
    fake.set_rate_limit_every(Some(4));
    let r = a
        .sync_stream("confluence", "pages", false, |_| {})
        .await
        .expect("a rate limit is not an error");
    assert!(
        matches!(r.end, RunEnd::RateLimited { retry_after_secs } if retry_after_secs >= 1),
        "{r:?}"
    );
    assert!(r.pages >= 1, "pages before the limit are committed");
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let st = sync_state::get(&conn, "confluence", "pages")
        .expect("state")
        .expect("row");
    assert!(st.resume_after.is_some(), "resume time recorded");
    assert!(
        st.last_error.is_none(),
        "a rate limit is not recorded as a failure"
    );
    fake.set_rate_limit_every(None);
    let r2 = a
        .sync_stream("confluence", "pages", false, |_| {})
        .await
        .expect("resume");
    assert_eq!(r2.end, RunEnd::Done);
    assert!(
        r2.upserts < 300,
        "the resumed run continued from the committed cursor"
    );
    assert_store_equals_truth(&env, &fake);
}

/// A fake of 300 pages synced 10 to a request, and its environment.
async fn paged_fake(grant_extra: &str) -> (fake_saas::RunningFake, Env) {
    let fake = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions {
            pages: 300,
            ..ConfluenceOptions::default()
        },
    )
    .await
    .expect("fake");
    let body = confluence_config(&fake.base_url)
        .replace("base_url = ", "page_limit = \"10\"\nbase_url = ")
        + grant_extra;
    let env = Env::new(&body);
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    (fake, env)
}

const MID_PASS: fake_saas::Mutation = fake_saas::Mutation {
    update: 20,
    delete: 10,
    create: 5,
    restrict: Vec::new(),
    space_read: Vec::new(),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_changed_during_a_run_are_stored_when_it_reports_done() {
    let (fake, env) = paged_fake("").await;
    let a = start_in_process(&env).await;
    // Change the upstream after the 3rd of 30 pages: most changed pages are still ahead of the
    // keyset cursor and jump behind it, the created ones appear behind it.
    let r = a
        .sync_stream("confluence", "pages", false, |p| {
            if p.pages == 3 {
                fake.mutate(MID_PASS);
            }
        })
        .await
        .expect("run");
    assert_eq!(r.end, RunEnd::Done);
    assert_store_equals_truth(&env, &fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_includes_changes_made_since_the_interrupted_one() {
    // Without retries the fake's 429 reaches the connector and ends the run mid-pass, as a
    // SIGKILL would; the next run resumes that pass from the committed cursor.
    let (fake, env) = paged_fake("retry = { attempts = 1 }\n").await;
    let a = start_in_process(&env).await;
    fake.set_rate_limit_every(Some(5));
    let r = a
        .sync_stream("confluence", "pages", false, |_| {})
        .await
        .expect("run");
    assert!(
        matches!(r.end, RunEnd::RateLimited { .. }) && r.pages >= 3,
        "{r:?}"
    );
    fake.set_rate_limit_every(None);
    let m = fake.mutate(MID_PASS);
    // A new process (the grant's Retry-After pause lives in the old one), as after a crash.
    drop(a);
    let a = start_in_process(&env).await;
    let r = a
        .sync_stream("confluence", "pages", false, |_| {})
        .await
        .expect("resume");
    assert_eq!(r.end, RunEnd::Done);
    assert_eq!(r.deletes, m.deleted.len() as u64, "{r:?}");
    assert_store_equals_truth(&env, &fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_costs_nothing_but_time() {
    let fake = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions {
            pages: 6000,
            ..ConfluenceOptions::default()
        },
    )
    .await
    .expect("fake");
    // At the default 50 requests/s the full pass outlasts the kill rounds, so the mutation lands
    // mid-pass and the final run resumes a pass begun before it (see the two tests above).
    let body = confluence_config(&fake.base_url)
        .replace("base_url = ", "page_limit = \"10\"\nbase_url = ");
    let env = Env::new(&body);
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    // Kill `airlock sync` at pseudo-random moments (seeded), restarting each time.
    let kills = sync_with_random_kills(
        &env,
        &["sync", "confluence"],
        6,
        (150, 500),
        0x5eed,
        |round| {
            if round == 2 {
                // Upstream changes between crashes too.
                fake.mutate(fake_saas::Mutation {
                    update: 20,
                    delete: 10,
                    create: 5,
                    ..Default::default()
                });
            }
        },
    );
    assert!(
        kills >= 2,
        "the test must actually interrupt syncs (killed {kills} times)"
    );
    let out = env.airlock(&["sync", "confluence"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_store_equals_truth(&env, &fake);
    let out = env.airlock(&["audit", "verify"], None);
    assert!(
        out.status.success(),
        "audit chain survives SIGKILL: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_is_local_and_live_with_partial_results() {
    let fake = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions::default(),
    )
    .await
    .expect("fake");
    let env = Env::new(&confluence_config(&fake.base_url));
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let d = env.serve();
    let (status, v) = d.post("/v1/sync/confluence", "{}").await;
    assert_eq!(status, 202, "{v}");
    let mut done = false;
    for _ in 0..100 {
        let (_, v) = d.get("/v1/sync").await;
        if v["streams"][0]["last_success_at"].is_string() && v["streams"][0]["running"] == false {
            assert_eq!(v["streams"][0]["records"], 120);
            done = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(done, "triggered sync did not finish");
    let phrase = fake_saas::confluence::PLANTED_PHRASE;
    let (status, v) = d
        .post(
            "/v1/search",
            &serde_json::json!({"query": phrase}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let hits = v["hits"].as_array().expect("hits");
    assert_eq!(hits.len(), 3, "{v}");
    assert!(
        hits.iter().all(|h| h["source"] == "local"
            && h["snippet"].as_str().unwrap_or("").contains("[quarterly]"))
    );

    // Live: with the upstream down, local results still come back and the failure is named.
    fake.shutdown().await;
    let (status, v) = d
        .post(
            "/v1/search",
            &serde_json::json!({"query": phrase, "live": true, "live_timeout_ms": 3000})
                .to_string(),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["partial"], true);
    assert_eq!(v["failed"][0]["connector"], "confluence");
    assert_eq!(v["hits"].as_array().map(Vec::len), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_another_live_process_runs_is_refused_and_runs_once_it_is_free() {
    let fake = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions::default(),
    )
    .await
    .expect("fake");
    let env = Env::new(&confluence_config(&fake.base_url));
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    // Another live process of this machine (a daemon sharing the data directory) holds the job.
    let mut daemon = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("sleep");
    let holder = airlock::store::leases::owner_for(daemon.id(), "daemon");
    let mut conn = airlock::store::open(&env.data_dir()).expect("db");
    let lease = airlock::store::leases::acquire(
        &mut conn,
        "confluence",
        "pages",
        &holder,
        std::time::Duration::from_secs(600),
    )
    .expect("lease")
    .expect("free");
    let out = env.airlock(&["sync", "confluence", "--stream", "pages"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("running in another process") && err.contains(&holder),
        "{err}"
    );
    assert!(
        documents::all(&conn, "confluence", None)
            .unwrap()
            .is_empty()
    );

    // The holder gives the job back: the stream runs.
    airlock::store::leases::release(&conn, &lease).expect("release");
    let out = env.airlock(&["sync", "confluence", "--stream", "pages"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        documents::all(&conn, "confluence", None).unwrap().len(),
        120
    );
    // The run released its own lease when it ended.
    let leases = airlock::store::leases::all(&conn).unwrap();
    assert!(leases.iter().all(|l| l.owner.is_none()), "{leases:?}");
    daemon.kill().unwrap();
    let _ = daemon.wait();
}

/// Connector `b`: the `broken` fixture against an echo upstream, its documents saying which
/// `sync` call of their instance they came from, plus `settings` (TOML lines).
async fn counting_broken(settings: &str) -> Env {
    let echo = spawn_echo_server().await;
    let base = format!("http://{echo}");
    Env::new(&format!(
        r#"[[connector]]
id = "b"
component = "{}"

[connector.settings]
base_url = "{base}"
count_sync_calls = "true"
{settings}
[[grant]]
connector = "b"
url = "{base}/api/"
methods = ["GET"]
allow_private = true
"#,
        component("broken").display()
    ))
}

/// A sync run's pages are each an invocation of its own (an id and an `invoke` audit row) on
/// one kept instance; the next run (in the same process) starts on a fresh instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_pages_share_one_instance_and_the_next_run_starts_afresh() {
    let env = counting_broken("").await;
    // `broken` syncs 3 pages of 2 items; each item says which call of its instance it was.
    let expected: Vec<(String, u64)> = [1, 1, 2, 2, 3, 3]
        .iter()
        .enumerate()
        .map(|(i, calls)| ((i + 1).to_string(), *calls))
        .collect();
    let a = start_in_process(&env).await;
    for run in 1..=2 {
        let r = a.sync_stream("b", "items", true, |_| {}).await;
        assert_eq!(r.expect("run").pages, 3, "run {run}");
        a.flush();
        let conn = airlock::store::open(&env.data_dir()).expect("db");
        let mut calls: Vec<(String, u64)> = documents::all(&conn, "b", Some("item"))
            .expect("docs")
            .into_iter()
            .map(|d| {
                (
                    d.id,
                    d.metadata["instance_sync_calls"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        calls.sort_by_key(|(id, _)| id.parse::<u32>().unwrap_or(0));
        assert_eq!(calls, expected, "run {run}");
    }
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let mut pages: Vec<String> = conn
        .prepare("SELECT invocation FROM audit WHERE connector = 'b' AND event = 'invoke' AND reason LIKE 'sync%'")
        .and_then(|mut q| {
            q.query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()
        })
        .expect("audit rows");
    assert_eq!(pages.len(), 6, "one invoke row per page: {pages:?}");
    pages.sort();
    pages.dedup();
    assert_eq!(pages.len(), 6, "each page its own invocation id");
    // The gate's rows of a page on a kept instance name that page, not the instance's first.
    for page in &pages {
        assert_eq!(
            http_rows_of(&conn, page),
            1,
            "page {page}: its one request audited under its own id"
        );
    }
}

/// Runs `airlock sync b` and checks that all 6 items were stored, each page by a fresh instance;
/// the store, for more checks.
fn sync_b_on_fresh_instances(env: &Env) -> rusqlite::Connection {
    let out = env.airlock(&["sync", "b"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let docs = documents::all(&conn, "b", Some("item")).expect("docs");
    assert_eq!(docs.len(), 6, "every page stored");
    for d in &docs {
        assert_eq!(
            d.metadata["instance_sync_calls"], 1,
            "{}: each page on a fresh instance",
            d.id
        );
    }
    conn
}

/// How many `http` audit rows name `invocation`.
fn http_rows_of(conn: &rusqlite::Connection, invocation: &str) -> i64 {
    conn.query_row(
        "SELECT COUNT(*) FROM audit WHERE event = 'http' AND invocation = ?1",
        [invocation],
        |r| r.get(0),
    )
    .expect("audit")
}

/// The invocation ids of `b`'s `sync` calls that ended as `decision`.
fn sync_invocations(conn: &rusqlite::Connection, decision: &str) -> Vec<String> {
    conn.prepare(
        "SELECT invocation FROM audit WHERE connector = 'b' AND event = 'invoke' \
         AND reason LIKE 'sync%' AND decision = ?1 ORDER BY seq",
    )
    .and_then(|mut q| {
        q.query_map([decision], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()
    })
    .expect("audit rows")
}

/// A page that leaves a request behind (started, never waited for) does not hand its instance
/// to the next page: the request cannot run on, or be audited, under a later page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_leaves_a_request_behind_does_not_keep_its_instance() {
    let env = counting_broken("leak_request = \"true\"\n").await;
    let conn = sync_b_on_fresh_instances(&env);
    let pages = sync_invocations(&conn, "ok");
    assert_eq!(pages.len(), 3, "{pages:?}");
    let leaked: Vec<String> = conn
        .prepare("SELECT invocation FROM audit WHERE event = 'http' AND path = '/api/leaked'")
        .and_then(|mut q| {
            q.query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()
        })
        .expect("audit");
    // Each leaked request has its row (answered, or abandoned with its instance), under its
    // own page.
    assert_eq!(
        leaked.len(),
        3,
        "each leaked request has its row: {leaked:?}"
    );
    let mut named: Vec<String> = leaked.clone();
    named.sort();
    named.dedup();
    assert_eq!(named.len(), 3, "each under its own page: {leaked:?}");
    assert!(
        leaked.iter().all(|l| pages.contains(l)),
        "leaked requests audited under their pages {pages:?}: {leaked:?}"
    );
}

/// A page that crashes on the run's kept instance is run again, once, as a new invocation on a
/// fresh instance, so a connector that cannot bear reuse still finishes its run; the rest of the
/// run keeps no instance, and the page is committed under the retry's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_crashes_on_a_kept_instance_is_retried_on_a_fresh_one() {
    let env = counting_broken("panic_when_reused = \"true\"\n").await;
    let conn = sync_b_on_fresh_instances(&env);
    let crashed = sync_invocations(&conn, "error");
    assert_eq!(
        crashed.len(),
        1,
        "page 2 crashed once on the kept instance; page 3 ran on a fresh one: {crashed:?}"
    );
    let ok = sync_invocations(&conn, "ok");
    assert_eq!(ok.len(), 3, "{ok:?}");
    assert!(
        !ok.contains(&crashed[0]),
        "the retry is an invocation of its own"
    );
    // The crashed attempt's request and the retry's are each audited under their own id.
    assert_eq!(http_rows_of(&conn, &crashed[0]), 1);
    for page in &ok {
        assert_eq!(http_rows_of(&conn, page), 1, "page {page}");
    }
    let unaudited = airlock::store::audit::unaudited_data(&conn).expect("check");
    assert!(
        unaudited.is_empty(),
        "every stored page names an invocation with its invoke row: {unaudited:?}"
    );
}
