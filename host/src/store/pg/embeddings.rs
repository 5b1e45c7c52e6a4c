//! Chunk vectors for semantic search on PostgreSQL, mirroring `store/embeddings.rs` (same
//! tables, same byte encoding of vectors, same ACL condition; ranking in Rust by exact cosine).

use tokio_postgres::types::Json;

use super::PgStore;
use super::documents::readers_sql;
use crate::store::documents::{Hit, Readers, parse_acl};
use crate::store::embeddings::{
    ChunkKey, ChunkRow, CurrentChunks, DocumentAcl, IndexedChunk, Pending, VectorQuery,
    best_documents, cosine, decode, encode, snippet,
};

/// The conditions every vector search applies (model, connector, kind, the tenant's connectors,
/// the ACL): one text for the exact scan and the candidate lookup, as on SQLite.
fn filter_sql() -> String {
    format!(
        "c.model = $1
           AND ($2::text IS NULL OR d.connector = $2)
           AND ($3::text IS NULL OR d.kind = $3)
           AND ($4::text[] IS NULL OR d.connector = ANY($4))
           AND {}",
        readers_sql("$5")
    )
}

const COLUMNS: &str = "SELECT d.connector, d.kind, d.id, d.title, d.url, d.updated_at, c.text,
        c.vector, d.acl::text";

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
                "SELECT d.kind, d.id, d.title, d.body, COALESCE(d.content_hash, ''), d.acl::text
                 FROM documents d
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
                acl: parse_acl(r.get(5)),
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

    /// Exact cosine search under the query's filters.
    pub async fn vector_search(&self, q: &VectorQuery) -> anyhow::Result<Vec<Hit>> {
        let sql = format!(
            "{COLUMNS}
             FROM chunks c JOIN documents d
               ON d.connector = c.connector AND d.kind = c.kind AND d.id = c.id
             WHERE {}",
            filter_sql()
        );
        self.ranked(&sql, q, None).await
    }

    /// The same search over the given chunks only (see `store::embeddings::search_among`).
    pub async fn vector_search_among(
        &self,
        q: &VectorQuery,
        candidates: &[ChunkKey],
    ) -> anyhow::Result<Vec<Hit>> {
        let sql = format!(
            "{COLUMNS}
             FROM unnest($6::text[], $7::text[], $8::text[], $9::int4[]) AS k(connector, kind, id, seq)
             JOIN chunks c
               ON c.connector = k.connector AND c.kind = k.kind AND c.id = k.id AND c.seq = k.seq
             JOIN documents d
               ON d.connector = c.connector AND d.kind = c.kind AND d.id = c.id
             WHERE {}",
            filter_sql()
        );
        self.ranked(&sql, q, Some(candidates)).await
    }

    /// Runs a vector search statement whose parameters $1..$5 are the query's filters (and
    /// $6..$9, when given, the candidates' keys), ranking each row by its stored vector.
    async fn ranked(
        &self,
        sql: &str,
        q: &VectorQuery,
        candidates: Option<&[ChunkKey]>,
    ) -> anyhow::Result<Vec<Hit>> {
        let client = self.client().await?;
        let readers = q.readers.as_ref().map(Json::<&Readers>);
        let rows = match candidates {
            None => {
                client
                    .query(
                        sql,
                        &[&q.model, &q.connector, &q.kind, &q.connectors, &readers],
                    )
                    .await?
            }
            Some(keys) => {
                let connectors: Vec<&str> = keys.iter().map(|k| k.connector.as_str()).collect();
                let kinds: Vec<&str> = keys.iter().map(|k| k.kind.as_str()).collect();
                let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
                let seqs: Vec<i32> = keys.iter().map(|k| k.seq as i32).collect();
                client
                    .query(
                        sql,
                        &[
                            &q.model,
                            &q.connector,
                            &q.kind,
                            &q.connectors,
                            &readers,
                            &connectors,
                            &kinds,
                            &ids,
                            &seqs,
                        ],
                    )
                    .await?
            }
        };
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

    /// Every chunk vector of `connector` made with `model` with its document's ACL, in key
    /// order.
    pub async fn chunk_vectors(
        &self,
        connector: &str,
        model: &str,
    ) -> anyhow::Result<Vec<IndexedChunk>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.kind, c.id, c.seq, c.vector, d.acl::text FROM chunks c
                 JOIN documents d ON d.connector = c.connector AND d.kind = c.kind AND d.id = c.id
                 WHERE c.connector = $1 AND c.model = $2
                 ORDER BY c.kind, c.id, c.seq",
                &[&connector, &model],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let vector = decode(&r.get::<_, Vec<u8>>(3))?;
                let seq: i32 = r.get(2);
                Some(IndexedChunk {
                    key: ChunkKey {
                        connector: connector.to_string(),
                        kind: r.get(0),
                        id: r.get(1),
                        seq: seq as u32,
                    },
                    vector,
                    acl: parse_acl(r.get(4)),
                })
            })
            .collect())
    }

    /// The ACL of every document of `connector` that has chunks.
    pub async fn chunked_document_acls(&self, connector: &str) -> anyhow::Result<Vec<DocumentAcl>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT d.kind, d.id, d.acl::text FROM chunked_documents c
                 JOIN documents d ON d.connector = c.connector AND d.kind = c.kind AND d.id = c.id
                 WHERE c.connector = $1",
                &[&connector],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| DocumentAcl {
                kind: r.get(0),
                id: r.get(1),
                acl: parse_acl(r.get(2)),
            })
            .collect())
    }

    /// A document's chunks of `model` made from its content as stored now, with its ACL (see
    /// `store::embeddings::current_chunks`).
    pub async fn current_chunks(
        &self,
        connector: &str,
        kind: &str,
        id: &str,
        model: &str,
    ) -> anyhow::Result<CurrentChunks> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.text, c.vector, d.acl::text FROM chunks c
                 JOIN chunked_documents cd
                   ON cd.connector = c.connector AND cd.kind = c.kind AND cd.id = c.id
                 JOIN documents d ON d.connector = c.connector AND d.kind = c.kind AND d.id = c.id
                 WHERE c.connector = $1 AND c.kind = $2 AND c.id = $3 AND c.model = $4
                   AND cd.model = $4 AND cd.doc_hash = COALESCE(d.content_hash, '')
                 ORDER BY c.seq",
                &[&connector, &kind, &id, &model],
            )
            .await?;
        let mut out = CurrentChunks::default();
        for r in &rows {
            out.acl = parse_acl(r.get(2));
            if let Some(v) = decode(&r.get::<_, Vec<u8>>(1)) {
                out.chunks.push((r.get(0), v));
            }
        }
        Ok(out)
    }

    /// The connectors that have chunks of `model`.
    pub async fn vector_connectors(&self, model: &str) -> anyhow::Result<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT DISTINCT connector FROM chunks WHERE model = $1",
                &[&model],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
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
