//! The approximate nearest-neighbour index of semantic search: an HNSW graph per connector
//! (`instant-distance`), in memory, over the chunk vectors of the configured model.
//!
//! The index only proposes candidates. Every candidate goes back through the store's own vector
//! search ([`Store::vector_search_among`]: the same tenant, connector, kind and ACL conditions as
//! the exact scan, in the same SQL text), which drops deleted chunks and ranks each by the vector
//! stored now. So a stale entry can cost recall, never show a chunk the caller could not see in
//! the exact path. When fewer documents than asked survive the filter (a very selective ACL),
//! or the index is not built yet, the exact scan answers instead.
//!
//! A graph is immutable once built. Chunks written since (sync replaced a document's chunks)
//! sit in a small list scanned exactly, and the replaced document's entries in the graph are
//! skipped; when those changes, or the gap to the store's chunk count (deleted documents, or
//! chunks another daemon wrote to a shared store), reach a tenth of the graph, the connector's
//! graph is rebuilt from the store in the background and swapped in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use instant_distance::{Builder, HnswMap, Search};

use crate::store::backend::Store;
use crate::store::documents::Hit;
use crate::store::embeddings::{ChunkKey, VectorQuery};

/// Candidates a graph search returns (HNSW's `ef` at query time). Measured by `make bench`
/// (benches/ann.rs) with a quarter of the corpus permitted: recall@10 against the exact scan
/// 0.966 at 20,000 chunks, 0.90 at 100,000 (docs/configuration.md).
const EF_SEARCH: usize = 512;
/// HNSW's `ef` while building (graph quality against build time).
const EF_CONSTRUCTION: usize = 64;
/// Changes since a build below which a connector's graph is never rebuilt (the exact scan of
/// the fresh list costs nothing at this size).
const MIN_REBUILD: usize = 500;

/// A unit-length vector: the distance of two is 1 − their cosine.
#[derive(Clone)]
struct Unit(Box<[f32]>);

impl Unit {
    fn new(v: &[f32]) -> Unit {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        Unit(v.iter().map(|x| x * scale).collect())
    }

    /// In eight independent sums, which the compiler turns into SIMD (one running sum
    /// cannot be reordered, so it would not): the graph build spends its time here.
    fn dot(&self, other: &Unit) -> f32 {
        let (a, b) = (&self.0, &other.0);
        let mut lanes = [0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let tail: f32 = ca
            .remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (x, y) in ca.zip(cb) {
            for i in 0..8 {
                lanes[i] += x[i] * y[i];
            }
        }
        lanes.iter().sum::<f32>() + tail
    }
}

impl instant_distance::Point for Unit {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - self.dot(other)
    }
}

/// A chunk as the index remembers it (the connector is its graph's).
#[derive(Clone)]
struct Entry {
    kind: Arc<str>,
    id: Box<str>,
    seq: u32,
}

/// One connector's part of the index.
#[derive(Default)]
struct Partition {
    /// The graph of the last build (None before the first, or when it found no chunks).
    graph: Option<Arc<HnswMap<Unit, Entry>>>,
    /// Chunks written since the build started, with the change that wrote them.
    fresh: Vec<(Entry, Unit, u64)>,
    /// Documents (kind → id → change) whose chunks were replaced since the build started: their
    /// entries in the graph are stale and skipped.
    replaced: HashMap<String, HashMap<String, u64>>,
    /// Changes noted so far (a counter).
    change: u64,
    /// A rebuild is running.
    building: bool,
}

impl Partition {
    fn graph_len(&self) -> usize {
        self.graph.as_ref().map_or(0, |g| g.values.len())
    }

    fn is_replaced(&self, e: &Entry) -> bool {
        self.replaced
            .get(&*e.kind)
            .is_some_and(|ids| ids.contains_key(&*e.id))
    }

    /// The changes since the build, counted in chunks, and the gap to the store's count.
    fn staleness(&self, stored: u64) -> usize {
        let indexed = (self.graph_len() + self.fresh.len()) as u64;
        self.fresh.len() + indexed.abs_diff(stored) as usize
    }
}

/// The nearest chunks the index proposes for a query.
pub struct Candidates {
    pub keys: Vec<ChunkKey>,
    /// Every chunk the index holds for the queried connectors is among `keys`: documents
    /// missing from the filtered result are missing from the exact scan too.
    pub exhaustive: bool,
}

/// What a build did.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildReport {
    pub connectors: usize,
    pub chunks: usize,
}

/// The in-memory index of one embedding model's chunk vectors.
pub struct AnnIndex {
    model: String,
    parts: RwLock<HashMap<String, Partition>>,
    /// The first build finished: before it, every query takes the exact scan.
    ready: AtomicBool,
}

impl AnnIndex {
    pub fn new(model: &str) -> AnnIndex {
        AnnIndex {
            model: model.to_string(),
            parts: RwLock::default(),
            ready: AtomicBool::new(false),
        }
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Whether queries use the index (the first build is done).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Chunks held (graphs and fresh lists together).
    pub fn len(&self) -> usize {
        let parts = self.parts.read().unwrap_or_else(|e| e.into_inner());
        parts.values().map(|p| p.graph_len() + p.fresh.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds every connector's graph from the store, then serves queries.
    pub async fn build(&self, store: &Store) -> anyhow::Result<BuildReport> {
        let mut report = BuildReport::default();
        for connector in store.vector_connectors(&self.model).await? {
            report.connectors += 1;
            report.chunks += self.rebuild(store, &connector).await?;
        }
        self.ready.store(true, Ordering::Release);
        Ok(report)
    }

    /// Rebuilds `connector`'s graph when its changes since the last build, or its gap to the
    /// store's chunk count, reach a tenth of the graph (at least `MIN_REBUILD`). Returns
    /// whether it rebuilt.
    pub async fn upkeep(&self, store: &Store, connector: &str) -> anyhow::Result<bool> {
        let stored = store.chunk_count(connector).await?;
        let stale = {
            let parts = self.parts.read().unwrap_or_else(|e| e.into_inner());
            match parts.get(connector) {
                Some(p) if p.building => return Ok(false),
                Some(p) => {
                    let s = p.staleness(stored);
                    s >= MIN_REBUILD.max(p.graph_len() / 10)
                }
                None => stored as usize >= MIN_REBUILD,
            }
        };
        if stale {
            self.rebuild(store, connector).await?;
        }
        Ok(stale)
    }

    /// Builds `connector`'s graph from the store's vectors (off the async threads) and swaps it
    /// in; changes noted while it ran stay in the fresh list and the replaced set. Returns the
    /// chunks in the new graph.
    async fn rebuild(&self, store: &Store, connector: &str) -> anyhow::Result<usize> {
        let since = {
            let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
            let p = parts.entry(connector.to_string()).or_default();
            if p.building {
                return Ok(0);
            }
            p.building = true;
            p.change
        };
        let built = async {
            let rows = store.chunk_vectors(connector, &self.model).await?;
            let n = rows.len();
            let graph = tokio::task::spawn_blocking(move || build_graph(rows)).await?;
            anyhow::Ok((graph, n))
        }
        .await;
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        let p = parts.entry(connector.to_string()).or_default();
        p.building = false;
        let (graph, n) = built?;
        p.graph = graph.map(Arc::new);
        p.fresh.retain(|(_, _, c)| *c > since);
        for ids in p.replaced.values_mut() {
            ids.retain(|_, c| *c > since);
        }
        p.replaced.retain(|_, ids| !ids.is_empty());
        Ok(n)
    }

    /// Notes that a document's chunks were replaced by `chunks` (seq, vector): its entries in
    /// the graph are skipped from now on and the new ones are searched exactly until the next
    /// build.
    pub fn replaced(&self, connector: &str, kind: &str, id: &str, chunks: &[(u32, Vec<f32>)]) {
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        let p = parts.entry(connector.to_string()).or_default();
        p.change += 1;
        let change = p.change;
        p.replaced
            .entry(kind.to_string())
            .or_default()
            .insert(id.to_string(), change);
        p.fresh
            .retain(|(e, _, _)| !(&*e.kind == kind && &*e.id == id));
        let kind: Arc<str> = Arc::from(kind);
        for (seq, v) in chunks {
            let entry = Entry {
                kind: kind.clone(),
                id: id.into(),
                seq: *seq,
            };
            p.fresh.push((entry, Unit::new(v), change));
        }
    }

    /// The `want` nearest chunks of the connectors `q` may reach, or None when the index cannot
    /// answer (not built yet, or another model's query).
    pub fn candidates(&self, q: &VectorQuery, want: usize) -> Option<Candidates> {
        if !self.is_ready() || q.model != self.model {
            return None;
        }
        let query = Unit::new(&q.vector);
        let parts = self.parts.read().unwrap_or_else(|e| e.into_inner());
        let targets: Vec<(&String, &Partition)> = parts
            .iter()
            .filter(|(c, _)| q.connector.as_ref().is_none_or(|x| x == *c))
            .filter(|(c, _)| q.connectors.as_ref().is_none_or(|l| l.contains(c)))
            .collect();
        let mut found: Vec<(f32, &str, Entry)> = Vec::new();
        let mut exhaustive = true;
        let mut search = Search::default();
        for (connector, p) in targets {
            if let Some(g) = &p.graph {
                if dims(g) != query.0.len() {
                    return None;
                }
                let items = g.search(&query, &mut search);
                exhaustive &= items.len() >= g.values.len();
                found.extend(
                    items
                        .filter(|item| !p.is_replaced(item.value))
                        .map(|item| (item.distance, connector.as_str(), item.value.clone())),
                );
            }
            // Fresh chunks are compared one by one (the list stays short: see `upkeep`).
            found.extend(
                p.fresh
                    .iter()
                    .map(|(e, v, _)| (1.0 - v.dot(&query), connector.as_str(), e.clone())),
            );
        }
        found.sort_by(|a, b| a.0.total_cmp(&b.0));
        if found.len() > want {
            exhaustive = false;
            found.truncate(want);
        }
        let keys = found
            .into_iter()
            .map(|(_, connector, e)| ChunkKey {
                connector: connector.to_string(),
                kind: e.kind.to_string(),
                id: e.id.into_string(),
                seq: e.seq,
            })
            .collect();
        Some(Candidates { keys, exhaustive })
    }
}

/// The dimensions of a graph's vectors.
fn dims(g: &HnswMap<Unit, Entry>) -> usize {
    g.iter().next().map_or(0, |(_, p)| p.0.len())
}

/// An HNSW graph over the rows (None for none). Kinds are shared between entries.
fn build_graph(rows: Vec<(ChunkKey, Vec<f32>)>) -> Option<HnswMap<Unit, Entry>> {
    if rows.is_empty() {
        return None;
    }
    let mut kinds: HashMap<String, Arc<str>> = HashMap::new();
    let mut points = Vec::with_capacity(rows.len());
    let mut values = Vec::with_capacity(rows.len());
    for (k, v) in rows {
        let kind = kinds
            .entry(k.kind.clone())
            .or_insert_with(|| Arc::from(k.kind.as_str()))
            .clone();
        points.push(Unit::new(&v));
        values.push(Entry {
            kind,
            id: k.id.into_boxed_str(),
            seq: k.seq,
        });
    }
    Some(
        Builder::default()
            .ef_construction(EF_CONSTRUCTION)
            .ef_search(EF_SEARCH)
            .seed(0x5eed)
            .build(points, values),
    )
}

/// Vector search through the index when it can answer, the exact scan otherwise: the index's
/// candidates are filtered and ranked by the store like the exact scan's rows, and when fewer
/// documents than asked survive (and the index did not propose everything), the exact scan
/// answers.
pub async fn vector_search(
    store: &Store,
    index: Option<&AnnIndex>,
    q: VectorQuery,
) -> anyhow::Result<Vec<Hit>> {
    let limit = q.limit.clamp(1, 1000);
    if let Some(c) = index.and_then(|i| i.candidates(&q, EF_SEARCH.max(limit * 8))) {
        let hits = store.vector_search_among(q.clone(), c.keys).await?;
        if hits.len() >= limit || c.exhaustive {
            return Ok(hits);
        }
    }
    store.vector_search(q).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Document, DocumentRef};
    use crate::store::documents::Readers;
    use crate::store::embeddings::ChunkRow;

    const DIMS: usize = 32;

    /// A xorshift generator: the same corpus every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % 2000) as f32 / 1000.0 - 1.0
        }
        /// A point near one of 40 topics, as embeddings of related texts are.
        fn clustered(&mut self, topics: &[Vec<f32>]) -> Vec<f32> {
            let t = &topics[(self.0 % topics.len() as u64) as usize];
            let noise: Vec<f32> = (0..DIMS).map(|_| self.next() * 0.4).collect();
            t.iter().zip(noise).map(|(a, b)| a + b).collect()
        }
    }

    fn doc(id: usize, acl: &str) -> Document {
        Document {
            id: id.to_string(),
            kind: "page".into(),
            title: format!("T{id}"),
            body: "b".into(),
            url: None,
            updated_at: "2026-01-01T00:00:00Z".into(),
            metadata: serde_json::json!({}),
            acl: vec![acl.to_string()],
        }
    }

    /// A SQLite store with `n` documents of 2 chunks each; document i is readable by
    /// `reader(i)`.
    async fn corpus(
        n: usize,
        reader: impl Fn(usize) -> String,
    ) -> (tempfile::TempDir, Store, Rng, Vec<Vec<f32>>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Sqlite(Arc::new(crate::store::Db::open(dir.path()).unwrap()));
        let docs: Vec<Document> = (0..n).map(|i| doc(i, &reader(i))).collect();
        store.put_documents("w", docs, vec![]).await.unwrap();
        let mut rng = Rng(99);
        let topics: Vec<Vec<f32>> = (0..40)
            .map(|_| (0..DIMS).map(|_| rng.next()).collect())
            .collect();
        for p in store.pending_chunks("w", "m", n).await.unwrap() {
            let rows = (0..2)
                .map(|seq| ChunkRow {
                    seq,
                    text: format!("{} {seq}", p.id),
                    text_hash: format!("{}-{seq}", p.id),
                    vector: rng.clustered(&topics),
                })
                .collect();
            store.replace_chunks("w", p, "m", rows).await.unwrap();
        }
        (dir, store, rng, topics)
    }

    fn query(vector: Vec<f32>, readers: &[&str]) -> VectorQuery {
        VectorQuery {
            model: "m".into(),
            vector,
            limit: 10,
            readers: Some(Readers::names(readers, &[])),
            ..Default::default()
        }
    }

    fn ids(hits: &[Hit]) -> Vec<String> {
        hits.iter().map(|h| h.id.clone()).collect()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn recall_at_10_against_the_exact_scan_is_at_least_0_95() {
        let (_dir, store, mut rng, topics) =
            corpus(3000, |i| ["alice", "bob"][i % 2].to_string()).await;
        let ann = AnnIndex::new("m");
        let r = ann.build(&store).await.unwrap();
        assert_eq!((r.connectors, r.chunks), (1, 6000));
        let (mut found, mut total) = (0, 0);
        for _ in 0..40 {
            let q = query(rng.clustered(&topics), &["alice"]);
            let exact = ids(&store.vector_search(q.clone()).await.unwrap());
            let approx = ids(&vector_search(&store, Some(&ann), q).await.unwrap());
            total += exact.len();
            found += exact.iter().filter(|id| approx.contains(id)).count();
        }
        let recall = found as f64 / total as f64;
        assert!(recall >= 0.95, "recall@10 {recall}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_filter_is_exactly_the_exact_scans() {
        let (_dir, store, mut rng, topics) =
            corpus(1000, |i| ["alice", "bob", "carol"][i % 3].to_string()).await;
        let ann = AnnIndex::new("m");
        ann.build(&store).await.unwrap();
        for _ in 0..10 {
            let q = query(rng.clustered(&topics), &["bob"]);
            let c = ann.candidates(&q, EF_SEARCH).unwrap();
            assert!(
                c.keys
                    .iter()
                    .any(|k| k.id.parse::<usize>().unwrap() % 3 != 1)
            );
            let hits = vector_search(&store, Some(&ann), q).await.unwrap();
            assert_eq!(hits.len(), 10);
            assert!(
                hits.iter().all(|h| h.acl == ["bob"]),
                "only bob's documents"
            );
        }
        // Another tenant's connectors: nothing, whatever the index holds.
        let mut q = query(rng.clustered(&topics), &["bob"]);
        q.connectors = Some(vec!["other".into()]);
        assert!(
            vector_search(&store, Some(&ann), q)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn deleted_and_replaced_chunks_are_never_returned() {
        let (_dir, store, mut rng, topics) = corpus(600, |_| "alice".to_string()).await;
        let ann = AnnIndex::new("m");
        ann.build(&store).await.unwrap();
        let v = rng.clustered(&topics);
        let before = vector_search(&store, Some(&ann), query(v.clone(), &["alice"]))
            .await
            .unwrap();
        // The best three documents go upstream; the fourth gets a vector pointing away.
        let gone: Vec<DocumentRef> = before[..3]
            .iter()
            .map(|h| DocumentRef {
                kind: "page".into(),
                id: h.id.clone(),
            })
            .collect();
        store.put_documents("w", vec![], gone).await.unwrap();
        let moved = before[3].id.clone();
        let away: Vec<f32> = v.iter().map(|x| -x).collect();
        let p = crate::store::embeddings::Pending {
            kind: "page".into(),
            id: moved.clone(),
            title: String::new(),
            body: String::new(),
            doc_hash: "new".into(),
        };
        let row = ChunkRow {
            seq: 0,
            text: "moved".into(),
            text_hash: "moved".into(),
            vector: away.clone(),
        };
        store.replace_chunks("w", p, "m", vec![row]).await.unwrap();
        // Unnoted, the index still proposes the old vector: the store ranks by the new one.
        let hits = vector_search(&store, Some(&ann), query(v.clone(), &["alice"]))
            .await
            .unwrap();
        for h in &before[..3] {
            assert!(!ids(&hits).contains(&h.id), "deleted {} returned", h.id);
        }
        let stored_score = |hits: &[Hit]| hits.iter().find(|h| h.id == moved).map(|h| h.score);
        if let Some(score) = stored_score(&hits) {
            let now = crate::store::embeddings::cosine(&v, &away);
            assert!((score.unwrap() - f64::from(now)).abs() < 1e-6);
        }
        // Noted, the replaced document is found by its new vector.
        ann.replaced("w", "page", &moved, &[(0, away.clone())]);
        let near_new = vector_search(&store, Some(&ann), query(away, &["alice"]))
            .await
            .unwrap();
        assert_eq!(
            near_new.first().map(|h| h.id.as_str()),
            Some(moved.as_str())
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_selective_filter_falls_back_to_the_exact_scan() {
        // One document in 2,000 is dave's: the index's nearest candidates rarely include it.
        let (_dir, store, mut rng, topics) = corpus(2000, |i| {
            if i == 1234 { "dave" } else { "alice" }.to_string()
        })
        .await;
        let ann = AnnIndex::new("m");
        ann.build(&store).await.unwrap();
        let q = query(rng.clustered(&topics), &["dave"]);
        let hits = vector_search(&store, Some(&ann), q.clone()).await.unwrap();
        assert_eq!(ids(&hits), vec!["1234"]);
        assert_eq!(ids(&hits), ids(&store.vector_search(q).await.unwrap()));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn before_the_build_and_for_another_model_the_exact_scan_answers() {
        let (_dir, store, mut rng, topics) = corpus(200, |_| "alice".to_string()).await;
        let ann = AnnIndex::new("m");
        let q = query(rng.clustered(&topics), &["alice"]);
        assert!(ann.candidates(&q, 10).is_none(), "not built yet");
        ann.build(&store).await.unwrap();
        assert!(ann.candidates(&q, 10).is_some());
        let other = VectorQuery {
            model: "other".into(),
            ..q
        };
        assert!(ann.candidates(&other, 10).is_none());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn drift_from_the_store_rebuilds_the_connectors_graph() {
        let (_dir, store, _rng, _topics) = corpus(800, |_| "alice".to_string()).await;
        let ann = AnnIndex::new("m");
        ann.build(&store).await.unwrap();
        assert!(!ann.upkeep(&store, "w").await.unwrap(), "nothing changed");
        let gone: Vec<DocumentRef> = (0..300)
            .map(|i| DocumentRef {
                kind: "page".into(),
                id: i.to_string(),
            })
            .collect();
        store.put_documents("w", vec![], gone).await.unwrap();
        assert!(ann.upkeep(&store, "w").await.unwrap(), "600 chunks deleted");
        assert_eq!(ann.len(), 1000);
    }
}
