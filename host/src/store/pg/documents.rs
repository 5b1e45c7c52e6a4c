//! Documents, their full-text index and the change feed's writes on PostgreSQL, mirroring
//! `store/documents.rs`. A page is applied in a few set-based statements (arrays unnested), not
//! one round trip per record.
//!
//! Search: the `tsv` column splits words as SQLite's unicode61 tokenizer does (every
//! non-alphanumeric character separates words; no stemming), so a query finds the same
//! documents on both backends; all words are required. Ranking differs: `ts_rank` with titles
//! weighted over bodies here, bm25 with titles weighted 4:1 in SQLite; both report a score where
//! lower is better (the negated rank here). SQLite also folds diacritics; PostgreSQL's `simple`
//! configuration does not.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::types::Json;

use super::PgStore;
use crate::model::{Document, DocumentRef, Metadata};
use crate::store::backend::{PageCommit, SearchQuery};
use crate::store::documents::{Hit, Readers, content_hash, fts_terms, parse_acl};

/// Change rows are numbered in commit order: writers of the feed take this lock inside their
/// transaction, so a reader that has seen sequence N never later finds a smaller one appear.
const FEED_LOCK: i64 = 0x6169726c6f636b + 1;

impl PgStore {
    pub async fn commit_page(&self, p: &PageCommit) -> anyhow::Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(lease) = &p.lease {
            super::leases::fence(&tx, lease, p.lease_ttl).await?;
        }
        let now = crate::store::now_rfc3339();
        apply(
            &tx,
            &p.connector,
            Some(&p.stream),
            p.invocation.as_deref(),
            &p.upserts,
            &p.deletes,
            &now,
        )
        .await?;
        super::sync_state::commit_cursor(&tx, p, &now).await?;
        if let Some(before) = &p.prune_before {
            prune(&tx, before).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn put_documents(
        &self,
        connector: &str,
        upserts: &[Document],
        deletes: &[DocumentRef],
    ) -> anyhow::Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = crate::store::now_rfc3339();
        apply(&tx, connector, None, None, upserts, deletes, &now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn document(
        &self,
        connector: &str,
        kind: &str,
        id: &str,
    ) -> anyhow::Result<Option<Document>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id, kind, title, body, url, updated_at, metadata, acl::text FROM documents
                 WHERE connector = $1 AND kind = $2 AND id = $3",
                &[&connector, &kind, &id],
            )
            .await?;
        Ok(row.map(|r| row_document(&r)))
    }

    pub async fn documents(
        &self,
        connector: &str,
        kind: Option<&str>,
    ) -> anyhow::Result<Vec<Document>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, kind, title, body, url, updated_at, metadata, acl::text FROM documents
                 WHERE connector = $1 AND ($2::text IS NULL OR kind = $2)
                 ORDER BY kind COLLATE \"C\", id COLLATE \"C\"",
                &[&connector, &kind],
            )
            .await?;
        Ok(rows.iter().map(row_document).collect())
    }

    pub async fn search(&self, q: &SearchQuery) -> anyhow::Result<Vec<Hit>> {
        let Some(terms) = fts_terms(&q.text) else {
            return Ok(Vec::new());
        };
        let client = self.client().await?;
        // The inner query filters (tenant and ACL before LIMIT) and ranks; only the hits
        // kept get a snippet, which reads the whole body.
        let rows = client
            .query(
                &format!(
                    "SELECT h.connector, h.kind, h.id, h.title, h.url, h.updated_at,
                            ts_headline('simple', d.body, h.q,
                              'StartSel=[, StopSel=], MaxWords=16, MinWords=5, MaxFragments=1, FragmentDelimiter=…'),
                            h.score, h.acl::text
                     FROM (
                       SELECT d.rid, d.connector, d.kind, d.id, d.title, d.url, d.updated_at, d.acl,
                              -ts_rank(d.tsv, q.q) AS score, q.q
                       FROM documents d, (SELECT to_tsquery('simple', $1) AS q) q
                       WHERE d.tsv @@ q.q
                         AND ($2::text IS NULL OR d.connector = $2)
                         AND ($3::text IS NULL OR d.kind = $3)
                         AND ($5::text[] IS NULL OR d.connector = ANY($5))
                         AND {}
                       ORDER BY score, d.rid LIMIT $4
                     ) h JOIN documents d ON d.rid = h.rid
                     ORDER BY h.score, h.rid",
                    readers_sql("$6")
                ),
                &[
                    // The terms are alphanumeric runs (`fts_terms`): no tsquery syntax.
                    &terms.join(if q.any_word { " | " } else { " & " }),
                    &q.connector,
                    &q.kind,
                    &(q.limit.clamp(1, 1000) as i64),
                    &q.connectors,
                    &q.readers.as_ref().map(Json::<&Readers>),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let score: f32 = r.get(7);
                let acl: String = r.get(8);
                Hit {
                    connector: r.get(0),
                    kind: r.get(1),
                    id: r.get(2),
                    title: r.get(3),
                    url: r.get(4),
                    updated_at: r.get(5),
                    snippet: r.get(6),
                    score: Some(score as f64),
                    source: "local",
                    acl: parse_acl(&acl),
                }
            })
            .collect())
    }
}

fn row_document(r: &tokio_postgres::Row) -> Document {
    let metadata: String = r.get(6);
    let acl: String = r.get(7);
    Document {
        id: r.get(0),
        kind: r.get(1),
        title: r.get(2),
        body: r.get(3),
        url: r.get(4),
        updated_at: r.get(5),
        metadata: Metadata::from_stored(metadata),
        acl: parse_acl(&acl),
    }
}

/// SQL condition: document row `d` may be read by the readers in JSONB parameter `param` (see
/// [`Readers`]); NULL means no filter. The same rule as the SQLite condition: an empty ACL only
/// for a tenant-wide connector, else one of the reader's identities must be listed.
pub(super) fn readers_sql(param: &str) -> String {
    format!(
        "({param}::jsonb IS NULL OR (jsonb_typeof(d.acl) = 'array' AND (
            (d.acl = '[]'::jsonb AND d.connector IN
               (SELECT jsonb_array_elements_text({param}::jsonb -> 'open')))
            OR d.acl ?| ARRAY(SELECT jsonb_array_elements_text({param}::jsonb -> 'common'))
            OR d.acl ?| ARRAY(SELECT jsonb_array_elements_text(
                 COALESCE({param}::jsonb -> 'by_connector' -> d.connector, '[]'::jsonb))))))"
    )
}

/// An ACL for the database: what does not serialise is nobody's (fail closed).
fn acl_json(acl: &[String]) -> serde_json::Value {
    serde_json::to_value(acl).unwrap_or_else(|_| serde_json::json!(["nobody:"]))
}

/// Applies upserts, then deletes, in the caller's transaction, recording each real change in
/// the feed. Within one page the last upsert of a record wins (as applying them in order does);
/// an upsert identical to the stored document writes nothing.
pub async fn apply(
    tx: &impl GenericClient,
    connector: &str,
    stream: Option<&str>,
    invocation: Option<&str>,
    upserts: &[Document],
    deletes: &[DocumentRef],
    now: &str,
) -> anyhow::Result<()> {
    let mut changed: Vec<(String, String, &'static str, String)> = Vec::new();
    if !upserts.is_empty() {
        let mut last: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, d) in upserts.iter().enumerate() {
            last.insert((d.kind.as_str(), d.id.as_str()), i);
        }
        let mut order: Vec<usize> = last.into_values().collect();
        order.sort_unstable();
        let n = order.len();
        let (mut kinds, mut ids, mut titles, mut bodies) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut urls, mut updated, mut metas, mut acls, mut hashes) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for i in order {
            let d = &upserts[i];
            let acl = serde_json::to_string(&d.acl).unwrap_or_else(|_| "[\"nobody:\"]".into());
            let metadata = d.metadata.as_str();
            hashes.push(content_hash(d, metadata, &acl));
            kinds.push(d.kind.as_str());
            ids.push(d.id.as_str());
            titles.push(d.title.as_str());
            bodies.push(d.body.as_str());
            urls.push(d.url.as_deref());
            updated.push(d.updated_at.as_str());
            metas.push(metadata);
            acls.push(acl_json(&d.acl));
        }
        let rows = tx
            .query(
                "INSERT INTO documents (connector, kind, id, title, body, url, updated_at, metadata,
                                        acl, synced_at, stream, invocation, content_hash)
                 SELECT $1, k, i, t, b, u, up, m, a, $2, $3, $4, h
                 FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                             $10::text[], $11::text[], $12::jsonb[], $13::text[])
                      AS x(k, i, t, b, u, up, m, a, h)
                 ON CONFLICT (connector, kind, id) DO UPDATE SET
                   title = excluded.title, body = excluded.body, url = excluded.url,
                   updated_at = excluded.updated_at, metadata = excluded.metadata,
                   acl = excluded.acl, synced_at = excluded.synced_at,
                   stream = COALESCE(excluded.stream, documents.stream),
                   invocation = excluded.invocation, content_hash = excluded.content_hash
                 WHERE documents.content_hash IS DISTINCT FROM excluded.content_hash
                    OR documents.stream IS DISTINCT FROM COALESCE(excluded.stream, documents.stream)
                 RETURNING kind, id, acl::text",
                &[
                    &connector,
                    &now,
                    &stream,
                    &invocation,
                    &kinds,
                    &ids,
                    &titles,
                    &bodies,
                    &urls,
                    &updated,
                    &metas,
                    &acls,
                    &hashes,
                ],
            )
            .await?;
        changed.extend(
            rows.iter()
                .map(|r| (r.get(0), r.get(1), "upsert", r.get::<_, String>(2))),
        );
    }
    if !deletes.is_empty() {
        let kinds: Vec<&str> = deletes.iter().map(|r| r.kind.as_str()).collect();
        let ids: Vec<&str> = deletes.iter().map(|r| r.id.as_str()).collect();
        // Only a document that was there is a change; its tombstone keeps its ACL.
        let rows = tx
            .query(
                "DELETE FROM documents d USING unnest($2::text[], $3::text[]) AS x(k, i)
                 WHERE d.connector = $1 AND d.kind = x.k AND d.id = x.i
                 RETURNING d.kind, d.id, d.acl::text",
                &[&connector, &kinds, &ids],
            )
            .await?;
        changed.extend(
            rows.iter()
                .map(|r| (r.get(0), r.get(1), "delete", r.get::<_, String>(2))),
        );
    }
    if !changed.is_empty() {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FEED_LOCK])
            .await?;
        let kinds: Vec<&str> = changed.iter().map(|c| c.0.as_str()).collect();
        let ids: Vec<&str> = changed.iter().map(|c| c.1.as_str()).collect();
        let ops: Vec<&str> = changed.iter().map(|c| c.2).collect();
        let acls: Vec<&str> = changed.iter().map(|c| c.3.as_str()).collect();
        tx.execute(
            "INSERT INTO changes (connector, stream, kind, id, op, acl, committed_at)
             SELECT $1, $2, k, i, o, a::jsonb, $3
             FROM unnest($4::text[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS x(k, i, o, a, n)
             ORDER BY n",
            &[&connector, &stream, &now, &kinds, &ids, &ops, &acls],
        )
        .await?;
        // Delivered when the transaction commits: wakes change-feed readers on every daemon.
        tx.execute(
            "SELECT pg_notify($1, '')",
            &[&super::commit_notify::CHANNEL],
        )
        .await?;
    }
    Ok(())
}

/// Drops feed rows committed before `before`, keeping what a webhook has not fanned out yet,
/// and remembers how far the feed was cut.
pub async fn prune(tx: &impl GenericClient, before: &str) -> anyhow::Result<u64> {
    let row = tx
        .query_one(
            "SELECT (SELECT MAX(seq) FROM changes WHERE committed_at < $1),
                    (SELECT MIN(cursor) FROM webhook_cursors)",
            &[&before],
        )
        .await?;
    let (through, held): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
    let Some(mut through) = through else {
        return Ok(0);
    };
    if let Some(held) = held {
        through = through.min(held);
    }
    let n = tx
        .execute("DELETE FROM changes WHERE seq <= $1", &[&through])
        .await?;
    tx.execute(
        "INSERT INTO changes_meta (id, pruned_through) VALUES (1, $1)
         ON CONFLICT (id) DO UPDATE SET
           pruned_through = GREATEST(changes_meta.pruned_through, excluded.pruned_through)",
        &[&through],
    )
    .await?;
    Ok(n)
}
