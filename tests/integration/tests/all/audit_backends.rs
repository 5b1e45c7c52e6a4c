//! The audit log on both backends (a throwaway PostgreSQL cluster per test): writers append
//! concurrently and every chain verifies, a row edited with SQL is named by `audit verify`,
//! a secret never reaches a stored row, and a writer that cannot reach its database reports
//! its rows not durable instead of losing them.

use std::sync::Arc;

use airlock::scrub::Scrubber;
use airlock::store::Db;
use airlock::store::audit::{AuditEvent, AuditSettings, AuditWriter};
use airlock::store::backend::Store;
use airlock::store::backend::audit::AuditFilter;
use airlock::store::checkpoint::Sink;
use airlock::store::pg::PgStore;
use airlock_tests::Env;
use pg_cluster::PgCluster;

fn settings() -> AuditSettings {
    AuditSettings {
        checkpoint_sink: Sink::None,
        ..AuditSettings::default()
    }
}

fn event(writer: &str, i: usize) -> AuditEvent {
    AuditEvent {
        connector: "wiki".into(),
        invocation: format!("{writer}-inv{i}"),
        event: "http".into(),
        decision: if i.is_multiple_of(7) { "deny" } else { "allow" }.into(),
        reason: format!("grant wiki-read, row {i}"),
        method: Some("GET".into()),
        scheme: Some("https".into()),
        host: Some("wiki.example".into()),
        port: Some(443),
        path: Some(format!("/api/pages/{i}")),
        status: Some(200),
        latency_ms: Some(1.25 + i as f64),
        bytes: Some(1000 + i as u64),
        principal: i.is_multiple_of(2).then(|| format!("token:{writer}")),
        grant: None,
    }
}

struct Backends {
    pg: PgCluster,
    db: String,
    dir: tempfile::TempDir,
    sqlite: Store,
    postgres: Store,
}

async fn backends(db: &str) -> Backends {
    let pg = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    pg.create_database(db).unwrap();
    let postgres = Store::Postgres(Arc::new(
        PgStore::open(&pg.url_of(db)).await.expect("postgres store"),
    ));
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::Sqlite(Arc::new(Db::open(dir.path()).unwrap()));
    Backends {
        pg,
        db: db.into(),
        dir,
        sqlite,
        postgres,
    }
}

/// Two writers (two daemons' chains on PostgreSQL) record `n` rows each from their own threads
/// at once, waiting for durability now and then as the gate does.
fn write_concurrently(store: &Store, data_dir: &std::path::Path, n: usize) {
    let writers: Vec<AuditWriter> = ["daemon-a", "daemon-b"]
        .iter()
        .map(|chain| {
            AuditWriter::start_chain(store, data_dir, Scrubber::new(), &settings(), chain).unwrap()
        })
        .collect();
    std::thread::scope(|s| {
        for (w, name) in writers.iter().zip(["daemon-a", "daemon-b"]) {
            let log = w.log();
            s.spawn(move || {
                for i in 0..n {
                    log.record(event(name, i));
                    if i % 50 == 49 {
                        log.flush_durable().expect("durable rows");
                    }
                }
                log.flush_durable().expect("durable rows");
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_keep_every_chain_verifiable_on_both_backends() {
    let b = backends("chains").await;
    for (store, chains) in [(&b.sqlite, 1), (&b.postgres, 2)] {
        let (s, dir) = (store.clone(), b.dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || write_concurrently(&s, &dir, 300))
            .await
            .unwrap();
        let check = store.audit_verify().await.unwrap();
        assert!(
            check.verification.problems.is_empty(),
            "{}: {:?}",
            store.describe(),
            check.verification.problems
        );
        assert_eq!(check.verification.rows, 600, "{}", store.describe());
        assert_eq!(check.chains, chains, "{}", store.describe());
        assert!(check.unaudited.is_empty());

        // Listing: the newest rows, oldest first, merged by time; filters as on SQLite.
        let all = store
            .audit_query(AuditFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 600);
        if chains == 2 {
            // PostgreSQL's merge rule; SQLite keeps its one chain's commit order.
            assert!(all.windows(2).all(|w| w[0].ts <= w[1].ts), "merged by time");
        }
        let denied = store
            .audit_query(AuditFilter {
                decision: Some("deny".into()),
                principal: Some("token:daemon-b".into()),
                within: Some(vec!["wiki".into()]),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        // i in 0..300 with i % 7 == 0 and i even: 0, 14, ..., 294.
        assert_eq!(denied.len(), 22, "{}", store.describe());
        let tail = store.audit_tail(5, Some("wiki")).await.unwrap();
        assert_eq!(tail.len(), 5);
        assert_eq!(tail.last().map(|r| &r.ts), all.last().map(|r| &r.ts));
        let latest = store
            .audit_latest_of("wiki", "daemon-a-inv299")
            .await
            .unwrap();
        assert_eq!(
            latest,
            Some(("allow".into(), "grant wiki-read, row 299".into()))
        );
        assert_eq!(store.audit_latest_of("wiki", "nope").await.unwrap(), None);
    }
    // Same rows, same hashes: a row hashes alike whichever database holds it.
    let count = b
        .pg
        .psql(
            &b.db,
            "SELECT count(*) FROM audit WHERE chain = 'daemon-a' AND seq = 1 AND prev_hash = repeat('0', 64)",
        )
        .unwrap();
    assert_eq!(count, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_edited_in_postgres_is_named_by_audit_verify() {
    let b = backends("tamper").await;
    let (s, dir) = (b.postgres.clone(), b.dir.path().to_path_buf());
    tokio::task::spawn_blocking(move || write_concurrently(&s, &dir, 20))
        .await
        .unwrap();
    assert!(
        b.postgres
            .audit_verify()
            .await
            .unwrap()
            .verification
            .problems
            .is_empty()
    );

    // The CLI checks the same store (every chain) through `[store] url`.
    let env = Env::new(&format!("[store]\nurl = \"{}\"\n", b.pg.url_of(&b.db)));
    let out = env.airlock(&["audit", "verify"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("40 rows verified in 2 chain(s)"),
        "{stdout}"
    );

    b.pg.psql(
        &b.db,
        "UPDATE audit SET decision = 'allow' WHERE chain = 'daemon-b' AND seq = 8",
    )
    .unwrap();
    let problems = b
        .postgres
        .audit_verify()
        .await
        .unwrap()
        .verification
        .problems;
    assert_eq!(
        problems,
        vec!["chain daemon-b: row 8: contents do not match its hash (edited)".to_string()]
    );
    let out = env.airlock(&["audit", "verify"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("TAMPERED: chain daemon-b: row 8: contents do not match its hash"),
        "{stdout}"
    );

    // Rows cut from the tail of the other chain: its head no longer matches.
    b.pg.psql(
        &b.db,
        "DELETE FROM audit WHERE chain = 'daemon-a' AND seq > 18",
    )
    .unwrap();
    let problems = b
        .postgres
        .audit_verify()
        .await
        .unwrap()
        .verification
        .problems;
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("chain daemon-a: the chain head records row 20")),
        "{problems:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_in_an_audited_url_never_reaches_a_postgres_row() {
    let b = backends("canary").await;
    const CANARY: &str = "canary-pg-5521x";
    let scrubber = Scrubber::new();
    scrubber.add(CANARY);
    let (s, dir) = (b.postgres.clone(), b.dir.path().to_path_buf());
    tokio::task::spawn_blocking(move || {
        let w = AuditWriter::start_chain(&s, &dir, scrubber, &settings(), "daemon-c").unwrap();
        let mut e = event("daemon-c", 1);
        e.path = Some(format!("/search/{CANARY}/x"));
        e.host = Some(format!("{CANARY}.wiki.example"));
        e.reason = format!("upstream said: bad header Authorization: Bearer {CANARY}");
        w.log().record(e);
        w.log().flush_durable().unwrap();
    })
    .await
    .unwrap();
    let dump =
        b.pg.psql(&b.db, "SELECT row_to_json(a)::text FROM audit a")
            .unwrap();
    assert!(dump.contains("[REDACTED]"), "{dump}");
    assert!(!dump.contains(CANARY), "{dump}");
    let heads =
        b.pg.psql(&b.db, "SELECT row_to_json(h)::text FROM audit_heads h")
            .unwrap();
    assert!(!heads.contains(CANARY));
    assert!(
        b.postgres
            .audit_verify()
            .await
            .unwrap()
            .verification
            .problems
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_cannot_reach_postgres_reports_its_rows_not_durable() {
    // Nothing listens on port 1: every attempt fails at once.
    let store = Store::Postgres(Arc::new(
        PgStore::connect("postgres://airlock:hunter2@127.0.0.1:1/airlock").unwrap(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        let w = AuditWriter::start_chain(&store, dir.path(), Scrubber::new(), &settings(), "x")
            .unwrap();
        w.log().record(event("x", 1));
        let durable = w.log().flush_durable();
        let out = (durable.map_err(|e| e.to_string()), w.log().available());
        // The writer never drops a row, so it retries for as long as the process lives; a
        // drop would wait for it.
        std::mem::forget(w);
        out
    })
    .await
    .unwrap();
    let (durable, available) = out;
    let e = durable.expect_err("rows the database never took are not durable");
    assert!(e.contains("audit unavailable"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    assert!(!available);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_stream_loses_no_row_and_the_writer_reconnects() {
    let b = backends("durable").await;
    let dir = b.dir.path().to_path_buf();
    let store = b.postgres.clone();
    tokio::task::block_in_place(|| {
        let w = AuditWriter::start_chain(&store, &dir, Scrubber::new(), &settings(), "daemon-d")
            .unwrap();
        let log = w.log();
        for i in 0..200 {
            log.record(event("daemon-d", i));
            if i == 100 {
                // The database drops every connection, as on a failover, while rows are queued.
                b.pg.psql(
                    "postgres",
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                     WHERE datname = 'durable' AND pid <> pg_backend_pid()",
                )
                .unwrap();
            }
            if i % 20 == 19 {
                log.flush_durable()
                    .expect("durable again after a reconnect");
            }
        }
    });
    // A fresh pool: the old one's connections were cut too.
    let fresh = Store::Postgres(Arc::new(
        PgStore::open(&b.pg.url_of("durable")).await.unwrap(),
    ));
    let check = fresh.audit_verify().await.unwrap();
    assert!(
        check.verification.problems.is_empty(),
        "{:?}",
        check.verification.problems
    );
    assert_eq!(check.verification.rows, 200, "no row lost");
    assert_eq!(check.chains, 1);
}
