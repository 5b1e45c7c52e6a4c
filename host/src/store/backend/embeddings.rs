//! Chunk vectors for semantic search through the store (see `store/embeddings.rs`): which
//! documents need chunks, vectors already computed for a chunk text, a document's chunks
//! replaced at once, and exact cosine search under the tenant and ACL filters.

use super::Store;
use crate::store::documents::Hit;
use crate::store::embeddings::{
    self, ChunkKey, ChunkRow, CurrentChunks, DocumentAcl, IndexedChunk, Pending, VectorQuery,
};

impl Store {
    /// Documents of `connector` whose chunks are missing or stale for `model` (at most `limit`).
    pub async fn pending_chunks(
        &self,
        connector: &str,
        model: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<Pending>> {
        match self {
            Store::Sqlite(db) => {
                let (c, m) = (connector.to_string(), model.to_string());
                db.read(move |conn| Ok(embeddings::pending(conn, &c, &m, limit)?))
                    .await
            }
            Store::Postgres(pg) => pg.pending_chunks(connector, model, limit).await,
        }
    }

    /// The vector stored for a chunk text (by its hash) embedded with `model`, if any.
    pub async fn known_vector(
        &self,
        model: &str,
        text_hash: &str,
    ) -> anyhow::Result<Option<Vec<f32>>> {
        match self {
            Store::Sqlite(db) => {
                let (m, h) = (model.to_string(), text_hash.to_string());
                db.read(move |conn| Ok(embeddings::known_vector(conn, &m, &h)?))
                    .await
            }
            Store::Postgres(pg) => pg.known_vector(model, text_hash).await,
        }
    }

    /// Replaces a document's chunks (nothing when the document was deleted meanwhile).
    pub async fn replace_chunks(
        &self,
        connector: &str,
        doc: Pending,
        model: &str,
        chunks: Vec<ChunkRow>,
    ) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(db) => {
                let (c, m) = (connector.to_string(), model.to_string());
                db.run(move |conn| embeddings::replace(conn, &c, &doc, &m, &chunks))
                    .await
            }
            Store::Postgres(pg) => pg.replace_chunks(connector, &doc, model, &chunks).await,
        }
    }

    /// Exact cosine search; tenant and ACL filters apply before ranking.
    pub async fn vector_search(&self, q: VectorQuery) -> anyhow::Result<Vec<Hit>> {
        match self {
            Store::Sqlite(db) => db.read(move |conn| Ok(embeddings::search(conn, &q)?)).await,
            Store::Postgres(pg) => pg.vector_search(&q).await,
        }
    }

    /// The same search over the given chunks only: deleted ones and those outside the query's
    /// filters drop out (the approximate index's candidates pass through here).
    pub async fn vector_search_among(
        &self,
        q: VectorQuery,
        candidates: Vec<ChunkKey>,
    ) -> anyhow::Result<Vec<Hit>> {
        match self {
            Store::Sqlite(db) => {
                db.read(move |conn| Ok(embeddings::search_among(conn, &q, &candidates)?))
                    .await
            }
            Store::Postgres(pg) => pg.vector_search_among(&q, &candidates).await,
        }
    }

    /// Every chunk vector of `connector` made with `model`, with its document's ACL (to build
    /// the index).
    pub async fn chunk_vectors(
        &self,
        connector: &str,
        model: &str,
    ) -> anyhow::Result<Vec<IndexedChunk>> {
        match self {
            Store::Sqlite(db) => {
                let (c, m) = (connector.to_string(), model.to_string());
                db.read(move |conn| Ok(embeddings::vectors(conn, &c, &m)?))
                    .await
            }
            Store::Postgres(pg) => pg.chunk_vectors(connector, model).await,
        }
    }

    /// The ACL of every document of `connector` that has chunks (the index's copy follows it).
    pub async fn chunked_document_acls(&self, connector: &str) -> anyhow::Result<Vec<DocumentAcl>> {
        match self {
            Store::Sqlite(db) => {
                let c = connector.to_string();
                db.read(move |conn| Ok(embeddings::acls(conn, &c)?)).await
            }
            Store::Postgres(pg) => pg.chunked_document_acls(connector).await,
        }
    }

    /// A document's chunks of `model` made from its content as stored now, with its ACL.
    pub async fn current_chunks(
        &self,
        connector: &str,
        kind: &str,
        id: &str,
        model: &str,
    ) -> anyhow::Result<CurrentChunks> {
        match self {
            Store::Sqlite(db) => {
                let (c, k, i, m) = (
                    connector.to_string(),
                    kind.to_string(),
                    id.to_string(),
                    model.to_string(),
                );
                db.read(move |conn| Ok(embeddings::current_chunks(conn, &c, &k, &i, &m)?))
                    .await
            }
            Store::Postgres(pg) => pg.current_chunks(connector, kind, id, model).await,
        }
    }

    /// The connectors that have chunks of `model`.
    pub async fn vector_connectors(&self, model: &str) -> anyhow::Result<Vec<String>> {
        match self {
            Store::Sqlite(db) => {
                let m = model.to_string();
                db.read(move |conn| Ok(embeddings::vector_connectors(conn, &m)?))
                    .await
            }
            Store::Postgres(pg) => pg.vector_connectors(model).await,
        }
    }

    /// Chunks stored for a connector.
    pub async fn chunk_count(&self, connector: &str) -> anyhow::Result<u64> {
        match self {
            Store::Sqlite(db) => {
                let c = connector.to_string();
                db.read(move |conn| Ok(embeddings::count(conn, &c)?)).await
            }
            Store::Postgres(pg) => pg.chunk_count(connector).await,
        }
    }
}
