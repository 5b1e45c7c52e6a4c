//! Hybrid semantic search end to end, with the real `openai` component embedding through the
//! gate against the OpenAI fake's deterministic embeddings: a semantic query finds a document
//! that shares no word with it; hybrid fuses keyword and vector ranks; the ACL and tenant filters
//! hold in every mode (REST, tokens of real principals); a re-sync of an unchanged corpus sends
//! no embedding request; a changed document re-embeds only its own chunks.

use std::time::Duration;

use airlock::search::{Mode, SearchRequest};
use airlock_tests::*;
use fake_saas::{ConfluenceOptions, Mutation, spawn_confluence};
use serde_json::json;

const KEY: &str = "sk-test-embed";

fn everything(query: &str, mode: Mode) -> SearchRequest {
    SearchRequest {
        query: query.into(),
        connector: None,
        kind: None,
        limit: 10,
        live: false,
        live_timeout: Duration::from_secs(5),
        scope: None,
        mode,
        vector: None,
        any_word: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_of_an_unchanged_corpus_embeds_nothing_and_a_change_only_its_chunks() {
    let oa = openai_fake(KEY).await;
    let wiki = spawn_confluence(
        "127.0.0.1:0".parse().expect("addr"),
        ConfluenceOptions::default(),
    )
    .await
    .expect("confluence fake");
    let env = Env::new(&format!(
        "{}{}",
        semantic_config(&oa.base_url),
        confluence_config(&wiki.base_url)
    ));
    env.set_secret("openai_key", KEY);
    env.set_secret("confluence_token", &ConfluenceOptions::default().api_token);
    let a = start_in_process(&env).await;
    let sync_all = || async {
        for s in a.streams_of("confluence", None).expect("streams") {
            a.sync_stream("confluence", &s, true, |_| {})
                .await
                .unwrap_or_else(|e| panic!("sync {s}: {e}"));
        }
    };

    sync_all().await;
    let chunks = a.store.chunk_count("confluence").await.expect("count");
    let (requests, texts) = (oa.embedding_requests(), oa.embedded_texts());
    println!("first sync: {chunks} chunks, {texts} texts embedded in {requests} requests");
    assert!(chunks > 0 && requests > 0);
    assert!(texts <= chunks as usize, "equal chunk texts share a vector");
    // Every call went through the gate with the vault's key, and is audited.
    assert!(oa.truth().requests.iter().all(|r| r.status == 200));

    oa.clear_log();
    sync_all().await;
    assert_eq!(
        oa.embedding_requests(),
        0,
        "an unchanged corpus embeds nothing"
    );
    assert_eq!(
        a.store.chunk_count("confluence").await.expect("count"),
        chunks
    );

    let changed = wiki.mutate(Mutation {
        update: 1,
        ..Default::default()
    });
    let id = changed.updated.first().expect("a page was updated").clone();
    sync_all().await;
    let doc = a
        .store
        .documents("confluence", None)
        .await
        .expect("docs")
        .into_iter()
        .find(|d| d.id == id)
        .expect("the updated page is stored");
    let its_chunks = airlock::search::chunking::chunk(&doc.title, &doc.body, 400, 80).len();
    println!(
        "after updating page {id} ({its_chunks} chunks): {} texts in {} requests",
        oa.embedded_texts(),
        oa.embedding_requests()
    );
    assert!(oa.embedding_requests() >= 1);
    assert!(
        oa.embedded_texts() >= 1 && oa.embedded_texts() <= its_chunks,
        "only the changed page's chunks are embedded"
    );

    // The audit log holds the embedding calls like any other invocation's.
    a.flush();
    let rows = audit_rows(&env);
    assert!(
        rows.iter().any(|r| r.event.connector == "embedder"
            && r.event.path.as_deref() == Some("/v1/embeddings")),
        "embedding calls are audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_and_hybrid_search_find_by_meaning_and_keep_the_acl() {
    let oa = openai_fake(KEY).await;
    let wiki_component = component("confluence");
    let env = Env::new(&format!(
        r#"{}
[[connector]]
id = "wiki"
component = "{}"
[connector.settings]
base_url = "http://127.0.0.1:9"

[[connector]]
id = "other-tenant-wiki"
component = "{}"
tenant = "beta"
permissions = "tenant"
[connector.settings]
base_url = "http://127.0.0.1:9"
"#,
        semantic_config(&oa.base_url),
        wiki_component.display(),
        wiki_component.display()
    ));
    env.set_secret("openai_key", KEY);
    store_docs(
        &env,
        "wiki",
        &[
            doc(
                "boot",
                "Notebook does not start",
                "Hold the power button for ten seconds, then plug in the charger.",
                &["alice"],
            ),
            doc(
                "boot-bob",
                "Desktop fails to power on",
                "Check the power cable and the wall socket.",
                &["bob"],
            ),
            doc(
                "print",
                "Printer toner",
                "Replace the toner cartridge of the third floor printer.",
                &["alice", "bob"],
            ),
            doc(
                "paper",
                "Paper jam on the printing machine",
                "Open tray two and remove the stuck paper.",
                &["alice", "bob"],
            ),
            doc(
                "leave",
                "Vacation policy",
                "Holidays are requested in the HR portal.",
                &["alice", "bob"],
            ),
        ],
    );
    store_docs(
        &env,
        "other-tenant-wiki",
        &[doc(
            "beta-boot",
            "Laptop won't boot",
            "Beta's own runbook.",
            &[],
        )],
    );
    {
        let a = start_in_process(&env).await;
        for c in ["wiki", "other-tenant-wiki"] {
            let r = a.index_semantic(c).await.expect("indexed");
            assert!(r.documents > 0 && r.embedded > 0, "{c}: {r:?}");
        }
        // The operator's unfiltered search, in process.
        let r = a
            .search(&everything("laptop won't boot", Mode::Semantic))
            .await
            .expect("search");
        assert_eq!(r.hits.len(), 5 + 1);
        a.flush();
    }

    let d = env.serve();
    // The modes are offered (the dashboard's search box reads them here).
    let (_, v) = d.get("/v1/connectors").await;
    assert_eq!(v["search_modes"], json!(["keyword", "semantic", "hybrid"]));
    let alice = env.create_token("alice", "default", &[], false);
    let bob = env.create_token("bob", "default", &[], false);
    let search = |token: String, body: serde_json::Value| {
        let url = format!("{}/v1/search", d.base);
        async move { http_auth("POST", &url, Some(&token), Some(body.to_string())).await }
    };
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["hits"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|h| h["id"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };

    // No word in common with "Notebook does not start": keyword finds nothing, semantic finds it.
    let q = "laptop won't boot";
    let (s, kw) = search(alice.clone(), json!({"query": q})).await;
    assert_eq!(s, 200, "{kw}");
    assert!(ids(&kw).is_empty(), "keyword: {kw}");
    let (s, sem) = search(alice.clone(), json!({"query": q, "mode": "semantic"})).await;
    assert_eq!(s, 200, "{sem}");
    println!("alice semantic: {:?}", ids(&sem));
    assert_eq!(ids(&sem).first().map(String::as_str), Some("boot"), "{sem}");

    // Bob may not open alice's page, nor another tenant's: not in semantic, not in hybrid.
    for mode in ["semantic", "hybrid"] {
        let (s, r) = search(bob.clone(), json!({"query": q, "mode": mode, "limit": 50})).await;
        assert_eq!(s, 200, "{r}");
        let got = ids(&r);
        println!("bob {mode}: {got:?}");
        assert!(!got.contains(&"boot".to_string()), "{mode}: {r}");
        assert!(!got.contains(&"beta-boot".to_string()), "{mode}: {r}");
        assert_eq!(
            got.first().map(String::as_str),
            Some("boot-bob"),
            "{mode}: {r}"
        );
    }

    // Hybrid: the page both lists rank first leads; a page only the meaning matches follows.
    let (s, hy) = search(
        alice.clone(),
        json!({"query": "printer toner", "mode": "hybrid"}),
    )
    .await;
    assert_eq!(s, 200, "{hy}");
    let got = ids(&hy);
    println!("alice hybrid 'printer toner': {got:?}");
    assert_eq!(got.first().map(String::as_str), Some("print"), "{hy}");
    assert!(
        got.contains(&"paper".to_string()),
        "semantic-only match is fused in: {hy}"
    );
    let scores: Vec<f64> = hy["hits"]
        .as_array()
        .map(|h| h.iter().filter_map(|h| h["score"].as_f64()).collect())
        .unwrap_or_default();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    // MCP's search tool forwards `mode` to the same route; an unknown mode is refused.
    let (s, r) = search(alice.clone(), json!({"query": q, "mode": "vibes"})).await;
    assert_eq!(s, 400, "{r}");
    assert!(oa.embedding_requests() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_modes_without_configuration_are_a_clear_400() {
    let env = Env::new(&two_tenant_config());
    let d = env.serve();
    let (_, v) = d.get("/v1/connectors").await;
    assert_eq!(v["search_modes"], json!(["keyword"]), "{v}");
    let (s, r) = d
        .post("/v1/search", r#"{"query": "anything", "mode": "hybrid"}"#)
        .await;
    assert_eq!(s, 400, "{r}");
    assert!(
        r.to_string().contains("semantic search is not configured"),
        "{r}"
    );
    let (s, r) = d
        .post("/v1/search", r#"{"query": "anything", "mode": "keyword"}"#)
        .await;
    assert_eq!(s, 200, "{r}");
}

#[test]
fn a_semantic_section_naming_an_unknown_connector_is_refused_at_load() {
    let env = Env::new("[search.semantic]\nconnector = \"nope\"\nmodel = \"m\"\n");
    let e = airlock::config::Config::load(&env.config)
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("search.semantic.connector") && e.contains("nope"),
        "{e}"
    );
}

/// The fake's embedding, in process, counting the texts it is given.
struct CountingEmbedder(std::sync::atomic::AtomicUsize);

impl airlock::search::Embedder for CountingEmbedder {
    fn embed(
        &self,
        texts: Vec<String>,
    ) -> futures::future::BoxFuture<'_, anyhow::Result<Vec<Vec<f32>>>> {
        self.0
            .fetch_add(texts.len(), std::sync::atomic::Ordering::Relaxed);
        Box::pin(async move {
            Ok(texts
                .iter()
                .map(|t| fake_saas::embeddings::embed(t))
                .collect())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_vectors_and_filters_agree_on_sqlite_and_postgres() {
    use airlock::model::DocumentRef;
    use airlock::store::backend::{PageCommit, SearchQuery, Store};
    use airlock::store::documents::Readers;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    let pg = tokio::task::spawn_blocking(pg_cluster::PgCluster::start)
        .await
        .expect("cluster");
    pg.create_database("semantic").expect("db");
    let postgres = Store::Postgres(Arc::new(
        airlock::store::pg::PgStore::open(&pg.url_of("semantic"))
            .await
            .expect("postgres store"),
    ));
    let dir = tempfile::tempdir().expect("dir");
    let sqlite = Store::Sqlite(Arc::new(
        airlock::store::Db::open(dir.path()).expect("sqlite"),
    ));
    let cfg = airlock::config::SemanticConfig {
        connector: "embedder".into(),
        model: "m".into(),
        chunk_chars: 200,
        chunk_overlap: 40,
        batch: 8,
        ann: true,
    };
    let long_body = "Hold the power button, then plug in the charger. ".repeat(12);
    let docs = vec![
        doc("boot", "Notebook does not start", &long_body, &["alice"]),
        doc(
            "boot-bob",
            "Desktop fails to power on",
            "Check the cable.",
            &["bob"],
        ),
        doc(
            "print",
            "Printer toner",
            "Replace the toner cartridge.",
            &[],
        ),
    ];
    let mut answers = Vec::new();
    for store in [&sqlite, &postgres] {
        store
            .commit_page(PageCommit {
                connector: "wiki".into(),
                stream: "pages".into(),
                upserts: docs.clone(),
                done: true,
                ..Default::default()
            })
            .await
            .expect("commit");
        let e = CountingEmbedder(Default::default());
        let r = airlock::search::semantic::index(store, &cfg, "wiki", &e, None)
            .await
            .expect("index");
        // The approximate index, built from the store, then told of what indexing rewrites.
        let ann = airlock::search::ann::AnnIndex::new("m");
        ann.build(store).await.expect("ann build");
        assert!(ann.is_ready() && ann.len() == r.chunks, "{}", ann.len());
        let ann = &ann;
        assert_eq!(r.documents, 3, "{}", store.describe());
        let first = e.0.load(Ordering::Relaxed);
        assert!(first >= 3 && r.chunks >= 4, "{r:?}");
        let again = airlock::search::semantic::index(store, &cfg, "wiki", &e, Some(ann))
            .await
            .expect("index");
        assert_eq!(again.documents, 0);
        assert_eq!(e.0.load(Ordering::Relaxed), first, "nothing re-embedded");
        // A permission change re-chunks without embedding anything.
        let mut moved = docs[2].clone();
        moved.acl = vec!["bob".into()];
        store
            .put_documents("wiki", vec![moved], vec![])
            .await
            .expect("put");
        let acl = airlock::search::semantic::index(store, &cfg, "wiki", &e, Some(ann))
            .await
            .expect("index");
        assert_eq!((acl.documents, acl.embedded), (1, 0), "{acl:?}");

        let query = |names: &[&str], mode, through: Option<&'static str>| {
            let q = SearchQuery {
                text: "laptop won't boot".into(),
                limit: 10,
                readers: Some(Readers::names(names, &["wiki"])),
                any_word: false,
                ..Default::default()
            };
            let v = airlock::search::QueryVector {
                model: "m".into(),
                vector: fake_saas::embeddings::embed("laptop won't boot"),
            };
            async move {
                let index = through.map(|_| ann);
                airlock::search::semantic::local_hits(store, index, q, mode, Some(&v))
                    .await
                    .expect("search")
                    .into_iter()
                    .map(|h| h.id)
                    .collect::<Vec<_>>()
            }
        };
        let alice = query(&["alice"], Mode::Semantic, None).await;
        let bob = query(&["bob"], Mode::Hybrid, None).await;
        assert_eq!(alice.first().map(String::as_str), Some("boot"));
        assert!(!bob.contains(&"boot".to_string()), "{bob:?}");
        // Through the index: the same answers, under the same filters.
        let via = Some("ann");
        assert_eq!(query(&["alice"], Mode::Semantic, via).await, alice);
        assert_eq!(query(&["bob"], Mode::Hybrid, via).await, bob);
        answers.push((alice, bob));

        store
            .put_documents(
                "wiki",
                vec![],
                vec![DocumentRef {
                    kind: "page".into(),
                    id: "boot".into(),
                }],
            )
            .await
            .expect("delete");
        assert_eq!(
            store.chunk_count("wiki").await.expect("count"),
            2,
            "a deleted document's chunks go with it"
        );
        // The index still holds the deleted document's vectors: the store drops them.
        let after = query(&["alice"], Mode::Semantic, Some("ann")).await;
        assert!(!after.contains(&"boot".to_string()), "{after:?}");
    }
    assert_eq!(answers[0], answers[1], "both backends answer alike");
}
