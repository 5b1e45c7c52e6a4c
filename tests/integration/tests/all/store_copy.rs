//! `airlock store copy` moves a SQLite installation into PostgreSQL with nothing lost: the
//! counts per area agree, a token made on SQLite authenticates on PostgreSQL, a vault secret
//! opens with the same master key, the cursor is where it was, `airlock audit verify` passes on
//! the PostgreSQL store, and a second copy into the now non-empty target is refused.

use std::sync::Arc;

use airlock::store::backend::{PageCommit, Store};
use airlock::store::pg::PgStore;
use airlock::store::sync_state::PageCounts;
use airlock::store::vault::Vault;
use airlock_tests::{Env, doc};
use pg_cluster::PgCluster;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_installation_moves_to_postgres_with_nothing_lost() {
    let pg = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    pg.create_database("copied").unwrap();
    let url = pg.url_of("copied");

    let env = Env::new("");
    let token = env.create_token("alice", "acme", &["ops"], false);
    env.create_token("bob", "acme", &[], true);
    env.set_secret("zendesk-token", "s3cret-value-that-must-survive");
    {
        let sqlite = Store::open(&env.data_dir(), None).await.unwrap();
        let docs: Vec<_> = (0..25)
            .map(|i| {
                doc(
                    &format!("d{i}"),
                    &format!("printer guide {i}"),
                    "reset it",
                    &[],
                )
            })
            .collect();
        sqlite
            .commit_page(PageCommit {
                connector: "wiki".into(),
                stream: "pages".into(),
                invocation: None,
                upserts: docs,
                deletes: vec![],
                next_cursor: Some("cursor-after-25".into()),
                counts: PageCounts {
                    upserts: 0,
                    deletes: 0,
                    first: true,
                },
                done: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }

    let out = env.airlock(
        &[
            "store",
            "copy",
            "--from",
            &format!("sqlite://{}", env.data_dir().display()),
            "--to",
            &url,
        ],
        None,
    );
    let shown = text(&out);
    println!("{shown}");
    assert!(out.status.success(), "copy failed: {shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    for line in ["documents", "API tokens", "vault secrets", "audit rows"] {
        assert!(shown.contains(line), "no count of {line}: {shown}");
    }
    assert!(!shown.contains("DIFFERS"), "{shown}");
    let doc_line = shown
        .lines()
        .find(|l| l.starts_with("documents "))
        .expect("documents line");
    let counts: Vec<&str> = doc_line.split_whitespace().collect();
    assert_eq!(counts[1..], ["25", "25"], "{shown}");

    let postgres = Store::Postgres(Arc::new(PgStore::open(&url).await.unwrap()));
    let who = postgres.authenticate(&token).await.unwrap();
    assert!(who.is_some(), "the copied token does not authenticate");
    let vault = Vault::open(&env.data_dir()).unwrap();
    assert_eq!(
        postgres
            .secret(&vault, "zendesk-token")
            .await
            .unwrap()
            .as_deref(),
        Some("s3cret-value-that-must-survive")
    );
    let state = postgres.sync_state("wiki", "pages").await.unwrap();
    assert_eq!(
        state.and_then(|s| s.cursor).as_deref(),
        Some("cursor-after-25"),
        "the cursor did not move: the daemons would sync again from the start"
    );
    let check = postgres.audit_verify().await.unwrap();
    assert!(check.verification.rows >= 2, "{check:?}");
    assert!(check.verification.problems.is_empty(), "{check:?}");

    // `airlock audit verify` on the PostgreSQL store, through the config.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{config}\n[store]\nurl = \"{url}\"\n")).unwrap();
    let out = env.airlock(&["audit", "verify"], None);
    assert!(out.status.success(), "audit verify: {}", text(&out));

    // A second copy into the now non-empty target is refused, naming what it holds.
    let out = env.airlock(
        &[
            "store",
            "copy",
            "--from",
            &format!("sqlite://{}", env.data_dir().display()),
            "--to",
            &url,
        ],
        None,
    );
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(shown.contains("already holds data"), "{shown}");
    assert!(shown.contains("25 documents"), "{shown}");
    let after = PgStore::open(&url).await.unwrap();
    let n = airlock::store::pg::copy::pg_counts(&after).await.unwrap();
    assert!(n.contains(&("documents", 25)), "{n:?}");

    // The change feed goes on after SQLite's numbers, so readers' cursors stay valid.
    postgres
        .commit_page(PageCommit {
            connector: "wiki".into(),
            stream: "pages".into(),
            upserts: vec![doc("d25", "printer guide 25", "new on postgres", &[])],
            next_cursor: Some("cursor-after-26".into()),
            done: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let max = pg.psql("copied", "SELECT MAX(seq) FROM changes").unwrap();
    assert_eq!(max.trim(), "26", "{max}");
}

#[test]
fn store_copy_help_explains_what_moves_and_the_refusal() {
    let env = Env::new("");
    let out = env.airlock(&["store", "copy", "--help"], None);
    let help = text(&out);
    assert!(out.status.success(), "{help}");
    for words in ["--from", "--to", "empty", "audit", "vault", "count"] {
        assert!(help.contains(words), "no {words:?} in:\n{help}");
    }
}
