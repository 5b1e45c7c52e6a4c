//! The Confluence connector, in the real host against the fake: search, get, permission checks
//! and a full sync return exactly the fake's data.

use std::collections::BTreeMap;

use airlock::runtime::connector::Op;
use airlock_tests::*;
use fake_saas::{ConfluenceOptions, spawn_confluence};
use serde_json::json;

async fn setup() -> (fake_saas::RunningFake, Env, airlock::app::Airlock) {
    let fake = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions::default(),
    )
    .await
    .expect("fake");
    let env = Env::new(&confluence_config(&fake.base_url));
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let a = start_in_process(&env).await;
    (fake, env, a)
}

async fn full_sync(
    a: &airlock::app::Airlock,
    cursor: Option<String>,
) -> (
    Vec<airlock::runtime::model::Document>,
    Vec<String>,
    Option<String>,
    usize,
) {
    let c = a.connector("confluence").expect("loaded");
    let mut cursor = cursor;
    let mut upserts = Vec::new();
    let mut deletes = Vec::new();
    let mut pages = 0;
    loop {
        let page = c
            .sync_page("pages", cursor.clone())
            .await
            .expect("sync page");
        pages += 1;
        assert!(pages < 1000, "sync does not terminate");
        upserts.extend(page.upserts);
        deletes.extend(page.deletes.into_iter().map(|d| d.id));
        if !page.done {
            // Mid-run a repeated cursor would loop forever; a finished run with no changes may
            // legitimately hand back the cursor it was given.
            assert_ne!(page.next_cursor, cursor, "cursor repeated");
        }
        cursor = page.next_cursor;
        if page.done {
            return (upserts, deletes, cursor, pages);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_equals_the_fakes_pages() {
    let (fake, _env, a) = setup().await;
    let (docs, deletes, _cursor, pages) = full_sync(&a, None).await;
    let truth = fake.truth();
    assert!(
        pages >= 2,
        "120 pages at the default page size take several sync pages"
    );
    assert!(deletes.is_empty());
    let mut by_id: BTreeMap<String, _> = BTreeMap::new();
    for d in docs {
        assert!(
            by_id.insert(d.id.clone(), d).is_none(),
            "duplicate document"
        );
    }
    assert_eq!(by_id.len(), truth.pages.len());
    for p in &truth.pages {
        let d = by_id
            .get(&p.id)
            .unwrap_or_else(|| panic!("page {} missing", p.id));
        assert_eq!(d.kind, "page");
        assert_eq!(d.title, p.title);
        assert_eq!(norm(&d.body), norm(&p.body_text), "body of {}", p.id);
        assert_eq!(d.updated_at, p.version_created_at);
        assert_eq!(d.metadata["spaceId"], p.space_id);
        assert!(
            d.url
                .as_deref()
                .is_some_and(|u| u.starts_with(&fake.base_url)),
            "{:?}",
            d.url
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_sync_fetches_changes_and_deletions() {
    let (fake, _env, a) = setup().await;
    let (_, _, cursor, _) = full_sync(&a, None).await;
    let cursor = cursor.expect("a finished sync leaves a cursor");
    // The watermark has minute-free precision in the fake; make sure changes are newer.
    let report = fake.mutate(fake_saas::Mutation {
        update: 3,
        delete: 2,
        create: 1,
        ..Default::default()
    });
    let (docs, deletes, _, _) = full_sync(&a, Some(cursor)).await;
    let ids: std::collections::BTreeSet<_> = docs.iter().map(|d| d.id.clone()).collect();
    for id in report.updated.iter().chain(&report.created) {
        assert!(ids.contains(id), "changed page {id} not fetched");
    }
    for id in &report.deleted {
        assert!(deletes.contains(id), "deleted page {id} not reported");
    }
    assert!(
        docs.len() < 20,
        "incremental sync refetched {} pages",
        docs.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_get_and_permission_match_the_fake() {
    let (fake, _env, a) = setup().await;
    let truth = fake.truth();
    let planted: std::collections::BTreeSet<_> = truth
        .pages
        .iter()
        .filter(|p| {
            p.body_text
                .to_lowercase()
                .contains(fake_saas::confluence::PLANTED_PHRASE)
        })
        .map(|p| p.id.clone())
        .collect();
    assert_eq!(planted.len(), 3);
    let r = a
        .invoke(
            "confluence",
            Op::Search {
                query: fake_saas::confluence::PLANTED_PHRASE.into(),
                limit: 25,
                cursor: None,
            },
        )
        .await
        .expect("search");
    let found: std::collections::BTreeSet<_> = r["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .filter_map(|h| h["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(found, planted);

    let p = &truth.pages[5];
    let d = a
        .invoke("confluence", Op::Get { id: p.id.clone() })
        .await
        .expect("get");
    assert_eq!(d["title"], p.title);
    assert_eq!(
        norm(d["body"].as_str().unwrap_or_default()),
        norm(&p.body_text)
    );

    let missing = a
        .invoke(
            "confluence",
            Op::Get {
                id: "999999999".into(),
            },
        )
        .await;
    assert!(
        matches!(missing, Err(airlock::runtime::connector::InvokeError::Connector(ref c)) if c.code == "not-found"),
        "{missing:?}"
    );

    let restricted = truth
        .pages
        .iter()
        .find(|p| !p.read_restricted_to.is_empty() && !p.readers.is_empty())
        .expect("a restricted page");
    let allowed = &restricted.readers[0];
    let r = a
        .invoke(
            "confluence",
            Op::CheckPermission {
                principal: allowed.clone(),
                id: restricted.id.clone(),
            },
        )
        .await
        .expect("check");
    assert_eq!(r, json!({"allowed": true}));
    let r = a
        .invoke(
            "confluence",
            Op::CheckPermission {
                principal: "nobody-123".into(),
                id: restricted.id.clone(),
            },
        )
        .await
        .expect("check");
    assert_eq!(r, json!({"allowed": false}));

    let h = a.invoke("confluence", Op::Health).await.expect("health");
    assert_eq!(h["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_surface_as_unauthorized() {
    let fake = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions::default(),
    )
    .await
    .expect("fake");
    let env = Env::new(&confluence_config(&fake.base_url));
    env.set_secret("confluence_token", "not-the-right-token");
    let a = start_in_process(&env).await;
    let r = a.invoke("confluence", Op::Get { id: "1".into() }).await;
    assert!(
        matches!(r, Err(airlock::runtime::connector::InvokeError::Connector(ref c)) if c.code == "unauthorized"),
        "{r:?}"
    );
}
