//! `make bench`: retrieval quality on a labelled query set (benches/data/, how it was labelled:
//! benches/data/retrieval-README.md): nDCG@10, recall@10 and MRR@10 of keyword, semantic and
//! hybrid search, through the host's own path: the documents are in the store, `index_semantic`
//! chunks them and embeds the chunks with the real `openai` component through the gate, and
//! `Airlock::search` answers each query in each mode. Two embedding servers, both
//! OpenAI-compatible `/v1/embeddings` on loopback: the fake's deterministic embedding (plumbing,
//! not a quality figure), and a real small model (all-MiniLM-L6-v2, tests/embedding-model/) when
//! its environment is installed; otherwise its figures are skipped with the reason.
//!
//! The hand-written corpus is mixed with the Confluence fake's generated pages (word salad from
//! the vocabulary the corpus is about) as unlabelled distractors; `RETRIEVAL_DISTRACTORS` sets
//! how many (default 1,000).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use airlock::app::{Airlock, StartOptions};
use airlock::config::Config;
use airlock::model::Document;
use airlock::scrub::Scrubber;
use airlock::search::fusion::{self, Ranked};
use airlock::search::relevance::{self, Judgements};
use airlock::search::{Mode, SearchRequest};
use airlock::store::documents;
use serde::Deserialize;

const K: usize = 10;
/// The connector id the corpus is stored under.
const CORPUS: &str = "kb";
const KEY_VAR: &str = "AIRLOCK_BENCH_EMBED_KEY";

#[derive(Deserialize)]
struct CorpusFile {
    documents: Vec<CorpusDoc>,
}

#[derive(Deserialize)]
struct CorpusDoc {
    id: String,
    kind: String,
    title: String,
    body: String,
}

#[derive(Deserialize)]
struct QueriesFile {
    queries: Vec<Query>,
}

#[derive(Deserialize)]
struct Query {
    id: String,
    style: String,
    query: String,
    relevant: Judgements,
}

fn data(name: &str) -> anyhow::Result<String> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/data")
        .join(name);
    std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
}

fn distractors() -> usize {
    std::env::var("RETRIEVAL_DISTRACTORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn document(id: String, kind: &str, title: String, body: String) -> Document {
    Document {
        id,
        kind: kind.into(),
        title,
        body,
        url: None,
        updated_at: "2026-01-01T00:00:00Z".into(),
        metadata: serde_json::json!({}).into(),
        acl: vec![],
    }
}

/// The labelled corpus and `n` pages of the Confluence fake's generated data set.
async fn corpus(n: usize) -> anyhow::Result<Vec<Document>> {
    let file: CorpusFile = serde_json::from_str(&data("retrieval-corpus.json")?)?;
    let mut docs: Vec<Document> = file
        .documents
        .into_iter()
        .map(|d| document(d.id, &d.kind, d.title, d.body))
        .collect();
    if n > 0 {
        let opts = fake_saas::ConfluenceOptions {
            pages: n,
            spaces: 8,
            ..Default::default()
        };
        let wiki = fake_saas::spawn_confluence("127.0.0.1:0".parse()?, opts).await?;
        docs.extend(
            wiki.truth()
                .pages
                .into_iter()
                .map(|p| document(format!("gen-{}", p.id), "page", p.title, p.body_text)),
        );
    }
    Ok(docs)
}

/// An OpenAI-compatible embedding server: its base URL (…/v1) and model name.
struct Server {
    label: String,
    base: String,
    model: String,
}

/// The real model's server process, killed on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Starts tests/embedding-model/serve.py with the environment `make bench` installs (or
/// `RETRIEVAL_MODEL_PYTHON`); Err says why the real model cannot run here.
fn real_model() -> Result<(Server, Child), String> {
    let python = std::env::var_os("RETRIEVAL_MODEL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/embedding-model/venv/bin/python"));
    if !python.exists() {
        let why = std::fs::read_to_string(workspace().join("target/embedding-model/skipped"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| {
                "not installed (`make bench` runs tests/embedding-model/setup.sh)".into()
            });
        return Err(format!("{}: {why}", python.display()));
    }
    let mut child = std::process::Command::new(&python)
        .arg(workspace().join("tests/embedding-model/serve.py"))
        .args(["--port", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let child = Child(child);
    let mut line = String::new();
    std::io::BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let url = line
        .strip_prefix("listening on ")
        .map(str::trim)
        .ok_or_else(|| format!("the model server did not start: {line:?}"))?;
    let server = Server {
        label: "all-MiniLM-L6-v2 (real model, 384 dims)".into(),
        base: format!("{url}/v1"),
        model: "all-MiniLM-L6-v2".into(),
    };
    Ok((server, child))
}

fn config(dir: &Path, s: &Server) -> anyhow::Result<Config> {
    let component = workspace().join("target/wasm32-wasip2/release/openai.wasm");
    anyhow::ensure!(
        component.exists(),
        "{} missing: run `make bench`",
        component.display()
    );
    let text = format!(
        r#"[server]
data_dir = "data"

[search.semantic]
connector = "embedder"
model = "{model}"
index = "exact"
batch = 32


[[connector]]
id = "embedder"
component = "{c}"
# A local model on a shared CPU: one call of 32 texts can take several seconds.
limits = {{ timeout = "120s" }}
[connector.settings]
flavor = "openai"
base_url = "{base}"
model = "unused"
embedding_model = "{model}"

[[grant]]
connector = "embedder"
url = "{base}/"
methods = ["POST"]
exact_paths = ["/v1/embeddings"]
allow_private = true
allow_insecure = true
auth = {{ type = "bearer", token = "env:{KEY_VAR}" }}
"#,
        model = s.model,
        base = s.base,
        c = component.display()
    );
    Ok(Config::parse(&text, &dir.join("airlock.toml"))?)
}

/// A way of searching, as the API or `ask` would.
struct Variant {
    label: &'static str,
    mode: Mode,
    any_word: bool,
}

const VARIANTS: [Variant; 5] = [
    Variant {
        label: "keyword, all words (/v1/search)",
        mode: Mode::Keyword,
        any_word: false,
    },
    Variant {
        label: "keyword, any word (ask)",
        mode: Mode::Keyword,
        any_word: true,
    },
    Variant {
        label: "semantic",
        mode: Mode::Semantic,
        any_word: false,
    },
    Variant {
        label: "hybrid, all words (/v1/search)",
        mode: Mode::Hybrid,
        any_word: false,
    },
    Variant {
        label: "hybrid, any word (ask)",
        mode: Mode::Hybrid,
        any_word: true,
    },
];

/// Sums of one variant's measures, overall and per query style.
#[derive(Default)]
struct Sums {
    n: usize,
    ndcg: f64,
    recall: f64,
    rr: f64,
    by_style: BTreeMap<String, (usize, f64)>,
}

async fn evaluate(s: &Server, docs: &[Document], queries: &[Query]) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        std::fs::create_dir_all(dir.path().join("data"))?;
        let mut conn = airlock::store::open(&dir.path().join("data"))?;
        let tx = conn.transaction()?;
        documents::apply_page(&tx, CORPUS, docs, &[], "now")?;
        tx.commit()?;
    }
    let a = Airlock::start(
        config(dir.path(), s)?,
        Scrubber::new(),
        StartOptions::default(),
    )
    .await?;
    println!("\n{}:", s.label);
    let t = Instant::now();
    let first = a.index_semantic(CORPUS).await.ok_or_else(|| {
        anyhow::anyhow!("indexing through the `embed` action failed (RUST_LOG=warn shows why)")
    })?;
    println!(
        "  indexed {} documents: {} chunks, {} texts embedded through the gate in {:.1}s",
        first.documents,
        first.chunks,
        first.embedded,
        t.elapsed().as_secs_f64()
    );
    let again = a
        .index_semantic(CORPUS)
        .await
        .ok_or_else(|| anyhow::anyhow!("second indexing pass failed"))?;
    println!(
        "  indexing the unchanged corpus again: {} documents looked at, {} texts embedded (goal: 0)",
        again.documents, again.embedded
    );
    println!(
        "  {:<34} {:>8} {:>10} {:>7}   nDCG@10 by style",
        "mode", "nDCG@10", "recall@10", "MRR@10"
    );
    for v in &VARIANTS {
        let mut sums = Sums::default();
        let t = Instant::now();
        for q in queries {
            let req = SearchRequest {
                query: q.query.clone(),
                connector: Some(CORPUS.into()),
                kind: None,
                limit: K,
                live: false,
                live_timeout: Duration::from_secs(5),
                scope: None,
                mode: v.mode,
                vector: None,
                any_word: v.any_word,
            };
            let hits = a.search(&req).await?.hits;
            let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
            let ndcg = relevance::ndcg_at(&ids, &q.relevant, K);
            sums.n += 1;
            sums.ndcg += ndcg;
            sums.recall += relevance::recall_at(&ids, &q.relevant, K, 1);
            sums.rr += relevance::reciprocal_rank_at(&ids, &q.relevant, K, 2);
            let style = sums.by_style.entry(q.style.clone()).or_default();
            style.0 += 1;
            style.1 += ndcg;
        }
        let n = sums.n.max(1) as f64;
        let styles: Vec<String> = sums
            .by_style
            .iter()
            .map(|(style, (m, sum))| format!("{style} {:.3} ({m})", sum / (*m).max(1) as f64))
            .collect();
        println!(
            "  {:<34} {:>8.3} {:>10.3} {:>7.3}   {}  [{:.0} ms/query]",
            v.label,
            sums.ndcg / n,
            sums.recall / n,
            sums.rr / n,
            styles.join(", "),
            t.elapsed().as_secs_f64() * 1000.0 / n
        );
    }
    fusion_grid(&a, queries).await
}

/// A way of fusing keyword and semantic ranks, from the grid fixed before the first run.
struct Fusion {
    label: &'static str,
    /// Keyword's list: any word (else all words), its weight, whether it only reorders.
    any_word: bool,
    weight: f64,
    reorders_only: bool,
}

const FUSIONS: [Fusion; 7] = [
    Fusion {
        label: "rrf, equal weights",
        any_word: false,
        weight: 1.0,
        reorders_only: false,
    },
    Fusion {
        label: "keyword weight 0.5",
        any_word: false,
        weight: 0.5,
        reorders_only: false,
    },
    Fusion {
        label: "keyword weight 0.25",
        any_word: false,
        weight: 0.25,
        reorders_only: false,
    },
    Fusion {
        label: "keyword reorders only",
        any_word: false,
        weight: 1.0,
        reorders_only: true,
    },
    // The baseline of the any-word lists (`ask`'s retrieval), for the rule below.
    Fusion {
        label: "any-word, equal weights",
        any_word: true,
        weight: 1.0,
        reorders_only: false,
    },
    Fusion {
        label: "any-word keyword weight 0.5",
        any_word: true,
        weight: 0.5,
        reorders_only: false,
    },
    Fusion {
        label: "any-word keyword reorders only",
        any_word: true,
        weight: 1.0,
        reorders_only: true,
    },
];

/// Hybrid's fusion choices on the labelled set: the keyword and semantic lists (twice the
/// limit each, as hybrid search takes them) fused each way of [`FUSIONS`]; nDCG@10 on the whole
/// set and on its two halves (even and odd positions in the file), so a choice that only fits
/// some queries shows as a split. The rule, fixed with the grid: an entry replaces equal weights
/// (of the same keyword list) only if it beats them on both halves; the bench prints the verdict.
async fn fusion_grid(a: &Airlock, queries: &[Query]) -> anyhow::Result<()> {
    let list = |q: &Query, mode: Mode, any_word: bool| SearchRequest {
        query: q.query.clone(),
        connector: Some(CORPUS.into()),
        kind: None,
        limit: 2 * K,
        live: false,
        live_timeout: Duration::from_secs(5),
        scope: None,
        mode,
        vector: None,
        any_word,
    };
    let mut lists = Vec::new();
    for q in queries {
        let all = a.search(&list(q, Mode::Keyword, false)).await?.hits;
        let any = a.search(&list(q, Mode::Keyword, true)).await?.hits;
        let sem = a.search(&list(q, Mode::Semantic, false)).await?.hits;
        lists.push((all, any, sem));
    }
    println!(
        "  hybrid fusion (keyword and semantic lists of {}): nDCG@10 all / even half / odd half / lexical / paraphrase",
        2 * K
    );
    // (all, even, odd) per entry of FUSIONS.
    let mut scores = Vec::new();
    for f in &FUSIONS {
        let mut sums: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
        for (i, (q, (all, any, sem))) in queries.iter().zip(&lists).enumerate() {
            let keyword = if f.any_word { any } else { all };
            let fused = fusion::fuse(
                vec![
                    Ranked {
                        hits: keyword.clone(),
                        weight: f.weight,
                        reorders_only: f.reorders_only,
                    },
                    Ranked::new(sem.clone(), 1.0),
                ],
                K,
            );
            let ids: Vec<&str> = fused.iter().map(|h| h.id.as_str()).collect();
            let ndcg = relevance::ndcg_at(&ids, &q.relevant, K);
            let half = if i % 2 == 0 { "even" } else { "odd" };
            for key in ["all", half, q.style.as_str()] {
                let e = sums.entry(key).or_default();
                e.0 += 1;
                e.1 += ndcg;
            }
        }
        let at = |k: &str| sums.get(k).map_or(0.0, |(n, s)| s / (*n).max(1) as f64);
        println!(
            "    {:<32} {:.3} / {:.3} / {:.3} / {:.3} / {:.3}",
            f.label,
            at("all"),
            at("even"),
            at("odd"),
            at("lexical"),
            at("paraphrase")
        );
        scores.push((at("all"), at("even"), at("odd")));
    }
    for any_word in [false, true] {
        let group = if any_word {
            "any-word keyword (ask)"
        } else {
            "all-words keyword (/v1/search)"
        };
        let base = FUSIONS
            .iter()
            .position(|f| f.any_word == any_word && f.weight == 1.0 && !f.reorders_only)
            .map(|i| scores[i]);
        let Some((_, even, odd)) = base else {
            continue;
        };
        let winners: Vec<&str> = FUSIONS
            .iter()
            .zip(&scores)
            .filter(|(f, s)| f.any_word == any_word && s.1 > even && s.2 > odd)
            .map(|(f, _)| f.label)
            .collect();
        match winners.as_slice() {
            [] => println!(
                "  rule for {group}: nothing beats equal weights on both halves; keep them"
            ),
            w => println!(
                "  rule for {group}: beats equal weights on both halves: {}",
                w.join(", ")
            ),
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // Before the runtime's threads exist. The fake checks the key; the real model's server
    // ignores it.
    unsafe { std::env::set_var(KEY_VAR, fake_saas::OpenAiOptions::default().api_key) };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let queries: QueriesFile = serde_json::from_str(&data("retrieval-queries.json")?)?;
    let queries = queries.queries;
    let docs = corpus(distractors()).await?;
    let labelled: usize = queries.iter().map(|q| q.relevant.len()).sum();
    println!(
        "retrieval quality: {} queries ({} judgements, grades 1-2) over {} documents ({} of them the Confluence fake's generated pages, unlabelled); measures at {K}, MRR on the first answering (grade 2) document",
        queries.len(),
        labelled,
        docs.len(),
        distractors()
    );
    for q in &queries {
        anyhow::ensure!(
            q.relevant.keys().all(|id| docs.iter().any(|d| &d.id == id)),
            "query {} judges a document the corpus does not have",
            q.id
        );
    }
    let fake = fake_saas::spawn_openai("127.0.0.1:0".parse()?, Default::default()).await?;
    let fake_server = Server {
        label: "the fake's deterministic embedding (256 dims; plumbing, not a quality figure)"
            .into(),
        base: format!("{}/v1", fake.base_url),
        model: fake_saas::embeddings::DEFAULT_MODEL.into(),
    };
    evaluate(&fake_server, &docs, &queries).await?;
    match real_model() {
        Ok((server, _child)) => evaluate(&server, &docs, &queries).await?,
        Err(why) => println!("\nreal model figures skipped: {why}"),
    }
    Ok(())
}
