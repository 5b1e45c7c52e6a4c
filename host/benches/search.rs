//! `make bench`: local search over 1,000,000 documents — p50 and p99 query latency of the
//! bm25-ranked FTS5 search with tenant and ACL filters (goal: p50 <= 10 ms, p99 <= 50 ms),
//! against the plan before (ordered by a bm25() expression) in the same run.

use std::time::{Duration, Instant};

use airlock::runtime::model::Document;
use airlock::store::documents::{self, Query};

mod common;
use common::{Rng, VOCAB, word};

const DOCS: usize = 1_000_000;
const QUERIES: usize = 1000;

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut conn = airlock::store::open(dir.path())?;
    let words: Vec<String> = (0..VOCAB).map(word).collect();
    let mut rng = Rng(42);
    let t = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..DOCS {
        let title: Vec<&str> = (0..4).map(|_| words[rng.word()].as_str()).collect();
        let body: Vec<&str> = (0..40).map(|_| words[rng.word()].as_str()).collect();
        batch.push(Document {
            id: i.to_string(),
            kind: if i % 3 == 0 {
                "ticket".into()
            } else {
                "page".into()
            },
            title: title.join(" "),
            body: body.join(" "),
            url: None,
            updated_at: "2026-01-01T00:00:00Z".into(),
            metadata: serde_json::json!({}).into(),
            // Ten groups; each document readable by one of them.
            acl: vec![format!("group:g{}", i % 10)],
        });
        if batch.len() == 10_000 {
            let tx = conn.transaction()?;
            documents::apply_page(
                &tx,
                if (i / 10_000) % 2 == 0 {
                    "confluence"
                } else {
                    "zendesk"
                },
                &batch,
                &[],
                "now",
            )?;
            tx.commit()?;
            batch.clear();
        }
    }
    let load = t.elapsed();
    println!(
        "local search over {DOCS} documents (loaded in {:.1}s, {:.0} docs/s)",
        load.as_secs_f64(),
        DOCS as f64 / load.as_secs_f64()
    );
    // What the daemon runs: a tenant's connectors and the caller's ACL readers, and no FTS
    // `optimize` (the daemon never runs it); then the same after `optimize` for comparison.
    let tenant = ["confluence".to_string()];
    let readers = documents::Readers::names(&["user:ada", "group:g3"], &[]);
    let filtered = Query {
        limit: 20,
        connectors: Some(&tenant),
        readers: Some(&readers),
        ..Default::default()
    };
    let unfiltered = Query {
        limit: 20,
        ..Default::default()
    };
    let mut rng_q = Rng(7);
    run_queries(
        &conn,
        &words,
        &mut rng_q,
        &filtered,
        "tenant + ACL filters, as stored",
    )?;
    // Baseline, same run: the plan before (ordered by a bm25() expression, so every match was
    // joined, filtered and given a snippet before the sort).
    let mut rng_q = Rng(7);
    run_with(
        &words,
        &mut rng_q,
        "baseline: ordered by a bm25() expression",
        |q| bm25_ordered(&conn, q, &filtered).map(|n| n.len()),
    )?;
    let mut rng_q = Rng(7);
    run_queries(
        &conn,
        &words,
        &mut rng_q,
        &unfiltered,
        "no filters, as stored",
    )?;
    let t = Instant::now();
    conn.execute_batch("INSERT INTO documents_fts(documents_fts) VALUES ('optimize');")?;
    println!("  (FTS optimize took {:.1}s)", t.elapsed().as_secs_f64());
    let mut rng_q = Rng(7);
    run_queries(
        &conn,
        &words,
        &mut rng_q,
        &filtered,
        "tenant + ACL filters, optimized",
    )?;
    Ok(())
}

/// The search as it was before FTS5's `rank` ordered it (the same filters): the baseline.
fn bm25_ordered(
    conn: &rusqlite::Connection,
    text: &str,
    base: &Query<'_>,
) -> anyhow::Result<Vec<String>> {
    let fts = documents::fts_query(text, false).unwrap_or_default();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT d.id, snippet(documents_fts, 1, '[', ']', '…', 16), bm25(documents_fts, 4.0, 1.0)
         FROM documents_fts JOIN documents d ON d.rowid = documents_fts.rowid
         WHERE documents_fts MATCH ?1
           AND (?2 IS NULL OR d.connector IN (SELECT value FROM json_each(?2)))
           AND {}
         ORDER BY bm25(documents_fts, 4.0, 1.0) LIMIT ?3",
        documents::readers_sql("?4")
    ))?;
    let connectors = base
        .connectors
        .map(|c| serde_json::to_string(c).unwrap_or_default());
    let rows = stmt.query_map(
        rusqlite::params![
            fts,
            connectors,
            base.limit as i64,
            base.readers.map(documents::Readers::to_json)
        ],
        |r| r.get::<_, String>(0),
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Runs the query set with `base`'s filters and prints its latency figures.
fn run_queries(
    conn: &rusqlite::Connection,
    words: &[String],
    rng: &mut Rng,
    base: &Query<'_>,
    label: &str,
) -> anyhow::Result<()> {
    run_with(words, rng, label, |text| {
        let q = Query {
            text,
            ..base.clone()
        };
        Ok(documents::search(conn, &q)?.len())
    })
}

/// Runs the query set through `search` (which answers the number of hits) and prints its
/// latency figures.
fn run_with(
    words: &[String],
    rng: &mut Rng,
    label: &str,
    mut search: impl FnMut(&str) -> anyhow::Result<usize>,
) -> anyhow::Result<()> {
    let mut times: Vec<Duration> = Vec::with_capacity(QUERIES);
    let mut total_hits = 0usize;
    for q in 0..QUERIES {
        let n = 1 + q % 2;
        let text: Vec<&str> = (0..n)
            .map(|_| words[50 + (rng.next() as usize) % 5000].as_str())
            .collect();
        let text = text.join(" ");
        let t = Instant::now();
        let hits = search(&text)?;
        times.push(t.elapsed());
        total_hits += hits;
    }
    times.sort();
    let p = |x: f64| times[((times.len() - 1) as f64 * x) as usize].as_secs_f64() * 1000.0;
    println!(
        "  {label}: {QUERIES} queries (1-2 words, top 20): p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms   average hits {:.1}   (goal p50 <= 10 ms, p99 <= 50 ms)",
        p(0.5),
        p(0.99),
        p(1.0),
        total_hits as f64 / QUERIES as f64
    );
    Ok(())
}
