//! Chunk vectors for semantic search on PostgreSQL, mirroring `store/embeddings.rs` (same
//! tables, same byte encoding of vectors, same ACL condition; ranking in Rust by exact cosine).

use tokio_postgres::types::Json;

use super::PgStore;
use super::documents::readers_sql;
use crate::store::documents::{Hit, Readers, parse_acl};
use crate::store::embeddings::{
    ChunkRow, Pending, VectorQuery, best_documents, cosine, decode, encode, snippet,
};

impl PgStore {
    pub async fn pending_chunks(
        &self,
        connector: &str,
        model: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<Pending>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT d.kind, d.id, d.title, d.body, COALESCE(d.content_hash, '') FROM documents d
                 LEFT JOIN chunked_documents c
                   ON c.connector = d.connector AND c.kind = d.kind AND c.id = d.id
                 WHERE d.connector = $1
                   AND (c.id IS NULL OR c.model <> $2 OR c.doc_hash <> COALESCE(d.content_hash, ''))
                 ORDER BY d.kind, d.id LIMIT $3",
                &[&connector, &model, &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Pending {
                kind: r.get(0),
                id: r.get(1),
                title: r.get(2),
                body: r.get(3),
                doc_hash: r.get(4),
            })
            .collect())
    }

    pub async fn known_vector(
        &self,
        model: &str,
        text_hash: &str,
    ) -> anyhow::Result<Option<Vec<f32>>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT vector FROM chunks WHERE model = $1 AND text_hash = $2 LIMIT 1",
                &[&model, &text_hash],
            )
            .await?;
        Ok(row.and_then(|r| decode(&r.get::<_, Vec<u8>>(0))))
    }

    /// Replaces a document's chunks in one transaction; nothing when the document is gone
    /// (the row lock also keeps a concurrent delete from slipping in between).
    pub async fn replace_chunks(
        &self,
        connector: &str,
        doc: &Pending,
        model: &str,
        chunks: &[ChunkRow],
    ) -> anyhow::Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let exists = tx
            .query_opt(
                "SELECT 1 FROM documents WHERE connector = $1 AND kind = $2 AND id = $3 FOR SHARE",
                &[&connector, &doc.kind, &doc.id],
            )
            .await?
            .is_some();
        if exists {
            tx.execute(
                "DELETE FROM chunks WHERE connector = $1 AND kind = $2 AND id = $3",
                &[&connector, &doc.kind, &doc.id],
            )
            .await?;
            let seqs: Vec<i32> = chunks.iter().map(|c| c.seq as i32).collect();
            let hashes: Vec<&str> = chunks.iter().map(|c| c.text_hash.as_str()).collect();
            let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
            let vectors: Vec<Vec<u8>> = chunks.iter().map(|c| encode(&c.vector)).collect();
            tx.execute(
                "INSERT INTO chunks (connector, kind, id, seq, model, text_hash, text, vector)
                 SELECT $1, $2, $3, s, $4, h, t, v
                 FROM unnest($5::int4[], $6::text[], $7::text[], $8::bytea[]) AS x(s, h, t, v)",
                &[
                    &connector, &doc.kind, &doc.id, &model, &seqs, &hashes, &texts, &vectors,
                ],
            )
            .await?;
            tx.execute(
                "INSERT INTO chunked_documents (connector, kind, id, model, doc_hash)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (connector, kind, id) DO UPDATE SET
                   model = excluded.model, doc_hash = excluded.doc_hash",
                &[&connector, &doc.kind, &doc.id, &model, &doc.doc_hash],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn vector_search(&self, q: &VectorQuery) -> anyhow::Result<Vec<Hit>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT d.connector, d.kind, d.id, d.title, d.url, d.updated_at, c.text,
                            c.vector, d.acl::text
                     FROM chunks c JOIN documents d
                       ON d.connector = c.connector AND d.kind = c.kind AND d.id = c.id
                     WHERE c.model = $1
                       AND ($2::text IS NULL OR d.connector = $2)
                       AND ($3::text IS NULL OR d.kind = $3)
                       AND ($4::text[] IS NULL OR d.connector = ANY($4))
                       AND {}",
                    readers_sql("$5")
                ),
                &[
                    &q.model,
                    &q.connector,
                    &q.kind,
                    &q.connectors,
                    &q.readers.as_ref().map(Json::<&Readers>),
                ],
            )
            .await?;
        let scored = rows.iter().map(|r| {
            let text: String = r.get(6);
            let acl: String = r.get(8);
            let sim = decode(&r.get::<_, Vec<u8>>(7)).map_or(0.0, |v| cosine(&q.vector, &v));
            (
                Hit {
                    connector: r.get(0),
                    kind: r.get(1),
                    id: r.get(2),
                    title: r.get(3),
                    url: r.get(4),
                    updated_at: r.get(5),
                    snippet: snippet(&text),
                    score: None,
                    source: "local",
                    acl: parse_acl(&acl),
                },
                sim,
            )
        });
        Ok(best_documents(scored, q.limit))
    }

    pub async fn chunk_count(&self, connector: &str) -> anyhow::Result<u64> {
        let client = self.client().await?;
        let n: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM chunks WHERE connector = $1",
                &[&connector],
            )
            .await?
            .get(0);
        Ok(n as u64)
    }
}
