//! Semantic search's two halves over the store: indexing (documents whose chunks are missing or
//! stale are chunked; only chunk texts never embedded with the model go to the embedding
//! connector; the vectors are stored per document and noted in the approximate index) and
//! retrieval (cosine over the chunks the caller may read, through the index when it is built
//! (see `ann.rs`), alone or fused with keyword ranks).
//!
//! The embedding connector is reached through [`Embedder`], which the daemon implements with
//! its normal invocation path (the gate's grants, budgets and audit apply to every call).

use std::collections::{HashMap, HashSet};

use futures::future::BoxFuture;
use serde::Serialize;

use super::ann::{self, AnnIndex};
use super::chunking;
use super::fusion;
use crate::config::SemanticConfig;
use crate::store::backend::{SearchQuery, Store};
use crate::store::documents::Hit;
use crate::store::embeddings::{ChunkRow, VectorQuery};

/// Turns texts into vectors (one per text, in order).
pub trait Embedder: Send + Sync {
    fn embed(&self, texts: Vec<String>) -> BoxFuture<'_, anyhow::Result<Vec<Vec<f32>>>>;
}

/// How local hits are found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// bm25 full-text search (the default).
    #[default]
    Keyword,
    /// Cosine similarity of the query's embedding to the chunks'.
    Semantic,
    /// Both, fused by reciprocal rank.
    Hybrid,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "keyword" => Some(Mode::Keyword),
            "semantic" => Some(Mode::Semantic),
            "hybrid" => Some(Mode::Hybrid),
            _ => None,
        }
    }
}

/// A query's embedding and the model that made it (only chunks of that model compare).
#[derive(Debug, Clone)]
pub struct QueryVector {
    pub model: String,
    pub vector: Vec<f32>,
}

/// What one indexing pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IndexReport {
    /// Documents whose chunks were (re)written.
    pub documents: usize,
    /// Chunks written.
    pub chunks: usize,
    /// Chunk texts sent to the embedding connector (the rest reused stored vectors).
    pub embedded: usize,
}

/// Documents looked at per round.
const PAGE: usize = 100;

/// Brings the chunks of `connector`'s documents up to date with their content and the model.
pub async fn index(
    store: &Store,
    cfg: &SemanticConfig,
    connector: &str,
    embedder: &dyn Embedder,
    ann: Option<&AnnIndex>,
) -> anyhow::Result<IndexReport> {
    let mut report = IndexReport::default();
    // A document changed again while it was being embedded stays pending: one pass looks at
    // each (document, hash) once, so the loop ends.
    let mut seen: HashSet<(String, String, String)> = HashSet::new();
    loop {
        let pending = store
            .pending_chunks(connector, &cfg.model, PAGE)
            .await?
            .into_iter()
            .filter(|p| seen.insert((p.kind.clone(), p.id.clone(), p.doc_hash.clone())))
            .collect::<Vec<_>>();
        if pending.is_empty() {
            return Ok(report);
        }
        // Chunk every document; look each distinct text up among stored vectors.
        let mut vectors: HashMap<String, Vec<f32>> = HashMap::new();
        let mut missing: Vec<(String, String)> = Vec::new();
        let mut docs = Vec::with_capacity(pending.len());
        for p in pending {
            let chunks = chunking::chunk(&p.title, &p.body, cfg.chunk_chars, cfg.chunk_overlap);
            for c in &chunks {
                let h = c.hash();
                if vectors.contains_key(&h) || missing.iter().any(|(m, _)| *m == h) {
                    continue;
                }
                match store.known_vector(&cfg.model, &h).await? {
                    Some(v) => {
                        vectors.insert(h, v);
                    }
                    None => missing.push((h, c.text.clone())),
                }
            }
            docs.push((p, chunks));
        }
        for batch in missing.chunks(cfg.batch) {
            let texts = batch.iter().map(|(_, t)| t.clone()).collect();
            let got = embedder.embed(texts).await?;
            if got.len() != batch.len() {
                anyhow::bail!(
                    "the embedding connector returned {} vectors for {} texts",
                    got.len(),
                    batch.len()
                );
            }
            report.embedded += batch.len();
            for ((h, _), v) in batch.iter().zip(got) {
                vectors.insert(h.clone(), v);
            }
        }
        for (doc, chunks) in docs {
            let rows: Vec<ChunkRow> = chunks
                .into_iter()
                .filter_map(|c| {
                    let text_hash = c.hash();
                    let vector = vectors.get(&text_hash)?.clone();
                    Some(ChunkRow {
                        seq: c.seq,
                        text: c.text,
                        text_hash,
                        vector,
                    })
                })
                .collect();
            report.documents += 1;
            report.chunks += rows.len();
            // The index learns the new vectors once they are stored (a query in between finds
            // the old ones, which the store then ranks by the new vectors or drops).
            let noted = ann.map(|a| {
                let vectors: Vec<(u32, Vec<f32>)> =
                    rows.iter().map(|r| (r.seq, r.vector.clone())).collect();
                (
                    a,
                    doc.kind.clone(),
                    doc.id.clone(),
                    vectors,
                    doc.acl.clone(),
                )
            });
            store
                .replace_chunks(connector, doc, &cfg.model, rows)
                .await?;
            if let Some((a, kind, id, vectors, acl)) = noted
                && a.model() == cfg.model
            {
                a.replaced(connector, &kind, &id, &vectors, &acl);
            }
        }
    }
}

/// The any-word keyword list's weight in hybrid fusion. Chosen by the retrieval bench's fusion
/// grid with the real model (all-MiniLM-L6-v2): nDCG@10 0.878 against 0.857 for equal weights,
/// better on both halves of the labelled set (0.898/0.856 against 0.875/0.837), the rule the grid
/// was fixed with. For all-words lists (`/v1/search`) no entry beat equal weights on both halves.
pub const ANY_WORD_KEYWORD_WEIGHT: f64 = 0.5;

/// Local hits for `q` in `mode`: keyword (bm25), semantic (cosine over the query's vector) or
/// hybrid (both lists, twice the limit each, fused by reciprocal rank). The tenant and ACL
/// filters of `q` apply in every mode, in the store, before ranking.
///
/// The lists count alike, except an any-word keyword list (`ask`'s retrieval), which counts
/// [`ANY_WORD_KEYWORD_WEIGHT`]: matching any one word of a question is weaker evidence than
/// matching all of them.
pub async fn local_hits(
    store: &Store,
    ann: Option<&AnnIndex>,
    q: SearchQuery,
    mode: Mode,
    vector: Option<&QueryVector>,
) -> anyhow::Result<Vec<Hit>> {
    let vector_query = |limit: usize| -> anyhow::Result<VectorQuery> {
        let v = vector.ok_or_else(|| anyhow::anyhow!("semantic search without a query vector"))?;
        Ok(VectorQuery {
            model: v.model.clone(),
            vector: v.vector.clone(),
            connector: q.connector.clone(),
            kind: q.kind.clone(),
            limit,
            connectors: q.connectors.clone(),
            readers: q.readers.clone(),
        })
    };
    match mode {
        Mode::Keyword => store.search(q).await,
        Mode::Semantic => ann::vector_search(store, ann, vector_query(q.limit)?).await,
        Mode::Hybrid => {
            let limit = q.limit.clamp(1, 1000);
            let wide = (limit * 2).min(1000);
            let vq = vector_query(wide)?;
            let keyword = store
                .search(SearchQuery {
                    limit: wide,
                    ..q.clone()
                })
                .await?;
            let semantic = ann::vector_search(store, ann, vq).await?;
            let keyword_weight = if q.any_word {
                ANY_WORD_KEYWORD_WEIGHT
            } else {
                1.0
            };
            Ok(fusion::fuse(
                vec![
                    fusion::Ranked::new(keyword, keyword_weight),
                    fusion::Ranked::new(semantic, 1.0),
                ],
                limit,
            ))
        }
    }
}
