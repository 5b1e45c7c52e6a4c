//! `make bench`: semantic search over 20,000 chunks of 256 dimensions (the fake's embedding of
//! generated texts; `ANN_BENCH_DOCS=25000` for 100,000, whose index build takes 7 to 15 minutes
//! on 2 cores) with an ACL filter that lets a quarter through, and one that lets everything
//! through — the approximate index (search/ann.rs) against the exact scan in the same run:
//! recall@10, p50/p99 latency and their ratio, the index's build time and memory; each ACL as
//! the index plans it (the permitted vectors compared one by one, or the graph) and through the
//! graph alone. A selective ACL (one document in 1,000) shows the one-by-one comparison.

use std::time::{Duration, Instant};

use airlock::model::Document;
use airlock::search::ann::{self, AnnIndex, FLAT_SCAN_CHUNKS, Plan};
use airlock::store::backend::Store;
use airlock::store::documents::{self, Readers};
use airlock::store::embeddings::{VectorQuery, encode};

mod common;
use common::{Rng, VOCAB, word};

/// Documents (4 chunks each); `ANN_BENCH_DOCS=25000` for 100,000 chunks.
fn docs() -> usize {
    std::env::var("ANN_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}
const CHUNKS_PER_DOC: usize = 4;
const WORDS_PER_CHUNK: usize = 40;
const QUERIES: usize = 100;
const MODEL: &str = "fake-embedding-1";

/// The resident set of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Loads the corpus straight into the SQLite file (documents through the store's own page
/// write, chunks in one transaction).
fn load(dir: &std::path::Path, words: &[String]) -> anyhow::Result<()> {
    let mut conn = airlock::store::open(dir)?;
    let mut rng = Rng(42);
    let all: Vec<Document> = (0..docs())
        .map(|i| Document {
            id: i.to_string(),
            kind: "page".into(),
            title: format!("doc {i}"),
            body: String::new(),
            url: None,
            updated_at: "2026-01-01T00:00:00Z".into(),
            metadata: serde_json::json!({}).into(),
            // Four groups, and one document in 1,000 also readable by `rare`.
            acl: if i % 1000 == 7 {
                vec![format!("group:g{}", i % 4), "rare".into()]
            } else {
                vec![format!("group:g{}", i % 4)]
            },
        })
        .collect();
    let tx = conn.transaction()?;
    documents::apply_page(&tx, "wiki", &all, &[], "now")?;
    {
        let mut ins = tx.prepare(
            "INSERT INTO chunks (connector, kind, id, seq, model, text_hash, text, vector)
             VALUES ('wiki', 'page', ?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for i in 0..docs() {
            // A document keeps to a few topics: its chunks share half their words.
            let topic: Vec<usize> = (0..WORDS_PER_CHUNK).map(|_| rng.word()).collect();
            for seq in 0..CHUNKS_PER_DOC {
                let text: Vec<&str> = (0..WORDS_PER_CHUNK)
                    .map(|w| {
                        if w % 2 == 0 {
                            words[topic[w]].as_str()
                        } else {
                            words[rng.word()].as_str()
                        }
                    })
                    .collect();
                let text = text.join(" ");
                let v = fake_saas::embeddings::embed(&text);
                ins.execute(rusqlite::params![
                    i.to_string(),
                    seq as i64,
                    MODEL,
                    format!("{i}-{seq}"),
                    text,
                    encode(&v)
                ])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

struct Figures {
    label: &'static str,
    exact: Vec<Duration>,
    index: Vec<Duration>,
    /// Of the exact scan's 10 documents, the share the index also returned.
    recall: f64,
    /// Of the index's 10, the share at least as near as the exact scan's 10th (ann-benchmarks'
    /// k-nn recall): the fake's bag-of-words vectors tie often, and among documents tied at the
    /// 10th score either choice is right.
    tie_recall: f64,
    /// How the index answered the queries.
    plan: Plan,
}

/// The planner as shipped, and the graph alone (no one-by-one comparison).
const SETTINGS: [(&str, usize); 2] = [("index as planned", FLAT_SCAN_CHUNKS), ("graph alone", 0)];

/// Each query is answered by the exact scan once and by the index under each setting.
async fn measure(
    store: &Store,
    index: &AnnIndex,
    words: &[String],
    readers: &Readers,
    settings: &[(&'static str, usize)],
) -> anyhow::Result<Vec<Figures>> {
    let mut rng = Rng(7);
    let mut exact_t = Vec::new();
    let mut per: Vec<(Vec<Duration>, usize, usize, Plan)> =
        settings.iter().map(|_| Default::default()).collect();
    let mut total = 0usize;
    for _ in 0..QUERIES {
        let n = 3 + (rng.next() % 4) as usize;
        let text: Vec<&str> = (0..n).map(|_| words[rng.word()].as_str()).collect();
        let q = VectorQuery {
            model: MODEL.into(),
            vector: fake_saas::embeddings::embed(&text.join(" ")),
            limit: 10,
            connectors: Some(vec!["wiki".into()]),
            readers: Some(readers.clone()),
            ..Default::default()
        };
        let t = Instant::now();
        let exact = store.vector_search(q.clone()).await?;
        exact_t.push(t.elapsed());
        total += exact.len();
        let tenth = exact.last().and_then(|h| h.score).unwrap_or(f64::INFINITY);
        for ((_, flat_scan), (times, found, near, plan)) in settings.iter().zip(per.iter_mut()) {
            index.set_flat_scan(*flat_scan);
            if let Some(c) = index.candidates(&q, 20) {
                plan.graph += c.plan.graph;
                plan.flat += c.plan.flat;
            }
            let t = Instant::now();
            let approx = ann::vector_search(store, Some(index), q.clone()).await?;
            times.push(t.elapsed());
            *found += exact
                .iter()
                .filter(|h| approx.iter().any(|a| a.id == h.id))
                .count();
            *near += approx
                .iter()
                .take(exact.len())
                .filter(|a| a.score.is_some_and(|s| s >= tenth - 1e-6))
                .count();
        }
    }
    index.set_flat_scan(FLAT_SCAN_CHUNKS);
    exact_t.sort();
    Ok(settings
        .iter()
        .zip(per)
        .map(|((label, _), (mut times, found, near, plan))| {
            times.sort();
            Figures {
                label,
                exact: exact_t.clone(),
                index: times,
                recall: found as f64 / total.max(1) as f64,
                tie_recall: near as f64 / total.max(1) as f64,
                plan,
            }
        })
        .collect())
}

fn report(label: &str, figures: &[Figures]) {
    println!("  {label}:");
    if let Some(f) = figures.first() {
        let (e50, e99) = (percentile(&f.exact, 0.5), percentile(&f.exact, 0.99));
        println!("    exact scan: p50 {e50:.2?}, p99 {e99:.2?}");
    }
    for f in figures {
        let (e50, e99) = (percentile(&f.exact, 0.5), percentile(&f.exact, 0.99));
        let (i50, i99) = (percentile(&f.index, 0.5), percentile(&f.index, 0.99));
        println!(
            "    {} ({} queries through the graph, {} compared one by one):",
            f.label, f.plan.graph, f.plan.flat
        );
        println!(
            "      recall@10 vs exact: {:.3} (goal >= 0.95); counting ties at the 10th score as found: {:.3}",
            f.recall, f.tie_recall
        );
        println!(
            "      p50 {i50:.2?}, p99 {i99:.2?}  (ratio to exact: p50 {:.3}x, p99 {:.3}x)",
            i50.as_secs_f64() / e50.as_secs_f64(),
            i99.as_secs_f64() / e99.as_secs_f64()
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let words: Vec<String> = (0..VOCAB).map(word).collect();
    let t = Instant::now();
    {
        let (dir, words) = (dir.path().to_path_buf(), words.clone());
        tokio::task::spawn_blocking(move || load(&dir, &words)).await??;
    }
    let chunks = docs() * CHUNKS_PER_DOC;
    println!(
        "semantic search over {chunks} chunks x {} dims (loaded in {:.1}s)",
        fake_saas::embeddings::DIMS,
        t.elapsed().as_secs_f64()
    );
    let store = Store::Sqlite(std::sync::Arc::new(airlock::store::Db::open(dir.path())?));
    println!("  building the index…");
    let index = AnnIndex::new(MODEL);
    let before = rss_kib();
    let t = Instant::now();
    let built = index.build(&store).await?;
    let build = t.elapsed();
    let grown = rss_kib().saturating_sub(before);
    println!(
        "  index build: {} chunks in {:.1}s ({:.0} chunks/s); resident memory +{:.0} MiB ({:.0} bytes per chunk; the vectors alone are {} bytes)",
        built.chunks,
        build.as_secs_f64(),
        built.chunks as f64 / build.as_secs_f64(),
        grown as f64 / 1024.0,
        grown as f64 * 1024.0 / built.chunks.max(1) as f64,
        fake_saas::embeddings::DIMS * 4
    );
    let quarter = Readers::names(&["group:g1"], &[]);
    report(
        "ACL lets a quarter through (group:g1)",
        &measure(&store, &index, &words, &quarter, &SETTINGS).await?,
    );
    let all = Readers::names(&["group:g0", "group:g1", "group:g2", "group:g3"], &[]);
    report(
        "ACL lets everything through (all four groups)",
        &measure(&store, &index, &words, &all, &SETTINGS).await?,
    );
    let rare = Readers::names(&["rare"], &[]);
    report(
        "selective ACL (1 document in 1,000)",
        &measure(&store, &index, &words, &rare, &SETTINGS[..1]).await?,
    );
    Ok(())
}
