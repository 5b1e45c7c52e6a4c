//! The store's operations behave the same on SQLite and on PostgreSQL (a throwaway cluster per
//! test file): documents and search with tenant and ACL filters, unchanged records, sync state,
//! sync job leases with fencing, and API tokens shared by several daemons.

use std::sync::Arc;
use std::time::Duration;

use airlock::model::{Document, DocumentRef};
use airlock::store::Db;
use airlock::store::backend::{PageCommit, SearchQuery, Store};
use airlock::store::documents::Readers;
use airlock::store::leases::LeaseLost;
use airlock::store::pg::PgStore;
use airlock::store::sync_state::PageCounts;
use pg_cluster::PgCluster;

fn doc(id: &str, title: &str, body: &str, acl: &[&str]) -> Document {
    Document {
        id: id.into(),
        kind: "page".into(),
        title: title.into(),
        body: body.into(),
        url: Some(format!("https://wiki.example/{id}")),
        updated_at: "2026-01-01T00:00:00Z".into(),
        metadata: serde_json::json!({"n": id}).into(),
        acl: acl.iter().map(|s| s.to_string()).collect(),
    }
}

/// A corpus with overlapping words, ACLs of users and groups, an empty ACL and two connectors.
fn corpus() -> Vec<Document> {
    let words = [
        "invoice", "printer", "vpn", "password", "reset", "laptop", "outage", "backup",
    ];
    (0..120)
        .map(|i| {
            let w1 = words[i % words.len()];
            let w2 = words[(i * 3 + 1) % words.len()];
            let acl: &[&str] = match i % 4 {
                0 => &["alice"],
                1 => &["group:ops"],
                2 => &[],
                _ => &["bob", "user:acc-9"],
            };
            doc(
                &format!("d{i:03}"),
                &format!("{w1} guide {i}"),
                &format!(
                    "How to handle the {w2} case, step {i}; e-mail ops@example.com about {w1}-{w2}."
                ),
                acl,
            )
        })
        .collect()
}

struct Backends {
    _pg: PgCluster,
    _dir: tempfile::TempDir,
    sqlite: Store,
    postgres: Store,
}

async fn backends(db: &str) -> Backends {
    let pg = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    pg.create_database(db).unwrap();
    let url = pg.url_of(db);
    let postgres = Store::Postgres(Arc::new(PgStore::open(&url).await.expect("postgres store")));
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::Sqlite(Arc::new(Db::open(dir.path()).unwrap()));
    Backends {
        _pg: pg,
        _dir: dir,
        sqlite,
        postgres,
    }
}

fn page(
    connector: &str,
    stream: &str,
    upserts: Vec<Document>,
    deletes: Vec<DocumentRef>,
) -> PageCommit {
    PageCommit {
        connector: connector.into(),
        stream: stream.into(),
        invocation: Some("inv-1".into()),
        upserts,
        deletes,
        next_cursor: Some("c1".into()),
        counts: PageCounts {
            upserts: 0,
            deletes: 0,
            first: true,
        },
        done: true,
        ..Default::default()
    }
}

async fn load(store: &Store) {
    let docs = corpus();
    let (a, b) = docs.split_at(80);
    store
        .commit_page(page("wiki", "pages", a.to_vec(), vec![]))
        .await
        .unwrap();
    store
        .commit_page(page("desk", "tickets", b.to_vec(), vec![]))
        .await
        .unwrap();
    // A delete of a stored and of an unknown document.
    let gone = vec![
        DocumentRef {
            kind: "page".into(),
            id: "d001".into(),
        },
        DocumentRef {
            kind: "page".into(),
            id: "nope".into(),
        },
    ];
    store
        .commit_page(page("wiki", "pages", vec![], gone))
        .await
        .unwrap();
}

fn ids(hits: &[airlock::store::documents::Hit]) -> Vec<String> {
    let mut v: Vec<String> = hits
        .iter()
        .map(|h| format!("{}/{}", h.connector, h.id))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_search_and_sync_state_agree_on_both_backends() {
    let b = backends("agree").await;
    load(&b.sqlite).await;
    load(&b.postgres).await;

    // Every document, as stored.
    for connector in ["wiki", "desk"] {
        let s = b.sqlite.documents(connector, None).await.unwrap();
        let p = b.postgres.documents(connector, None).await.unwrap();
        assert_eq!(s, p, "{connector} documents differ");
    }
    assert_eq!(b.sqlite.documents("wiki", None).await.unwrap().len(), 79);
    assert_eq!(
        b.postgres.document("wiki", "page", "d000").await.unwrap(),
        b.sqlite.document("wiki", "page", "d000").await.unwrap()
    );
    assert!(
        b.postgres
            .document("wiki", "page", "d001")
            .await
            .unwrap()
            .is_none()
    );

    // The same hits for every query and filter (ranking may differ: compared as sets).
    let alice = Readers::names(&["alice"], &[]);
    let ops = Readers::names(&["group:ops"], &["desk"]);
    let mut by_connector = Readers::names(&["carol"], &[]);
    by_connector
        .by_connector
        .insert("desk".into(), vec!["user:acc-9".into()]);
    // (query, readers, tenant's connectors)
    type Case<'a> = (&'a str, Option<Readers>, Option<Vec<String>>);
    let cases: Vec<Case> = vec![
        ("printer", None, None),
        ("vpn guide", None, None),
        ("reset", Some(alice.clone()), None),
        ("outage", Some(ops.clone()), None),
        ("backup", Some(by_connector.clone()), None),
        ("guide", Some(ops.clone()), Some(vec!["desk".into()])),
        ("ops example com", None, None),
        ("invoice-printer", None, None),
        ("\"; DROP TABLE documents; --", None, None),
        ("nothingmatches", None, None),
    ];
    for (text, readers, connectors) in cases {
        let q = SearchQuery {
            text: text.into(),
            limit: 1000,
            readers: readers.clone(),
            any_word: false,
            connectors: connectors.clone(),
            ..Default::default()
        };
        let s = b.sqlite.search(q.clone()).await.unwrap();
        let p = b.postgres.search(q).await.unwrap();
        assert_eq!(
            ids(&s),
            ids(&p),
            "hits for {text:?} with {readers:?} differ"
        );
        for h in &p {
            if let Some(r) = &readers {
                assert!(
                    r.allows(&h.connector, &h.acl),
                    "{text:?}: {} not readable",
                    h.id
                );
            }
            assert!(h.score.is_some());
        }
    }
    // Titles rank above bodies, and snippets mark the words, on PostgreSQL too.
    let hits = b
        .postgres
        .search(SearchQuery {
            text: "printer".into(),
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits[0].title.contains("printer"), "{:?}", hits[0]);
    assert!(
        hits.iter().any(|h| h.snippet.contains("[printer]")),
        "{hits:?}"
    );
    // A limit below the permitted hits still returns that many permitted ones.
    let limited = b
        .postgres
        .search(SearchQuery {
            text: "guide".into(),
            limit: 3,
            readers: Some(alice.clone()),
            any_word: false,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 3);

    // Sync state: the same cursor, counts and records.
    let strip = |mut v: Vec<airlock::store::sync_state::SyncState>| {
        for s in &mut v {
            s.cursor_updated_at = None;
            s.last_success_at = None;
            s.last_error_at = s.last_error_at.as_ref().map(|_| "set".into());
        }
        v
    };
    let s = strip(b.sqlite.sync_states().await.unwrap());
    let p = strip(b.postgres.sync_states().await.unwrap());
    assert_eq!(s, p);
    assert_eq!(p.iter().find(|x| x.stream == "pages").unwrap().records, 79);
    for store in [&b.sqlite, &b.postgres] {
        store
            .record_sync_error("wiki", "pages", "boom")
            .await
            .unwrap();
        store
            .record_rate_limited("desk", "tickets", "2030-01-01T00:00:00Z")
            .await
            .unwrap();
        store.reset_cursor("wiki", "pages").await.unwrap();
    }
    let s = strip(b.sqlite.sync_states().await.unwrap());
    let p = strip(b.postgres.sync_states().await.unwrap());
    assert_eq!(s, p);
    let wiki = b
        .postgres
        .sync_state("wiki", "pages")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(wiki.last_error.as_deref(), Some("boom"));
    assert_eq!(wiki.cursor, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_record_is_not_rewritten_on_either_backend() {
    let b = backends("unchanged").await;
    for (name, store) in [("sqlite", &b.sqlite), ("postgres", &b.postgres)] {
        let d = doc("x1", "Printer jam", "Open tray 2", &["alice"]);
        store
            .commit_page(page("wiki", "pages", vec![d.clone()], vec![]))
            .await
            .unwrap();
        store
            .commit_page(page("wiki", "pages", vec![d.clone(), d.clone()], vec![]))
            .await
            .unwrap();
        let mut changed = d.clone();
        changed.acl = vec!["bob".into()];
        store
            .commit_page(page("wiki", "pages", vec![changed.clone()], vec![]))
            .await
            .unwrap();
        assert_eq!(
            store.document("wiki", "page", "x1").await.unwrap(),
            Some(changed),
            "{name}"
        );
    }
    // The change feed holds two upserts (first write, ACL change), none for the re-sends.
    let pg_rows = b
        ._pg
        .psql(
            "unchanged",
            "SELECT string_agg(op, ',' ORDER BY seq) FROM changes",
        )
        .unwrap();
    assert_eq!(pg_rows, "upsert,upsert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_exclusive_and_a_takeover_fences_out_the_old_owner() {
    let b = backends("leases").await;
    for (name, store) in [("sqlite", &b.sqlite), ("postgres", &b.postgres)] {
        let ttl = Duration::from_millis(400);
        let a = store
            .acquire_lease("wiki", "pages", "daemon-a", ttl)
            .await
            .unwrap()
            .expect("a free job's lease is taken");
        assert!(
            store
                .acquire_lease("wiki", "pages", "daemon-b", ttl)
                .await
                .unwrap()
                .is_none(),
            "{name}: a held lease is not handed to another daemon"
        );
        // Daemon A commits under its lease (which renews it).
        let mut p = page(
            "wiki",
            "pages",
            vec![doc("l1", "one", "one", &["a"])],
            vec![],
        );
        p.lease = Some(a.clone());
        p.lease_ttl = ttl;
        store.commit_page(p).await.unwrap();

        // A stalls past its lease; B takes the job over under a higher fence.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let b_lease = store
            .acquire_lease("wiki", "pages", "daemon-b", ttl)
            .await
            .unwrap()
            .expect("an expired lease is taken over");
        assert!(b_lease.fence > a.fence, "{name}");

        // A's stale page is refused and nothing of it is written.
        let mut stale = page(
            "wiki",
            "pages",
            vec![doc("l2", "two", "two", &["a"])],
            vec![],
        );
        stale.lease = Some(a.clone());
        stale.lease_ttl = ttl;
        let err = store.commit_page(stale).await.unwrap_err();
        assert!(err.downcast_ref::<LeaseLost>().is_some(), "{name}: {err:#}");
        assert!(
            store
                .document("wiki", "page", "l2")
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        assert!(!store.renew_lease(&a, ttl).await.unwrap(), "{name}");

        // A's release does not free B's lease; B's release does.
        store.release_lease(&a).await.unwrap();
        assert!(
            store
                .acquire_lease("wiki", "pages", "daemon-c", ttl)
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        assert!(store.renew_lease(&b_lease, ttl).await.unwrap(), "{name}");
        store.release_lease(&b_lease).await.unwrap();
        let c = store
            .acquire_lease("wiki", "pages", "daemon-c", ttl)
            .await
            .unwrap()
            .expect("a released job is free");
        assert!(c.fence > b_lease.fence);
        let infos = store.leases().await.unwrap();
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].owner.as_deref(), Some("daemon-c"));
        store.release_lease(&c).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_daemons_racing_for_one_job_get_exactly_one_lease() {
    let b = backends("race").await;
    let url = b._pg.url_of("race");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            // Each its own pool, as separate daemons have.
            let store = Store::Postgres(Arc::new(PgStore::open(&url).await.unwrap()));
            store
                .acquire_lease(
                    "desk",
                    "tickets",
                    &format!("daemon-{i}"),
                    Duration::from_secs(30),
                )
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap().is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    // Daemons that started together migrated once: each version recorded once.
    let once = "SELECT COUNT(*) = COUNT(DISTINCT version) AND COUNT(*) > 0 FROM schema_version";
    assert_eq!(b._pg.psql("race", once).unwrap(), "t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_daemon_is_refused_by_the_others() {
    let b = backends("tokens").await;
    let url = b._pg.url_of("tokens");
    let daemon_a = Store::Postgres(Arc::new(PgStore::open(&url).await.unwrap()));
    let daemon_b = Store::Postgres(Arc::new(PgStore::open(&url).await.unwrap()));
    for (name, a, other) in [
        ("sqlite", &b.sqlite, &b.sqlite),
        ("postgres", &daemon_a, &daemon_b),
    ] {
        let groups = vec!["ops".to_string()];
        let (info, token) = a
            .create_token("alice", "acme", &groups, false, &["wiki".into()])
            .await
            .unwrap();
        let p = other
            .authenticate(&token)
            .await
            .unwrap()
            .expect("valid on every daemon");
        assert_eq!(
            (p.name.as_str(), p.tenant.as_str()),
            ("alice", "acme"),
            "{name}"
        );
        assert_eq!(p.groups, groups);
        assert!(p.may_proxy("wiki"));
        assert!(
            other
                .authenticate("alk_not-a-token")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            other.authenticate(&info.id).await.unwrap().is_none(),
            "an id is no token"
        );
        let listed = other.tokens().await.unwrap();
        assert_eq!(listed.len(), 1, "{name}");
        assert!(
            !format!("{listed:?}").contains(&token),
            "{name}: a token is never listed"
        );
        assert_eq!(
            a.revoke_tokens("alice").await.unwrap(),
            vec![info.id.clone()]
        );
        assert!(
            other.authenticate(&token).await.unwrap().is_none(),
            "{name}: revoked"
        );
        assert!(a.revoke_tokens("alice").await.unwrap().is_empty());
    }
    // Only the hash is in the database.
    let stored = b._pg.psql("tokens", "SELECT hash FROM api_tokens").unwrap();
    assert!(!stored.contains("alk_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_named_without_its_password() {
    let port = airlock_tests::free_port();
    let url = format!("postgres://airlock:canary-pg-secret@127.0.0.1:{port}/airlock");
    let err = match PgStore::open(&url).await {
        Ok(_) => panic!("nothing listens there"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("canary-pg-secret"), "{err}");
    // A TLS setting that cannot be met names the setting, still without the password.
    let err = match PgStore::open(&format!(
        "{url}?sslmode=verify-full&sslrootcert=/nonexistent/db-ca.pem"
    ))
    .await
    {
        Ok(_) => panic!("no such CA file"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("sslrootcert") && err.contains("/nonexistent/db-ca.pem"),
        "{err}"
    );
    assert!(!err.contains("canary-pg-secret"), "{err}");
    let err = match PgStore::open(&format!("{url}?sslmode=verify-all")).await {
        Ok(_) => panic!("no such sslmode"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("sslmode `verify-all`"), "{err}");
    assert!(!err.contains("canary-pg-secret"), "{err}");
    let err = match PgStore::open("mysql://x").await {
        Ok(_) => panic!("not postgres"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("not a PostgreSQL URL"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_by_a_dead_process_of_this_machine_is_taken_at_once() {
    use airlock::store::leases::owner_for;
    let b = backends("dead").await;
    // A process that has exited (its pid is free) and one that is alive.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let mut alive = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let long = Duration::from_secs(600);
    for (name, store) in [("sqlite", &b.sqlite), ("postgres", &b.postgres)] {
        let dead = owner_for(dead_pid, "x");
        let held = store
            .acquire_lease("wiki", "pages", &dead, long)
            .await
            .unwrap()
            .unwrap();
        let me = owner_for(std::process::id(), "me");
        let taken = store
            .claim_lease("wiki", "pages", &me, long)
            .await
            .unwrap()
            .expect("a dead owner's lease is taken without waiting for it to expire");
        assert!(taken.fence > held.fence, "{name}");
        store.release_lease(&taken).await.unwrap();

        // A lease this very process left behind (a cancelled run) is taken back at once.
        let mine = store
            .acquire_lease("wiki", "spaces", &me, long)
            .await
            .unwrap()
            .unwrap();
        let again = store
            .claim_lease("wiki", "spaces", &me, long)
            .await
            .unwrap()
            .expect("its own stale lease is this process's to take back");
        assert!(again.fence > mine.fence, "{name}");

        let live = owner_for(alive.id(), "y");
        store
            .acquire_lease("desk", "tickets", &live, long)
            .await
            .unwrap()
            .unwrap();
        let refused = store
            .claim_lease("desk", "tickets", &me, long)
            .await
            .unwrap()
            .expect_err("a live owner keeps its lease");
        assert_eq!(refused, live, "{name}: the refusal names the holder");
        // Another machine's owner is never judged dead from here.
        let remote = format!("other-host:{dead_pid}:boot0000:z");
        store
            .acquire_lease("desk", "users", &remote, long)
            .await
            .unwrap()
            .unwrap();
        assert!(
            store
                .claim_lease("desk", "users", &me, long)
                .await
                .unwrap()
                .is_err(),
            "{name}"
        );
    }
    alive.kill().unwrap();
    let _ = alive.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vault_keeps_only_sealed_values_on_both_backends() {
    use airlock::store::vault::Vault;
    let b = backends("vault").await;
    let keys = tempfile::tempdir().unwrap();
    // Each "daemon" has its own data directory; the shared store needs the same master key.
    let vault = Vault::open(&keys.path().join("a")).unwrap();
    let other_key = Vault::open(&keys.path().join("b")).unwrap();
    let canary = "canary-vault-value-7d1f93";
    for (name, store) in [("sqlite", &b.sqlite), ("postgres", &b.postgres)] {
        store
            .set_secret(&vault, "zendesk_token", canary)
            .await
            .unwrap();
        store
            .set_secret(&vault, "jira_token", "another-value-123")
            .await
            .unwrap();
        assert_eq!(
            store
                .secret(&vault, "zendesk_token")
                .await
                .unwrap()
                .as_deref(),
            Some(canary),
            "{name}"
        );
        assert!(store.secret(&vault, "missing").await.unwrap().is_none());
        let err = store
            .secret(&other_key, "zendesk_token")
            .await
            .expect_err("another master key cannot decrypt");
        assert!(
            format!("{err:#}").contains("wrong master key"),
            "{name}: {err:#}"
        );
        assert!(!format!("{err:#}").contains(canary));
        let names: Vec<String> = store
            .secret_names()
            .await
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["jira_token", "zendesk_token"], "{name}");
        assert!(store.remove_secret("jira_token").await.unwrap());
        assert!(!store.remove_secret("jira_token").await.unwrap());
        assert!(store.set_secret(&vault, "bad name", canary).await.is_err());
    }
    // A ciphertext moved to another name does not decrypt (the name is bound to it), and the
    // database never holds the value.
    b._pg
        .psql(
            "vault",
            "INSERT INTO secrets SELECT 'moved', nonce, ciphertext, updated_at FROM secrets WHERE name = 'zendesk_token'",
        )
        .unwrap();
    assert!(b.postgres.secret(&vault, "moved").await.is_err());
    let dump = b
        ._pg
        .psql(
            "vault",
            "SELECT encode(nonce, 'escape') || encode(ciphertext, 'escape') FROM secrets",
        )
        .unwrap();
    assert!(!dump.contains(canary));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_decided_once_however_many_daemons_are_asked() {
    use airlock::store::approvals::{Approval, ApprovalError};
    let b = backends("approvals").await;
    let url = b._pg.url_of("approvals");
    let mut pg_daemons = Vec::new();
    for _ in 0..4 {
        pg_daemons.push(Store::Postgres(Arc::new(
            PgStore::open(&url).await.unwrap(),
        )));
    }
    let sqlite_daemons = vec![b.sqlite.clone(); 4];
    for (name, daemons) in [("sqlite", sqlite_daemons), ("postgres", pg_daemons)] {
        let a = Approval::pending(
            "token:bob",
            "acme",
            "jira",
            "create-ticket",
            serde_json::json!({"summary": "x"}),
        );
        daemons[0].insert_approval(&a).await.unwrap();
        // The requester may not approve their own request.
        let own = daemons[1]
            .decide_approval(&a.id, "approved", "token:bob", true)
            .await;
        assert!(
            matches!(own, Err(ApprovalError::SelfApproval { .. })),
            "{name}"
        );
        // Four daemons asked at once: exactly one decides.
        let mut tasks = Vec::new();
        for (i, d) in daemons.iter().enumerate() {
            let (d, id) = (d.clone(), a.id.clone());
            tasks.push(tokio::spawn(async move {
                d.decide_approval(&id, "approved", &format!("token:admin{i}"), true)
                    .await
            }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(x) => {
                    won += 1;
                    assert_eq!(x.status, "approved");
                }
                Err(ApprovalError::AlreadyDecided { status, .. }) => assert_eq!(status, "approved"),
                Err(e) => panic!("{name}: {e}"),
            }
        }
        assert_eq!(won, 1, "{name}");
        daemons[2]
            .finish_approval(&a.id, &Ok(serde_json::json!({"key": "SD-1"})))
            .await
            .unwrap();
        let done = daemons[3].approval(&a.id).await.unwrap().unwrap();
        assert_eq!(done.status, "executed", "{name}");
        assert_eq!(done.result, Some(serde_json::json!({"key": "SD-1"})));
        assert_eq!(
            daemons[0]
                .approvals(Some("acme"), Some("executed"))
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            daemons[0]
                .approvals(Some("other"), None)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            daemons[0]
                .decide_approval("nope", "denied", "token:x", false)
                .await,
            Err(ApprovalError::NotFound(_))
        ));
    }
}
