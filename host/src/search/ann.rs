//! The approximate nearest-neighbour index of semantic search: an HNSW graph per connector
//! (`instant-distance`), in memory, over the chunk vectors of the configured model, with a copy
//! of each document's ACL to choose candidates the way filtered-vector engines do.
//!
//! A query first counts the chunks its filters (kind, ACL) permit in each connector's part. When
//! few are permitted, or so few of the graph's `EF_SEARCH` nearest would be permitted that the
//! graph would starve the result (a selective ACL), the permitted vectors are compared one by
//! one: exact, and as fast as the graph at that size. Otherwise the graph proposes its nearest
//! chunks and those not permitted are dropped.
//!
//! The index only proposes candidates. Every candidate goes back through the store's own vector
//! search ([`Store::vector_search_among`]: the same tenant, connector, kind and ACL conditions as
//! the exact scan, in the same SQL text), which drops deleted chunks and documents the caller may
//! no longer open and ranks each by the vector stored now. So a stale copy (an ACL or vector
//! changed by another daemon) can cost recall, never show a chunk the caller could not see in
//! the exact path. When fewer documents than asked survive the store's filter and the index did
//! not propose every permitted document, or the index is not built yet, the exact scan answers.
//!
//! A graph is immutable once built. Chunks written since (sync replaced a document's chunks, or
//! its ACL, which re-records its chunks) sit in a small list scanned exactly, and the replaced
//! document's entries in the graph are skipped; when those changes, or the gap to the store's
//! chunk count (deleted documents, or chunks another daemon wrote to a shared store), reach a
//! tenth of the graph, the connector's graph is rebuilt from the store in the background and
//! swapped in. Between rebuilds, upkeep reloads the graph's ACL copy from the store (ACLs
//! another daemon changed).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use instant_distance::{Builder, HnswMap, Search};

use crate::store::backend::Store;
use crate::store::documents::Hit;
use crate::store::embeddings::{ChunkKey, IndexedChunk, VectorQuery};

/// Candidates a graph search returns (HNSW's `ef` at query time; instant-distance fixes it per
/// graph). Measured by `make bench` (benches/ann.rs, docs/configuration.md).
const EF_SEARCH: usize = 512;
/// HNSW's `ef` while building (graph quality against build time).
const EF_CONSTRUCTION: usize = 64;
/// Most chunks in one graph: a connector with more gets several graphs of about equal size over
/// consecutive rows, each searched for its own `EF_SEARCH` candidates (as Lucene searches each
/// segment's graph). One graph's recall falls as it grows (0.972 at 20,000 chunks of the bench's
/// corpus, 0.921 at 100,000 with the same `ef`s); graphs of at most this size keep it.
const SHARD_CHUNKS: usize = 25_000;
/// Permitted chunks in a connector's part up to which they are compared one by one instead of
/// searching the graph: about what an `EF_SEARCH` graph search costs at 100,000 chunks
/// (benches/ann.rs prints both; Weaviate's `flatSearchCutoff` defaults to 40,000 likewise).
pub const FLAT_SCAN_CHUNKS: usize = 40_000;
/// The graph is searched only when its `EF_SEARCH` nearest chunks hold at least this many
/// permitted ones on average (`EF_SEARCH` × the permitted share): below that a selective ACL
/// leaves too few to fill the result, and the permitted vectors are compared one by one.
const MIN_PERMITTED_CANDIDATES: usize = 128;
/// Changes since a build below which a connector's graph is never rebuilt (the exact scan of
/// the fresh list costs nothing at this size).
const MIN_REBUILD: usize = 500;

/// A unit-length vector: the distance of two is 1 − their cosine. Shared, so the graph and the
/// exact comparison hold one copy.
#[derive(Clone)]
struct Unit(Arc<[f32]>);

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

    fn distance(&self, other: &Unit) -> f32 {
        1.0 - self.dot(other)
    }
}

impl instant_distance::Point for Unit {
    fn distance(&self, other: &Self) -> f32 {
        Unit::distance(self, other)
    }
}

/// A document of a graph: its chunks are the rows `rows` (a document's rows are adjacent).
struct Doc {
    kind: Arc<str>,
    id: Box<str>,
    rows: Range<u32>,
}

/// One connector's graphs and what queries need beside them. Rows are the chunks in load order.
struct Built {
    /// Graphs over consecutive ranges of rows (see [`SHARD_CHUNKS`]); each point's value is its
    /// row.
    graphs: Vec<HnswMap<Unit, u32>>,
    units: Vec<Unit>,
    /// Per row, its document and its place in it.
    rows: Vec<(u32, u32)>,
    docs: Vec<Doc>,
    /// kind → id → document.
    by_key: HashMap<Arc<str>, HashMap<Box<str>, u32>>,
    dims: usize,
}

impl Built {
    fn doc(&self, kind: &str, id: &str) -> Option<u32> {
        self.by_key.get(kind)?.get(id).copied()
    }
}

/// A chunk written since the graph was built.
struct Fresh {
    kind: Arc<str>,
    id: Box<str>,
    seq: u32,
    unit: Unit,
    acl: Arc<[String]>,
    /// The change that wrote it.
    change: u64,
}

/// One connector's part of the index.
#[derive(Default)]
struct Partition {
    /// The graph of the last build (None before the first, or when it found no chunks).
    built: Option<Arc<Built>>,
    /// The ACL of each of the graph's documents, as last read from the store.
    acls: Vec<Box<[String]>>,
    /// Chunks written since the build started.
    fresh: Vec<Fresh>,
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
        self.built.as_ref().map_or(0, |b| b.rows.len())
    }

    fn is_replaced(&self, kind: &str, id: &str) -> bool {
        !self.replaced.is_empty()
            && self
                .replaced
                .get(kind)
                .is_some_and(|ids| ids.contains_key(id))
    }

    /// The changes since the build, counted in chunks, and the gap to the store's count.
    fn staleness(&self, stored: u64) -> usize {
        let indexed = (self.graph_len() + self.fresh.len()) as u64;
        self.fresh.len() + indexed.abs_diff(stored) as usize
    }
}

/// Whether a connector's graph answers a query whose filters permit `permitted` of its
/// `total` chunks, or the permitted vectors are compared one by one.
fn use_graph(permitted: usize, total: usize, flat_scan: usize) -> bool {
    permitted > flat_scan && permitted * EF_SEARCH >= MIN_PERMITTED_CANDIDATES * total
}

/// How the index answered a query (tests and the bench).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Plan {
    /// Connectors whose graph was searched.
    pub graph: usize,
    /// Connectors whose permitted vectors were compared one by one.
    pub flat: usize,
}

/// The nearest documents the index proposes for a query: each by its nearest chunk.
pub struct Candidates {
    pub keys: Vec<ChunkKey>,
    /// Every document the index holds that the query's filters permit is among `keys`:
    /// documents missing from the filtered result are missing from the exact scan too.
    pub exhaustive: bool,
    pub plan: Plan,
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
    /// See [`FLAT_SCAN_CHUNKS`].
    flat_scan: AtomicUsize,
    /// See [`SHARD_CHUNKS`].
    shard_chunks: AtomicUsize,
}

impl AnnIndex {
    pub fn new(model: &str) -> AnnIndex {
        AnnIndex {
            model: model.to_string(),
            parts: RwLock::default(),
            ready: AtomicBool::new(false),
            flat_scan: AtomicUsize::new(FLAT_SCAN_CHUNKS),
            shard_chunks: AtomicUsize::new(SHARD_CHUNKS),
        }
    }

    /// Sets the permitted chunks up to which they are compared one by one (the bench and tests
    /// set 0 to measure the graph alone).
    pub fn set_flat_scan(&self, chunks: usize) {
        self.flat_scan.store(chunks, Ordering::Relaxed);
    }

    /// Sets the most chunks in one graph, from the next build on (tests set it low to build
    /// several graphs from a small corpus; the bench to compare one graph with several).
    pub fn set_shard_chunks(&self, chunks: usize) {
        self.shard_chunks.store(chunks.max(1), Ordering::Relaxed);
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
    /// store's chunk count, reach a tenth of the graph (at least `MIN_REBUILD`); otherwise
    /// reloads the graph's ACL copy from the store. Returns whether it rebuilt.
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
        } else {
            self.reload_acls(store, connector).await?;
        }
        Ok(stale)
    }

    /// Copies the store's ACLs of the graph's documents (changed by another daemon, or by a
    /// sync this index was not told of). Fresh chunks keep the ACL they were noted with.
    async fn reload_acls(&self, store: &Store, connector: &str) -> anyhow::Result<()> {
        let built = {
            let parts = self.parts.read().unwrap_or_else(|e| e.into_inner());
            match parts.get(connector).and_then(|p| p.built.clone()) {
                Some(b) => b,
                None => return Ok(()),
            }
        };
        let acls = store.chunked_document_acls(connector).await?;
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        let Some(p) = parts.get_mut(connector) else {
            return Ok(());
        };
        // A graph swapped in meanwhile read newer ACLs than these.
        if !p.built.as_ref().is_some_and(|b| Arc::ptr_eq(b, &built)) {
            return Ok(());
        }
        for a in acls {
            if let Some(i) = built.doc(&a.kind, &a.id) {
                p.acls[i as usize] = a.acl.into();
            }
        }
        Ok(())
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
            let shard = self.shard_chunks.load(Ordering::Relaxed);
            let built = tokio::task::spawn_blocking(move || build(rows, shard)).await?;
            anyhow::Ok((built, n))
        }
        .await;
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        let p = parts.entry(connector.to_string()).or_default();
        p.building = false;
        let (built, n) = built?;
        match built {
            Some((b, acls)) => {
                p.built = Some(Arc::new(b));
                p.acls = acls;
            }
            None => {
                p.built = None;
                p.acls = Vec::new();
            }
        }
        p.fresh.retain(|f| f.change > since);
        for ids in p.replaced.values_mut() {
            ids.retain(|_, c| *c > since);
        }
        p.replaced.retain(|_, ids| !ids.is_empty());
        Ok(n)
    }

    /// Notes that a document's chunks were replaced by `chunks` (seq, vector), the document now
    /// having `acl`: its entries in the graph are skipped from now on and the new ones are
    /// searched exactly until the next build.
    pub fn replaced(
        &self,
        connector: &str,
        kind: &str,
        id: &str,
        chunks: &[(u32, Vec<f32>)],
        acl: &[String],
    ) {
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        let p = parts.entry(connector.to_string()).or_default();
        p.change += 1;
        let change = p.change;
        p.replaced
            .entry(kind.to_string())
            .or_default()
            .insert(id.to_string(), change);
        p.fresh.retain(|f| !(&*f.kind == kind && &*f.id == id));
        let kind: Arc<str> = Arc::from(kind);
        let acl: Arc<[String]> = Arc::from(acl);
        for (seq, v) in chunks {
            p.fresh.push(Fresh {
                kind: kind.clone(),
                id: id.into(),
                seq: *seq,
                unit: Unit::new(v),
                acl: acl.clone(),
                change,
            });
        }
    }

    /// The `want` nearest documents (each by its nearest chunk) of the connectors `q` may
    /// reach that its kind and ACL filters permit, or None when the index cannot answer (not
    /// built yet, or another model's query).
    pub fn candidates(&self, q: &VectorQuery, want: usize) -> Option<Candidates> {
        if !self.is_ready() || q.model != self.model {
            return None;
        }
        let query = Unit::new(&q.vector);
        let parts = self.parts.read().unwrap_or_else(|e| e.into_inner());
        let targets = parts
            .iter()
            .filter(|(c, _)| q.connector.as_ref().is_none_or(|x| x == *c))
            .filter(|(c, _)| q.connectors.as_ref().is_none_or(|l| l.contains(c)));
        let permits = |connector: &str, kind: &str, acl: &[String]| {
            q.kind.as_ref().is_none_or(|k| k == kind)
                && q.readers.as_ref().is_none_or(|r| r.allows(connector, acl))
        };
        // Each document's nearest chunk: (distance, connector, kind, id, seq).
        let mut found: Vec<(f32, &str, &str, &str, u32)> = Vec::new();
        let mut exhaustive = true;
        let mut plan = Plan::default();
        let mut search = Search::default();
        let flat_scan = self.flat_scan.load(Ordering::Relaxed);
        for (connector, p) in targets {
            if let Some(b) = &p.built {
                if b.dims != query.0.len() {
                    return None;
                }
                let permitted: Vec<bool> = b
                    .docs
                    .iter()
                    .zip(&p.acls)
                    .map(|(d, acl)| {
                        permits(connector, &d.kind, acl) && !p.is_replaced(&d.kind, &d.id)
                    })
                    .collect();
                let permitted_chunks: usize = b
                    .docs
                    .iter()
                    .zip(&permitted)
                    .filter(|(_, ok)| **ok)
                    .map(|(d, _)| d.rows.len())
                    .sum();
                let mut nearest: HashMap<u32, (f32, u32)> = HashMap::new();
                if use_graph(permitted_chunks, b.rows.len(), flat_scan) {
                    plan.graph += 1;
                    let mut proposed = 0;
                    for graph in &b.graphs {
                        for item in graph.search(&query, &mut search) {
                            proposed += 1;
                            let (doc, seq) = b.rows[*item.value as usize];
                            if permitted[doc as usize] {
                                keep_nearest(&mut nearest, doc, item.distance, seq);
                            }
                        }
                    }
                    exhaustive &= proposed >= b.rows.len();
                } else {
                    plan.flat += 1;
                    for (doc, d) in b.docs.iter().enumerate() {
                        if !permitted[doc] {
                            continue;
                        }
                        for row in d.rows.clone() {
                            let distance = b.units[row as usize].distance(&query);
                            keep_nearest(
                                &mut nearest,
                                doc as u32,
                                distance,
                                b.rows[row as usize].1,
                            );
                        }
                    }
                }
                found.extend(nearest.into_iter().map(|(doc, (distance, seq))| {
                    let d = &b.docs[doc as usize];
                    (distance, connector.as_str(), &*d.kind, &*d.id, seq)
                }));
            }
            // Fresh chunks are compared one by one (the list stays short: see `upkeep`).
            let mut nearest: HashMap<(&str, &str), (f32, u32)> = HashMap::new();
            for f in p
                .fresh
                .iter()
                .filter(|f| permits(connector, &f.kind, &f.acl))
            {
                let distance = f.unit.distance(&query);
                let e = nearest
                    .entry((&*f.kind, &*f.id))
                    .or_insert((distance, f.seq));
                if distance < e.0 {
                    *e = (distance, f.seq);
                }
            }
            found.extend(nearest.into_iter().map(|((kind, id), (distance, seq))| {
                (distance, connector.as_str(), kind, id, seq)
            }));
        }
        found.sort_by(|a, b| a.0.total_cmp(&b.0));
        if found.len() > want {
            exhaustive = false;
            found.truncate(want);
        }
        let keys = found
            .into_iter()
            .map(|(_, connector, kind, id, seq)| ChunkKey {
                connector: connector.to_string(),
                kind: kind.to_string(),
                id: id.to_string(),
                seq,
            })
            .collect();
        Some(Candidates {
            keys,
            exhaustive,
            plan,
        })
    }
}

/// Keeps a document's nearest chunk.
fn keep_nearest(nearest: &mut HashMap<u32, (f32, u32)>, doc: u32, distance: f32, seq: u32) {
    let e = nearest.entry(doc).or_insert((distance, seq));
    if distance < e.0 {
        *e = (distance, seq);
    }
}

/// The graph over the rows (in key order, so a document's rows are adjacent) and each of its
/// documents' ACL; None for no rows. Kinds are shared between documents.
fn build(rows: Vec<IndexedChunk>, shard_chunks: usize) -> Option<(Built, Vec<Box<[String]>>)> {
    let dims = rows.first()?.vector.len();
    let mut kinds: HashMap<String, Arc<str>> = HashMap::new();
    let mut by_key: HashMap<Arc<str>, HashMap<Box<str>, u32>> = HashMap::new();
    let mut docs: Vec<Doc> = Vec::new();
    let mut acls: Vec<Box<[String]>> = Vec::new();
    let mut units = Vec::with_capacity(rows.len());
    let mut doc_rows = Vec::with_capacity(rows.len());
    for (row, c) in rows.into_iter().enumerate() {
        let row = row as u32;
        let same = docs
            .last()
            .is_some_and(|d| *d.kind == c.key.kind && *d.id == c.key.id);
        if !same {
            let kind = kinds
                .entry(c.key.kind.clone())
                .or_insert_with(|| Arc::from(c.key.kind.as_str()))
                .clone();
            by_key
                .entry(kind.clone())
                .or_default()
                .insert(c.key.id.clone().into_boxed_str(), docs.len() as u32);
            docs.push(Doc {
                kind,
                id: c.key.id.into_boxed_str(),
                rows: row..row,
            });
            acls.push(c.acl.into());
        }
        let doc = docs.len() - 1;
        docs[doc].rows.end = row + 1;
        units.push(Unit::new(&c.vector));
        doc_rows.push((doc as u32, c.key.seq));
    }
    let graphs = shards(units.len(), shard_chunks)
        .map(|rows| {
            Builder::default()
                .ef_construction(EF_CONSTRUCTION)
                .ef_search(EF_SEARCH)
                .seed(0x5eed)
                .build(
                    units[rows.clone()].to_vec(),
                    rows.map(|r| r as u32).collect(),
                )
        })
        .collect();
    let built = Built {
        graphs,
        units,
        rows: doc_rows,
        docs,
        by_key,
        dims,
    };
    Some((built, acls))
}

/// `n` rows cut into the fewest consecutive ranges of at most `max` rows, of about equal size.
fn shards(n: usize, max: usize) -> impl Iterator<Item = Range<usize>> {
    let count = n.div_ceil(max.max(1)).max(1);
    let size = n.div_ceil(count).max(1);
    (0..n)
        .step_by(size)
        .map(move |start| start..(start + size).min(n))
}

/// Vector search through the index when it can answer, the exact scan otherwise: the index's
/// candidates are filtered and ranked by the store like the exact scan's rows, and when fewer
/// documents than asked survive (and the index did not propose every permitted document), the
/// exact scan answers.
pub async fn vector_search(
    store: &Store,
    index: Option<&AnnIndex>,
    q: VectorQuery,
) -> anyhow::Result<Vec<Hit>> {
    let limit = q.limit.clamp(1, 1000);
    // A margin for documents deleted, or whose ACL changed, since the index saw them.
    let want = (limit * 2).max(limit + 10);
    if let Some(c) = index.and_then(|i| i.candidates(&q, want)) {
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
            metadata: serde_json::json!({}).into(),
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

    /// Recall@10 of the index's answers against the exact scan over 40 random queries, and
    /// how the index answered them.
    async fn recall(
        store: &Store,
        ann: &AnnIndex,
        rng: &mut Rng,
        topics: &[Vec<f32>],
        reader: &str,
    ) -> (f64, Plan) {
        let (mut found, mut total, mut plan) = (0, 0, Plan::default());
        for _ in 0..40 {
            let q = query(rng.clustered(topics), &[reader]);
            let c = ann.candidates(&q, 20).unwrap();
            plan.graph += c.plan.graph;
            plan.flat += c.plan.flat;
            let exact = ids(&store.vector_search(q.clone()).await.unwrap());
            let approx = ids(&vector_search(store, Some(ann), q).await.unwrap());
            total += exact.len();
            found += exact.iter().filter(|id| approx.contains(id)).count();
        }
        (found as f64 / total as f64, plan)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn recall_at_10_against_the_exact_scan_is_at_least_0_95_through_the_graph_and_flat() {
        let (_dir, store, mut rng, topics) =
            corpus(3000, |i| ["alice", "bob"][i % 2].to_string()).await;
        let graph = AnnIndex::new("m");
        graph.set_flat_scan(0);
        let r = graph.build(&store).await.unwrap();
        assert_eq!((r.connectors, r.chunks), (1, 6000));
        let (recall_graph, plan) = recall(&store, &graph, &mut rng, &topics, "alice").await;
        assert_eq!(plan, Plan { graph: 40, flat: 0 });
        assert!(recall_graph >= 0.95, "graph recall@10 {recall_graph}");
        // At this size the permitted vectors are compared one by one: exact.
        let flat = AnnIndex::new("m");
        flat.build(&store).await.unwrap();
        let (recall_flat, plan) = recall(&store, &flat, &mut rng, &topics, "alice").await;
        assert_eq!(plan, Plan { graph: 0, flat: 40 });
        assert_eq!(recall_flat, 1.0);
        // Several graphs (six of 1,000 chunks) searched together keep the recall.
        let sharded = AnnIndex::new("m");
        sharded.set_flat_scan(0);
        sharded.set_shard_chunks(1000);
        sharded.build(&store).await.unwrap();
        let graphs = {
            let parts = sharded.parts.read().unwrap();
            parts["w"].built.as_ref().map(|b| b.graphs.len())
        };
        assert_eq!(graphs, Some(6));
        let (recall_sharded, plan) = recall(&store, &sharded, &mut rng, &topics, "alice").await;
        assert_eq!(plan, Plan { graph: 40, flat: 0 });
        assert!(recall_sharded >= 0.95, "sharded recall@10 {recall_sharded}");
    }

    #[test]
    fn rows_are_cut_into_the_fewest_graphs_of_about_equal_size() {
        let cut = |n| shards(n, 25_000).map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(cut(20_000), vec![20_000]);
        assert_eq!(cut(25_000), vec![25_000]);
        assert_eq!(cut(25_001), vec![12_501, 12_500]);
        assert_eq!(cut(100_000), vec![25_000; 4]);
        assert_eq!(cut(1), vec![1]);
        assert_eq!(cut(0), Vec::<usize>::new());
        let ranges: Vec<_> = shards(70_001, 25_000).collect();
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert_eq!(ranges.last().map(|r| r.end), Some(70_001));
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn the_graph_answers_only_when_many_permitted_chunks_would_be_among_its_candidates() {
        assert!(
            !use_graph(40_000, 100_000, FLAT_SCAN_CHUNKS),
            "few enough to compare"
        );
        assert!(use_graph(50_000, 100_000, FLAT_SCAN_CHUNKS));
        // 5 % of a million: the graph's 512 nearest would hold ~26 permitted chunks.
        assert!(!use_graph(50_000, 1_000_000, FLAT_SCAN_CHUNKS));
        assert!(use_graph(250_000, 1_000_000, FLAT_SCAN_CHUNKS));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_stores_filter_decides_when_the_index_copy_of_an_acl_is_stale() {
        let (_dir, store, mut rng, topics) =
            corpus(1000, |i| ["alice", "bob", "carol"][i % 3].to_string()).await;
        let ann = AnnIndex::new("m");
        ann.set_flat_scan(0);
        ann.build(&store).await.unwrap();
        let v = rng.clustered(&topics);
        let before = vector_search(&store, Some(&ann), query(v.clone(), &["bob"]))
            .await
            .unwrap();
        assert_eq!(before.len(), 10);
        assert!(
            before.iter().all(|h| h.acl == ["bob"]),
            "only bob's documents"
        );
        // Upstream, bob loses his three nearest documents and gains carol's nearest, and the
        // index is not told (another daemon synced them).
        let carols = vector_search(&store, Some(&ann), query(v.clone(), &["carol"]))
            .await
            .unwrap();
        let gained = carols[0].id.clone();
        let mut changed: Vec<Document> = before[..3]
            .iter()
            .map(|h| doc(h.id.parse().unwrap(), "alice"))
            .collect();
        changed.push(doc(gained.parse().unwrap(), "bob"));
        store.put_documents("w", changed, vec![]).await.unwrap();
        let stale = vector_search(&store, Some(&ann), query(v.clone(), &["bob"]))
            .await
            .unwrap();
        for h in &before[..3] {
            assert!(
                !ids(&stale).contains(&h.id),
                "{} taken from bob was returned",
                h.id
            );
        }
        assert!(stale.iter().all(|h| h.acl == ["bob"]));
        // Upkeep reloads the ACLs: the gained document is found as the exact scan finds it.
        assert!(!ann.upkeep(&store, "w").await.unwrap(), "no rebuild needed");
        let q = query(v, &["bob"]);
        let now = vector_search(&store, Some(&ann), q.clone()).await.unwrap();
        assert!(ids(&now).contains(&gained));
        assert_eq!(ids(&now), ids(&store.vector_search(q).await.unwrap()));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn only_permitted_documents_are_proposed_and_other_tenants_get_nothing() {
        let (_dir, store, mut rng, topics) =
            corpus(1000, |i| ["alice", "bob", "carol"][i % 3].to_string()).await;
        let ann = AnnIndex::new("m");
        ann.set_flat_scan(0);
        ann.build(&store).await.unwrap();
        for _ in 0..10 {
            let q = query(rng.clustered(&topics), &["bob"]);
            let c = ann.candidates(&q, 20).unwrap();
            assert_eq!(c.keys.len(), 20);
            assert!(
                c.keys
                    .iter()
                    .all(|k| k.id.parse::<usize>().unwrap() % 3 == 1)
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
            acl: vec!["alice".into()],
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
        ann.replaced("w", "page", &moved, &[(0, away.clone())], &["alice".into()]);
        let near_new = vector_search(&store, Some(&ann), query(away, &["alice"]))
            .await
            .unwrap();
        assert_eq!(
            near_new.first().map(|h| h.id.as_str()),
            Some(moved.as_str())
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_selective_filter_compares_the_permitted_vectors_one_by_one() {
        // One document in 2,000 is dave's: the graph's nearest candidates rarely include it.
        let (_dir, store, mut rng, topics) = corpus(2000, |i| {
            if i == 1234 { "dave" } else { "alice" }.to_string()
        })
        .await;
        let ann = AnnIndex::new("m");
        ann.set_flat_scan(0);
        ann.build(&store).await.unwrap();
        let q = query(rng.clustered(&topics), &["dave"]);
        let c = ann.candidates(&q, 20).unwrap();
        assert_eq!(c.plan, Plan { graph: 0, flat: 1 });
        assert!(c.exhaustive);
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
