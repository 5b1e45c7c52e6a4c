//! The change feed's readers and wake-ups, the webhook outbox, kept push subscriptions and the
//! own OAuth authorization server's grants behave the same on SQLite and on PostgreSQL; on
//! PostgreSQL several daemons (several pools on one database) share them: a commit on one wakes
//! a long poll on another, each webhook delivery is sent by one daemon once, an authorization
//! code is redeemed once.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock::model::{Document, DocumentRef};
use airlock::store::Db;
use airlock::store::backend::changes::ChangesQuery;
use airlock::store::backend::{PageCommit, Store};
use airlock::store::documents::Readers;
use airlock::store::hook_subscriptions::Kept;
use airlock::store::oauth_grants::{NewGrant, Refused};
use airlock::store::pg::PgStore;
use pg_cluster::PgCluster;

struct Backends {
    pg: PgCluster,
    db: String,
    _dir: tempfile::TempDir,
    sqlite: Store,
    postgres: Store,
}

impl Backends {
    /// Another daemon on the same PostgreSQL database: a pool of its own.
    async fn other_daemon(&self) -> Store {
        let url = self.pg.url_of(&self.db);
        Store::Postgres(Arc::new(PgStore::open(&url).await.expect("postgres store")))
    }
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
        _dir: dir,
        sqlite,
        postgres,
    }
}

fn doc(id: &str, acl: &[&str]) -> Document {
    Document {
        id: id.into(),
        kind: "page".into(),
        title: format!("page {id}"),
        body: "body".into(),
        url: None,
        updated_at: "2026-01-01T00:00:00Z".into(),
        metadata: serde_json::json!({}).into(),
        acl: acl.iter().map(|s| s.to_string()).collect(),
    }
}

fn page(upserts: Vec<Document>, deletes: Vec<DocumentRef>) -> PageCommit {
    PageCommit {
        connector: "wiki".into(),
        stream: "pages".into(),
        upserts,
        deletes,
        ..Default::default()
    }
}

fn all_after(after: i64, limit: usize, readers: Option<Readers>) -> ChangesQuery {
    ChangesQuery {
        after,
        limit,
        readers,
        ..Default::default()
    }
}

/// (id, op) of every change a reader sees, read in pages of `limit`.
async fn follow(store: &Store, limit: usize, readers: Option<Readers>) -> Vec<(String, String)> {
    let (mut after, mut seen) = (0, Vec::new());
    loop {
        let page = store
            .changes(all_after(after, limit, readers.clone()))
            .await
            .unwrap()
            .expect("nothing pruned");
        seen.extend(page.changes.iter().map(|c| (c.id.clone(), c.op.clone())));
        if page.next == after {
            return seen;
        }
        after = page.next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_feed_reads_the_same_commits_on_both_backends() {
    let b = backends("feed").await;
    let mut feeds = Vec::new();
    for store in [&b.sqlite, &b.postgres] {
        let docs: Vec<Document> = (0..30)
            .map(|i| {
                doc(
                    &format!("p{i:02}"),
                    if i % 2 == 0 { &["alice"] } else { &[] },
                )
            })
            .collect();
        store.commit_page(page(docs, vec![])).await.unwrap();
        let gone = DocumentRef {
            kind: "page".into(),
            id: "p00".into(),
        };
        store
            .commit_page(page(vec![doc("p30", &["bob"])], vec![gone]))
            .await
            .unwrap();
        let everything = follow(store, 7, None).await;
        assert_eq!(everything.len(), 32);
        assert_eq!(everything[31], ("p00".into(), "delete".into()));
        // alice reads her documents and the open connector's ones, never bob's.
        let alice = follow(store, 5, Some(Readers::names(&["alice"], &["wiki"]))).await;
        assert_eq!(alice.len(), 31);
        assert!(!alice.iter().any(|(id, _)| id == "p30"));
        // A tenant without the connector sees nothing, but moves past it all.
        let elsewhere = store
            .changes(ChangesQuery {
                within: Some(vec!["desk".into()]),
                ..all_after(0, 10, None)
            })
            .await
            .unwrap()
            .unwrap();
        assert!(elsewhere.changes.is_empty());
        assert!(elsewhere.next > 0);
        feeds.push((everything, alice));
    }
    assert_eq!(feeds[0], feeds[1], "both backends read the same feed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_on_one_daemon_is_woken_by_a_commit_on_another() {
    let b = backends("wake").await;
    let (daemon_a, daemon_b) = (b.postgres.clone(), b.other_daemon().await);
    // The first wait puts daemon A's listener in place.
    daemon_a.committed_within(Duration::from_millis(50)).await;
    let before = daemon_a.changes(all_after(0, 10, None)).await.unwrap();
    let after = before.unwrap().next;
    let waiter = {
        let a = daemon_a.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            a.committed_within(Duration::from_secs(30)).await;
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon_b
        .commit_page(page(vec![doc("new", &[])], vec![]))
        .await
        .unwrap();
    let waited = waiter.await.unwrap();
    assert!(
        waited < Duration::from_secs(5),
        "woken by the other daemon's commit, not by the timeout: {waited:?}"
    );
    let news = daemon_a
        .changes(all_after(after, 10, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(news.changes.len(), 1);
    assert_eq!(news.changes[0].id, "new");

    // SQLite: this process's commits wake its waiters.
    let sqlite = b.sqlite.clone();
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        sqlite.committed_within(Duration::from_secs(30)).await;
        started.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.sqlite.notify_committed();
    assert!(waiter.await.unwrap() < Duration::from_secs(5));
}

/// Runs one daemon's webhook worker rounds (fan out, claim, "send", settle) until nothing is
/// left, recording each delivery it sent.
async fn deliver(store: Store, sent: Arc<Mutex<Vec<(String, i64)>>>) {
    let now = || chrono::Utc::now().timestamp_millis();
    loop {
        store
            .fan_out_webhook("w", &["wiki".into()], &[], 7, now())
            .await
            .unwrap();
        let claimed = store
            .claim_deliveries(now(), 3, now() + 60_000)
            .await
            .unwrap();
        for d in &claimed {
            sent.lock().unwrap().push((d.id.clone(), d.change_seq));
            tokio::task::yield_now().await;
            store
                .settle_delivery(&d.id, Some(200), None, None)
                .await
                .unwrap();
        }
        let idle = claimed.is_empty()
            && store.next_delivery_due().await.unwrap().is_none()
            && store.webhook_summaries(&["w".into()]).await.unwrap()[0].cursor
                == Some(last_seq(&store).await);
        if idle {
            return;
        }
    }
}

async fn last_seq(store: &Store) -> i64 {
    let mut after = 0;
    loop {
        let p = store
            .changes(all_after(after, 1000, None))
            .await
            .unwrap()
            .unwrap();
        if p.next == after {
            return after;
        }
        after = p.next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_sending_one_outbox_deliver_each_change_once() {
    let b = backends("outbox").await;
    for (name, daemons) in [
        ("sqlite", [b.sqlite.clone(), b.sqlite.clone()]),
        ("postgres", [b.postgres.clone(), b.other_daemon().await]),
    ] {
        daemons[0].reconcile_webhooks(&["w".into()]).await.unwrap();
        daemons[1].reconcile_webhooks(&["w".into()]).await.unwrap();
        let docs: Vec<Document> = (0..40).map(|i| doc(&format!("d{i}"), &[])).collect();
        for chunk in docs.chunks(10) {
            daemons[0]
                .commit_page(page(chunk.to_vec(), vec![]))
                .await
                .unwrap();
        }
        let sent = Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = daemons
            .iter()
            .map(|d| tokio::spawn(deliver(d.clone(), sent.clone())))
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        let sent = sent.lock().unwrap().clone();
        let ids: BTreeSet<&String> = sent.iter().map(|(id, _)| id).collect();
        let seqs: BTreeSet<i64> = sent.iter().map(|(_, s)| *s).collect();
        assert_eq!(sent.len(), 40, "{name}: each delivery sent once");
        assert_eq!((ids.len(), seqs.len()), (40, 40), "{name}: one per change");
        let s = &daemons[1].webhook_summaries(&["w".into()]).await.unwrap()[0];
        assert_eq!((s.pending, s.delivered, s.dead), (0, 40, 0), "{name}");
        let listed = daemons[1]
            .webhook_deliveries("w", Some("delivered"), 100)
            .await
            .unwrap();
        assert_eq!(listed.len(), 40, "{name}");

        // A failed attempt is retried later, a last one dead-letters, a retry by hand revives.
        daemons[0]
            .commit_page(page(vec![doc("late", &[])], vec![]))
            .await
            .unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        daemons[0]
            .fan_out_webhook("w", &["wiki".into()], &[], 100, now)
            .await
            .unwrap();
        let d = daemons[1]
            .claim_deliveries(now, 10, now + 60_000)
            .await
            .unwrap();
        assert_eq!(d.len(), 1, "{name}");
        assert!(
            daemons[0]
                .claim_deliveries(now, 10, now + 60_000)
                .await
                .unwrap()
                .is_empty(),
            "{name}: a claimed delivery is nobody else's"
        );
        daemons[1]
            .settle_delivery(&d[0].id, Some(500), Some("HTTP 500"), None)
            .await
            .unwrap();
        assert_eq!(
            daemons[0].webhook_summaries(&["w".into()]).await.unwrap()[0].dead,
            1,
            "{name}"
        );
        assert!(daemons[0].retry_delivery("w", &d[0].id, now).await.unwrap());
        assert!(!daemons[0].retry_delivery("w", &d[0].id, now).await.unwrap());
        let again = daemons[0]
            .claim_deliveries(now, 10, now + 60_000)
            .await
            .unwrap();
        assert_eq!((again.len(), again[0].attempts), (1, 0), "{name}");

        // A removed webhook holds the feed back no more.
        daemons[0].reconcile_webhooks(&[]).await.unwrap();
        assert_eq!(
            daemons[1].webhook_summaries(&["w".into()]).await.unwrap()[0].cursor,
            None,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_subscriptions_are_replaced_not_duplicated_on_both_backends() {
    let b = backends("subs").await;
    for store in [&b.sqlite, &b.postgres] {
        assert_eq!(store.kept_subscription("msgraph").await.unwrap(), None);
        let mut k = Kept {
            connector: "msgraph".into(),
            id: "sub-1".into(),
            resource: "users".into(),
            notification_url: "https://a.example/v1/hooks/msgraph".into(),
            expires_at: "2026-12-06T00:00:00Z".into(),
            renewed_at: "2026-12-04T00:00:00Z".into(),
        };
        store.keep_subscription(&k).await.unwrap();
        k.expires_at = "2026-12-07T00:00:00Z".into();
        store.keep_subscription(&k).await.unwrap();
        assert_eq!(store.kept_subscription("msgraph").await.unwrap(), Some(k));
        store.forget_subscription("msgraph").await.unwrap();
        assert_eq!(store.kept_subscription("msgraph").await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_code_is_redeemed_once_across_daemons() {
    let b = backends("grants").await;
    for (name, daemons) in [
        ("sqlite", [b.sqlite.clone(), b.sqlite.clone()]),
        ("postgres", [b.postgres.clone(), b.other_daemon().await]),
    ] {
        let (token, _) = daemons[0]
            .create_token("ada", "acme", &["eng".into()], false, &[])
            .await
            .unwrap();
        let client = daemons[0]
            .register_oauth_client(Some("app"), &["https://c.example/cb".into()], 10_000)
            .await
            .unwrap()
            .unwrap();
        let found = daemons[1].oauth_client(&client.id).await.unwrap().unwrap();
        assert_eq!(found, client, "{name}");
        let scopes = ["search".to_string(), "read".to_string()];
        // A person signed in upstream: the grant names them itself, read alike everywhere.
        let person = airlock::store::oauth_grants::Person {
            name: "bo@contoso.com".into(),
            tenant: "acme".into(),
            groups: vec!["ops".into()],
        };
        let (pid, _) = daemons[0]
            .start_oauth_grant(&NewGrant {
                client_id: &client.id,
                api_token_id: "",
                person: Some(&person),
                scopes: &scopes,
                resource: "https://a.example/mcp",
                redirect_uri: "https://c.example/cb",
                code_challenge: "x",
                code_ttl_ms: 60_000,
            })
            .await
            .unwrap();
        let g = daemons[1].live_oauth_grant(&pid).await.unwrap();
        let g = g.unwrap_or_else(|| panic!("{name}: the person's grant is live"));
        assert_eq!(
            (g.principal.name.as_str(), g.principal.tenant.as_str()),
            ("bo@contoso.com", "acme"),
            "{name}"
        );
        assert_eq!(g.principal.groups, ["ops"], "{name}");
        let listed = daemons[1].oauth_grants().await.unwrap();
        assert!(
            listed.iter().any(|x| x.id == pid
                && x.principal.as_deref() == Some("bo@contoso.com")
                && !x.api_token_revoked),
            "{name}: {listed:?}"
        );
        let grant = NewGrant {
            client_id: &client.id,
            api_token_id: &token.id,
            person: None,
            scopes: &scopes,
            resource: "https://a.example/mcp",
            redirect_uri: "https://c.example/cb",
            code_challenge: "x",
            code_ttl_ms: 60_000,
        };
        let (id, code) = daemons[0].start_oauth_grant(&grant).await.unwrap();
        // Both daemons are shown the code at once: one accepts it.
        let (r0, r1) = tokio::join!(
            daemons[0].redeem_oauth_code(&code, &client.id),
            daemons[1].redeem_oauth_code(&code, &client.id),
        );
        let outcomes = [r0.unwrap(), r1.unwrap()];
        let accepted: Vec<_> = outcomes.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(accepted.len(), 1, "{name}: the code is used once");
        assert_eq!(accepted[0].grant.principal.name, "ada");
        assert_eq!(accepted[0].grant.scopes, scopes);
        assert!(
            outcomes.iter().any(|r| matches!(r, Err(Refused::Replayed))),
            "{name}: the other use is a replay"
        );
        assert!(
            daemons[0].live_oauth_grant(&id).await.unwrap().is_none(),
            "{name}: a replayed code revokes its grant"
        );

        // Refresh tokens rotate across daemons; the spent one replayed ends the family.
        let (id, _) = daemons[0].start_oauth_grant(&grant).await.unwrap();
        let first = daemons[0].issue_oauth_refresh(&id, 60_000).await.unwrap();
        let (g, second) = daemons[1]
            .rotate_oauth_refresh(&first, &client.id, 60_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(g.id, id);
        assert_eq!(
            daemons[1].grant_of_oauth_refresh(&second).await.unwrap(),
            Some((id.clone(), client.id.clone()))
        );
        assert_eq!(
            daemons[0]
                .rotate_oauth_refresh(&first, &client.id, 60_000)
                .await
                .unwrap()
                .unwrap_err(),
            Refused::Replayed,
            "{name}"
        );
        assert_eq!(
            daemons[1]
                .rotate_oauth_refresh(&second, &client.id, 60_000)
                .await
                .unwrap()
                .unwrap_err(),
            Refused::Revoked,
            "{name}: the whole family"
        );
        // Revoking by hand; the API token's revocation ends grants too.
        let (id, _) = daemons[0].start_oauth_grant(&grant).await.unwrap();
        assert!(daemons[1].live_oauth_grant(&id).await.unwrap().is_some());
        assert!(daemons[1].revoke_oauth_grant(&id, "test").await.unwrap());
        assert!(!daemons[0].revoke_oauth_grant(&id, "test").await.unwrap());
        let (id, _) = daemons[0].start_oauth_grant(&grant).await.unwrap();
        daemons[1].revoke_tokens(&token.id).await.unwrap();
        assert!(
            daemons[0].live_oauth_grant(&id).await.unwrap().is_none(),
            "{name}"
        );
        // Registration stops at the bound.
        assert!(
            daemons[1]
                .register_oauth_client(None, &[], 1)
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
    }
}
