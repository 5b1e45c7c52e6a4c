//! Chunk vectors for semantic search through the store (see `store/embeddings.rs`): which
//! documents need chunks, vectors already computed for a chunk text, a document's chunks
//! replaced at once, and exact cosine search under the tenant and ACL filters.

use super::Store;
use crate::store::documents::Hit;
use crate::store::embeddings::{self, ChunkRow, Pending, VectorQuery};

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
