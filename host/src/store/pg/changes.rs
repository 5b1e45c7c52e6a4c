//! The change feed's readers on PostgreSQL, mirroring `store/changes.rs` (the writes are in
//! `documents.rs`, inside each page's transaction). The same rules: commit order, an upsert
//! judged by the document's ACL now, a reader behind the pruning told where the feed starts.

use deadpool_postgres::GenericClient;

use super::PgStore;
use crate::store::changes::{Change, Page};
use crate::store::documents::parse_acl;

/// Which changes a reader asks for (see [`crate::store::changes::Follow`]).
pub struct Follow<'a> {
    pub after: i64,
    pub within: Option<&'a [String]>,
    pub connector: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub limit: usize,
    pub visible: &'a (dyn Fn(&str, &[String]) -> bool + Sync),
}

/// The changes after `f.after` (at most `f.limit`), or Err(first kept sequence) when changes
/// the caller has not seen were pruned. Runs in the caller's transaction when given one.
pub async fn read(c: &impl GenericClient, f: &Follow<'_>) -> anyhow::Result<Result<Page, i64>> {
    let pruned = pruned_through(c).await?;
    if f.after < pruned {
        return Ok(Err(pruned + 1));
    }
    const BATCH: i64 = 500;
    let stmt = c
        .prepare_cached(
            "SELECT c.seq, c.connector, c.stream, c.kind, c.id, c.op, c.committed_at,
                    COALESCE((SELECT d.acl::text FROM documents d WHERE c.op = 'upsert'
                        AND d.connector = c.connector AND d.kind = c.kind AND d.id = c.id),
                      c.acl::text)
             FROM changes c
             WHERE c.seq > $1 AND ($2::text IS NULL OR c.connector = $2)
               AND ($3::text IS NULL OR c.kind = $3)
             ORDER BY c.seq LIMIT $4",
        )
        .await?;
    let mut out = Vec::new();
    let mut next = f.after;
    loop {
        let rows = c
            .query(&stmt, &[&next, &f.connector, &f.kind, &BATCH])
            .await?;
        let full = rows.len() as i64 == BATCH;
        for r in rows {
            if out.len() == f.limit {
                return Ok(Ok(Page { changes: out, next }));
            }
            let acl: String = r.get(7);
            let change = Change {
                seq: r.get(0),
                connector: r.get(1),
                stream: r.get(2),
                kind: r.get(3),
                id: r.get(4),
                op: r.get(5),
                committed_at: r.get(6),
                acl: parse_acl(&acl),
            };
            next = change.seq;
            let in_scope = f.within.is_none_or(|w| w.contains(&change.connector));
            if in_scope && (f.visible)(&change.connector, &change.acl) {
                out.push(change);
            }
        }
        if !full || out.len() == f.limit {
            return Ok(Ok(Page { changes: out, next }));
        }
    }
}

/// The highest sequence pruned so far (0: none).
pub async fn pruned_through(c: &impl GenericClient) -> anyhow::Result<i64> {
    let row = c
        .query_opt("SELECT pruned_through FROM changes_meta WHERE id = 1", &[])
        .await?;
    Ok(row.map_or(0, |r| r.get(0)))
}

/// The newest sequence (0: none yet).
pub async fn last_seq(c: &impl GenericClient) -> anyhow::Result<i64> {
    let row = c
        .query_one("SELECT COALESCE(MAX(seq), 0)::bigint FROM changes", &[])
        .await?;
    Ok(row.get(0))
}

impl PgStore {
    pub async fn read_changes(&self, f: &Follow<'_>) -> anyhow::Result<Result<Page, i64>> {
        let client = self.client().await?;
        read(&client, f).await
    }
}
