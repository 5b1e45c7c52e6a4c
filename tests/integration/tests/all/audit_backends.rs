//! The audit log on both backends (a throwaway PostgreSQL cluster per test): writers append
//! concurrently and every chain verifies, a row edited with SQL is named by `audit verify`,
//! signed checkpoints in PostgreSQL catch what the chains alone cannot, a secret never reaches
//! a stored row, and a writer that cannot reach its database reports its rows not durable
//! instead of losing them.

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

    // The CLI checks the same store (every chain) through `[store] url`, and their signed
    // checkpoints under the writers' public key.
    let env = Env::new(&format!("[store]\nurl = \"{}\"\n", b.pg.url_of(&b.db)));
    let key = std::fs::read_to_string(b.dir.path().join("audit-signing.pub")).unwrap();
    let verify = ["audit", "verify", "--public-key", key.trim()];
    let out = env.airlock(&verify, None);
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
    let out = env.airlock(&verify, None);
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

/// `airlock audit verify` on the PostgreSQL store: its exit code and what it printed.
fn verify_cli(env: &Env, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["audit", "verify"];
    args.extend_from_slice(extra);
    let out = env.airlock(&args, None);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_checkpoints_of_every_postgres_chain_catch_a_cut_tail_a_forgery_and_a_removal() {
    let b = backends("anchored").await;
    let env = Env::new(&format!("[store]\nurl = \"{}\"\n", b.pg.url_of(&b.db)));
    // Both writers sign with the key of the data directory the CLI trusts (as daemons given
    // the same audit-signing.key do).
    let (s, dir) = (b.postgres.clone(), env.data_dir());
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir).unwrap();
        let settings = AuditSettings {
            checkpoint_rows: 5,
            ..settings()
        };
        for chain in ["daemon-a", "daemon-b"] {
            let w = AuditWriter::start_chain(&s, &dir, Scrubber::new(), &settings, chain).unwrap();
            for i in 0..20 {
                w.log().record(event(chain, i));
                w.log().flush();
            }
            // Dropped: a clean stop signs the head (row 20).
        }
    })
    .await
    .unwrap();
    let heads = b.postgres.clone();
    let Store::Postgres(pg) = &heads else {
        unreachable!()
    };
    let head_of = |chain: &str| {
        b.pg.psql(
            &b.db,
            &format!("SELECT hash FROM audit WHERE chain = '{chain}' AND seq = 20"),
        )
        .unwrap()
    };
    let (a20, b20) = (head_of("daemon-a"), head_of("daemon-b"));
    // Each chain anchored at its genesis before its first row, then every 5 rows.
    let cps =
        b.pg.psql(
            &b.db,
            "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM audit_checkpoints WHERE chain = 'daemon-a'",
        )
        .unwrap();
    assert_eq!(cps, "0,5,10,15,20");
    assert!(pg.audit_heads().await.unwrap().len() == 2);

    let (code, said) = verify_cli(&env, &[]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("40 rows verified in 2 chain(s)"), "{said}");
    assert!(said.contains("anchored: 10 valid checkpoint(s)"), "{said}");
    let expect = format!("daemon-a:20:{a20}");
    let (code, said) = verify_cli(&env, &["--expect", &expect]);
    assert_eq!(code, Some(0), "{said}");
    // On PostgreSQL a head kept elsewhere names its chain.
    let (code, said) = verify_cli(&env, &["--expect", &format!("20:{a20}")]);
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("CHAIN:SEQ:HASH"), "{said}");

    // Under a key the checkpoints were not signed with, none of them counts.
    let other = tempfile::tempdir().unwrap();
    airlock::store::checkpoint::CheckpointSigner::open(other.path(), Sink::None).unwrap();
    let other_key = std::fs::read_to_string(other.path().join("audit-signing.pub")).unwrap();
    let (code, said) = verify_cli(&env, &["--public-key", other_key.trim()]);
    assert_eq!(code, Some(5), "{said}");
    assert!(said.contains("which is not a trusted key"), "{said}");

    // Rows cut from daemon-a's tail with its head moved back to match: the chain alone is
    // whole, its signed checkpoint of row 20 is not.
    b.pg.psql(
        &b.db,
        "DELETE FROM audit WHERE chain = 'daemon-a' AND seq > 15;
         UPDATE audit_heads SET seq = 15,
           hash = (SELECT hash FROM audit WHERE chain = 'daemon-a' AND seq = 15)
         WHERE chain = 'daemon-a'",
    )
    .unwrap();
    assert!(
        b.postgres
            .audit_verify()
            .await
            .unwrap()
            .verification
            .problems
            .is_empty(),
        "the cut is invisible to the chain walk"
    );
    let (code, said) = verify_cli(&env, &[]);
    assert_eq!(code, Some(4), "{said}");
    assert!(
        said.contains("TRUNCATED: chain daemon-a: the checkpoint signed at")
            && said.contains("records row 20, but the log ends at row 15"),
        "{said}"
    );

    // daemon-b's checkpoints removed: its rows are no longer anchored, which is itself seen.
    b.pg.psql(
        &b.db,
        "DELETE FROM audit_checkpoints WHERE chain = 'daemon-b'",
    )
    .unwrap();
    let (code, said) = verify_cli(&env, &[]);
    assert_eq!(code, Some(4), "the most serious finding decides: {said}");
    assert!(
        said.contains("UNANCHORED: chain daemon-b: rows 1..=20 but no valid signed checkpoint"),
        "{said}"
    );

    // A checkpoint edited to fit the cut chain no longer verifies.
    b.pg.psql(
        &b.db,
        "UPDATE audit_checkpoints SET seq = 14,
           hash = (SELECT hash FROM audit WHERE chain = 'daemon-a' AND seq = 14)
         WHERE chain = 'daemon-a' AND seq = 20",
    )
    .unwrap();
    let (code, said) = verify_cli(&env, &[]);
    assert_eq!(code, Some(5), "{said}");
    assert!(
        said.contains("REWRITTEN: chain daemon-a: the checkpoint of row 14")
            && said.contains("does not verify"),
        "{said}"
    );

    // A whole chain removed (rows, head, checkpoints) leaves nothing in the database to miss;
    // the head shipped in the log (`--expect CHAIN:SEQ:HASH`) still tells.
    b.pg.psql(
        &b.db,
        "DELETE FROM audit WHERE chain = 'daemon-b'; DELETE FROM audit_heads WHERE chain = 'daemon-b'",
    )
    .unwrap();
    let expect = format!("daemon-b:20:{b20}");
    let (_, said) = verify_cli(&env, &["--expect", &expect]);
    assert!(
        said.contains("TRUNCATED: chain daemon-b: the expected head (--expect) records row 20, but the log ends at row 0"),
        "{said}"
    );
}
