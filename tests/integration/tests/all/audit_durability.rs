//! The audit trail cannot be skipped: a sync page is committed only after the rows of the
//! requests that fetched it are durable (so SIGKILL loses at most the row of a request in flight,
//! never one behind a kept page), and while the audit log cannot be written no request leaves,
//! no page is committed, and the host recovers by itself once it can.

use airlock::store::documents;
use airlock_tests::*;
use fake_saas::{ConfluenceOptions, spawn_confluence};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_syncs_loses_no_audit_row_behind_a_committed_page() {
    let options = ConfluenceOptions {
        pages: 3000,
        ..ConfluenceOptions::default()
    };
    let fake = spawn_confluence("127.0.0.1:0".parse().expect("addr"), options)
        .await
        .expect("fake");
    // Small pages: many requests, many commits for the kills to land between.
    let body = confluence_config(&fake.base_url)
        .replace("base_url = ", "page_limit = \"10\"\nbase_url = ");
    let env = Env::new(&body);
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    fake.reset_requests();
    let kills = sync_with_random_kills(
        &env,
        &["sync", "confluence", "--stream", "pages", "--full"],
        20,
        (300, 2500),
        0xa0d17,
        |_| {},
    );
    assert!(
        kills >= 5,
        "the test must interrupt syncs (killed {kills} times)"
    );
    let out = env.airlock(&["sync", "confluence", "--stream", "pages"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    let stored = documents::all(&conn, "confluence", Some("page")).expect("docs");
    assert_eq!(stored.len(), fake.truth().pages.len(), "the store is exact");

    // Each kill may cut off the row of the one request in flight (sync fetches one page at a
    // time); a committed page waited for its rows, so nothing else may be missing.
    let requests = fake.requests().total as usize;
    let rows = sent_rows(&env);
    eprintln!("{requests} requests upstream, {rows} audit rows, {kills} kills");
    assert!(
        rows + kills >= requests,
        "{requests} requests upstream, {rows} audit rows, {kills} kills: rows were lost behind \
         committed pages"
    );
    // Every committed page names the sync call that fetched it: that call has its `invoke` row
    // and the `http` row of its request (Confluence fetches a page with one GET).
    let rows = audit_rows(&env);
    let mut pages: Vec<String> = conn
        .prepare("SELECT DISTINCT invocation FROM documents WHERE connector = 'confluence'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("page invocations");
    pages.sort();
    assert!(pages.len() >= 10, "{} pages committed", pages.len());
    for inv in &pages {
        let of = |event: &str| {
            rows.iter()
                .filter(|r| &r.event.invocation == inv && r.event.event == event)
                .count()
        };
        assert!(
            of("invoke") == 1 && of("http") >= 1,
            "committed page of sync call {inv} lacks its rows (invoke {}, http {})",
            of("invoke"),
            of("http")
        );
    }
    let out = env.airlock(&["audit", "verify"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_audit_log_stops_requests_and_syncs_until_it_recovers() {
    let fake = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions::default(),
    )
    .await
    .expect("fake");
    let env = Env::new(&confluence_config(&fake.base_url));
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let a = start_in_process(&env).await;
    assert!(a.audit_available());

    // Every audit insert fails from now on, as on a full disk.
    let conn = airlock::store::open(&env.data_dir()).expect("db");
    conn.execute_batch(
        "CREATE TRIGGER full BEFORE INSERT ON audit BEGIN SELECT RAISE(FAIL, 'disk is full'); END;",
    )
    .expect("trigger");
    fake.reset_requests();
    let e = a
        .sync_stream("confluence", "pages", false, |_| {})
        .await
        .expect_err("a page whose rows cannot be written is not committed");
    assert!(e.to_string().contains("audit unavailable"), "{e}");
    assert!(!a.audit_available(), "the log must say it is unavailable");
    let stored = documents::all(&conn, "confluence", Some("page")).expect("docs");
    assert!(
        stored.is_empty(),
        "{} pages committed without their rows",
        stored.len()
    );

    // While it is down, nothing leaves: not a sync, not an action's request.
    let before = fake.requests().total;
    let e = a
        .sync_stream("confluence", "pages", false, |_| {})
        .await
        .expect_err("no sync while the log is down");
    // The gate's refusal reaches the connector as a transport error naming the cause.
    assert!(e.to_string().contains("audit unavailable"), "{e}");
    assert_eq!(
        fake.requests().total,
        before,
        "a request left without an audit row"
    );

    // Space is back: the host recovers by itself, the held-back rows are written, the sync runs.
    conn.execute_batch("DROP TRIGGER full;")
        .expect("drop trigger");
    let t = std::time::Instant::now();
    while !a.audit_available() && t.elapsed() < std::time::Duration::from_secs(30) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(a.audit_available(), "the audit log did not recover");
    a.sync_stream("confluence", "pages", false, |_| {})
        .await
        .expect("sync after recovery");
    a.flush();
    let stored = documents::all(&conn, "confluence", Some("page")).expect("docs");
    assert_eq!(stored.len(), fake.truth().pages.len());
    let requests = fake.requests().total as usize;
    assert_eq!(
        sent_rows(&env),
        requests,
        "every request upstream has its row"
    );
}
