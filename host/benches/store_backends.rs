//! `make bench`: the store on SQLite vs PostgreSQL (a throwaway cluster on loopback): committing
//! 100,000 records as sync pages of 100 (one writer; and three writers on three streams, as
//! three daemons would), and search p50/p99 at 100,000 documents with tenant and ACL filters.
//! Each figure is a ratio to SQLite measured in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::model::Document;
use airlock::store::Db;
use airlock::store::backend::{PageCommit, SearchQuery, Store};
use airlock::store::documents::Readers;
use airlock::store::pg::PgStore;
use airlock::store::sync_state::PageCounts;

mod common;
use common::{Rng, VOCAB, word};

const RECORDS: usize = 100_000;
const PAGE: usize = 100;
const QUERIES: usize = 500;

fn corpus(words: &[String], stream: usize, n: usize) -> Vec<Document> {
    let mut rng = Rng(42 + stream as u64);
    (0..n)
        .map(|i| {
            let title: Vec<&str> = (0..4).map(|_| words[rng.word()].as_str()).collect();
            let body: Vec<&str> = (0..40).map(|_| words[rng.word()].as_str()).collect();
            Document {
                id: format!("{stream}-{i}"),
                kind: "ticket".into(),
                title: title.join(" "),
                body: body.join(" "),
                url: None,
                updated_at: "2026-01-01T00:00:00Z".into(),
                metadata: serde_json::json!({"n": i}).into(),
                acl: vec![format!("group:g{}", i % 10)],
            }
        })
        .collect()
}

/// Commits `docs` as pages of one stream; returns records/s.
async fn load(store: &Store, connector: &str, docs: &[Document]) -> anyhow::Result<f64> {
    let t = Instant::now();
    for (n, chunk) in docs.chunks(PAGE).enumerate() {
        store
            .commit_page(PageCommit {
                connector: connector.into(),
                stream: "tickets".into(),
                invocation: Some(format!("inv-{n}")),
                upserts: chunk.to_vec(),
                next_cursor: Some(n.to_string()),
                counts: PageCounts {
                    upserts: chunk.len() as i64,
                    deletes: 0,
                    first: n == 0,
                },
                ..Default::default()
            })
            .await?;
    }
    Ok(docs.len() as f64 / t.elapsed().as_secs_f64())
}

/// Three writers at once, each its own connector (and, on PostgreSQL, its own pool: three
/// daemons); returns the combined records/s.
async fn load_three(stores: [Store; 3], words: &[String]) -> anyhow::Result<f64> {
    let per = RECORDS / 3;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (i, store) in stores.into_iter().enumerate() {
        let docs = corpus(words, 10 + i, per);
        tasks.push(tokio::spawn(async move {
            load(&store, &format!("desk{i}"), &docs).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((per * 3) as f64 / t.elapsed().as_secs_f64())
}

async fn search(store: &Store, words: &[String]) -> anyhow::Result<(Duration, Duration, usize)> {
    let readers = Readers::names(&["user:ada", "group:g3"], &[]);
    let tenant = vec!["desk".to_string()];
    let mut rng = Rng(7);
    let mut lat = Vec::with_capacity(QUERIES);
    let mut hits = 0;
    for _ in 0..QUERIES {
        let text = format!("{} {}", words[rng.word()], words[rng.word()]);
        let q = SearchQuery {
            text,
            limit: 20,
            connectors: Some(tenant.clone()),
            readers: Some(readers.clone()),
            any_word: false,
            ..Default::default()
        };
        let t = Instant::now();
        hits += store.search(q).await?.len();
        lat.push(t.elapsed());
    }
    lat.sort();
    Ok((lat[QUERIES / 2], lat[QUERIES * 99 / 100], hits))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let pg = match tokio::task::spawn_blocking(pg_cluster::PgCluster::try_start).await? {
        Ok(pg) => pg,
        Err(e) => {
            println!("store backends: skipped (no PostgreSQL here: {e})");
            return Ok(());
        }
    };
    let words: Vec<String> = (0..VOCAB).map(word).collect();
    let docs = corpus(&words, 0, RECORDS);

    let dir = tempfile::tempdir()?;
    let sqlite = Store::Sqlite(Arc::new(Db::open(dir.path())?));
    let postgres = Store::Postgres(Arc::new(PgStore::open(&pg.url()).await?));
    println!("store backends: {RECORDS} records as sync pages of {PAGE}");
    let s1 = load(&sqlite, "desk", &docs).await?;
    let p1 = load(&postgres, "desk", &docs).await?;
    println!(
        "  one writer:    sqlite {s1:>8.0} rec/s   postgres {p1:>8.0} rec/s   ratio {:.2}x",
        p1 / s1
    );
    let (sp50, sp99, sh) = search(&sqlite, &words).await?;
    let (pp50, pp99, ph) = search(&postgres, &words).await?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  search at {RECORDS} docs, tenant + ACL filters: sqlite p50 {:.2} ms p99 {:.2} ms ({sh} hits); postgres p50 {:.2} ms p99 {:.2} ms ({ph} hits); p50 ratio {:.2}x",
        ms(sp50),
        ms(sp99),
        ms(pp50),
        ms(pp99),
        pp50.as_secs_f64() / sp50.as_secs_f64()
    );

    // Three writers: SQLite serialises them on one file; PostgreSQL takes them in parallel.
    let dir3 = tempfile::tempdir()?;
    let sqlite3 = Store::Sqlite(Arc::new(Db::open(dir3.path())?));
    pg.create_database("three").map_err(anyhow::Error::msg)?;
    let url3 = pg.url_of("three");
    let mut pgs = Vec::new();
    for _ in 0..3 {
        pgs.push(Store::Postgres(Arc::new(PgStore::open(&url3).await?)));
    }
    let pgs: [Store; 3] = pgs
        .try_into()
        .map_err(|_| anyhow::anyhow!("three stores"))?;
    let s3 = load_three([sqlite3.clone(), sqlite3.clone(), sqlite3], &words).await?;
    let p3 = load_three(pgs, &words).await?;
    println!(
        "  three writers: sqlite {s3:>8.0} rec/s   postgres {p3:>8.0} rec/s   ratio {:.2}x (postgres 3 vs 1 writer: {:.2}x)",
        p3 / s3,
        p3 / p1
    );
    Ok(())
}
