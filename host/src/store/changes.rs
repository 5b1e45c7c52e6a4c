//! The change feed: one row per committed upsert and delete, written in the same transaction as
//! the page that made it, so the feed is exactly what the store committed, in commit order. The
//! sequence never repeats or goes back (AUTOINCREMENT), also after old rows are pruned; a reader
//! asking for changes that were pruned is told so rather than silently skipped past them.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

/// One committed change. A delete is a tombstone: the document's reference only.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    pub seq: i64,
    pub connector: String,
    pub stream: Option<String>,
    pub kind: String,
    pub id: String,
    /// `upsert` or `delete`.
    pub op: String,
    pub committed_at: String,
    /// Who may read the document (its ACL when committed; a tombstone keeps the deleted
    /// document's), so the feed is filtered like search. Not part of the answer.
    #[serde(skip)]
    pub acl: Vec<String>,
}

/// Records that `(kind, id)` of `connector` was upserted or deleted (`op`), inside the page's
/// transaction; `acl_json` is who may see the change (a tombstone keeps the deleted document's).
pub fn record(
    tx: &Transaction<'_>,
    (connector, stream): (&str, Option<&str>),
    op: Op,
    (kind, id): (&str, &str),
    acl_json: &str,
    now: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO changes (connector, stream, kind, id, op, acl, committed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        connector,
        stream,
        kind,
        id,
        op.as_str(),
        acl_json,
        now
    ])?;
    Ok(())
}

/// What happened to a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Upsert,
    Delete,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Upsert => "upsert",
            Op::Delete => "delete",
        }
    }
}

/// Which changes a reader asks for.
pub struct Follow<'a> {
    /// Changes with a sequence above this one.
    pub after: i64,
    /// Only these connectors (the caller's tenant); None: every connector.
    pub within: Option<&'a [String]>,
    pub connector: Option<&'a str>,
    pub kind: Option<&'a str>,
    /// Most changes to return.
    pub limit: usize,
    /// Keeps a change of a connector when the ACL lets the reader see it.
    pub visible: &'a dyn Fn(&str, &[String]) -> bool,
}

/// What a read found.
#[derive(Debug, Serialize)]
pub struct Page {
    pub changes: Vec<Change>,
    /// The sequence to ask `after` next time: past every change looked at, also the ones the
    /// caller may not see, so a follower never scans them again.
    pub next: i64,
}

/// The changes after `f.after` (at most `f.limit`), or Err(first kept sequence) when changes
/// the caller has not seen were pruned.
pub fn read(conn: &Connection, f: &Follow<'_>) -> rusqlite::Result<Result<Page, i64>> {
    let pruned = pruned_through(conn)?;
    if f.after < pruned {
        return Ok(Err(pruned + 1));
    }
    const BATCH: i64 = 500;
    let mut stmt = conn.prepare_cached(
        // An upsert is judged by the document's ACL now, not the one it had when committed: a
        // reader whose access was removed upstream no longer sees even its past changes.
        "SELECT seq, connector, stream, kind, id, op, committed_at,
                COALESCE((SELECT d.acl FROM documents d WHERE op = 'upsert'
                    AND d.connector = changes.connector AND d.kind = changes.kind
                    AND d.id = changes.id), acl)
         FROM changes
         WHERE seq > ?1 AND (?2 IS NULL OR connector = ?2) AND (?3 IS NULL OR kind = ?3)
         ORDER BY seq LIMIT ?4",
    )?;
    let mut out = Vec::new();
    let mut next = f.after;
    loop {
        let rows: Vec<Change> = stmt
            .query_map(params![next, f.connector, f.kind, BATCH], |r| {
                let acl: String = r.get(7)?;
                Ok(Change {
                    seq: r.get(0)?,
                    connector: r.get(1)?,
                    stream: r.get(2)?,
                    kind: r.get(3)?,
                    id: r.get(4)?,
                    op: r.get(5)?,
                    committed_at: r.get(6)?,
                    // An ACL that does not parse lets nobody see the change (fail closed).
                    acl: serde_json::from_str(&acl).unwrap_or_else(|_| vec![String::new()]),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let full = rows.len() as i64 == BATCH;
        for c in rows {
            if out.len() == f.limit {
                return Ok(Ok(Page { changes: out, next }));
            }
            next = c.seq;
            let in_scope = f.within.is_none_or(|w| w.contains(&c.connector));
            if in_scope && (f.visible)(&c.connector, &c.acl) {
                out.push(c);
            }
        }
        if !full || out.len() == f.limit {
            return Ok(Ok(Page { changes: out, next }));
        }
    }
}

/// The highest sequence pruned so far (0: none).
pub fn pruned_through(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(conn
        .query_row(
            "SELECT pruned_through FROM changes_meta WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// The newest sequence (0: none yet).
pub fn last_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
        r.get(0)
    })
}

/// Drops changes committed before `before` (RFC 3339) and remembers how far the feed was cut.
pub fn prune(tx: &Transaction<'_>, before: &str) -> rusqlite::Result<usize> {
    let through: Option<i64> = tx.query_row(
        "SELECT MAX(seq) FROM changes WHERE committed_at < ?1",
        [before],
        |r| r.get(0),
    )?;
    let Some(mut through) = through else {
        return Ok(0);
    };
    // A webhook that has not fanned out yet keeps its changes (store/webhooks.rs owns the
    // cursors; read here directly so the feed does not depend on its consumer).
    let held: Option<i64> =
        tx.query_row("SELECT MIN(cursor) FROM webhook_cursors", [], |r| r.get(0))?;
    if let Some(held) = held {
        through = through.min(held);
    }
    let n = tx.execute("DELETE FROM changes WHERE seq <= ?1", [through])?;
    tx.execute(
        "INSERT INTO changes_meta (id, pruned_through) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET pruned_through = MAX(pruned_through, ?1)",
        [through],
    )?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Document, DocumentRef};
    use crate::store::documents::apply_stream_page;

    fn doc(id: &str, acl: &[&str]) -> Document {
        Document {
            id: id.into(),
            kind: "ticket".into(),
            title: id.into(),
            body: String::new(),
            url: None,
            updated_at: String::new(),
            metadata: serde_json::json!({}).into(),
            acl: acl.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn commit(conn: &mut Connection, ups: &[Document], dels: &[(&str, &str)], now: &str) {
        let dels: Vec<DocumentRef> = dels
            .iter()
            .map(|(k, i)| DocumentRef {
                kind: k.to_string(),
                id: i.to_string(),
            })
            .collect();
        let tx = conn.transaction().unwrap();
        apply_stream_page(&tx, "zendesk", Some("tickets"), None, ups, &dels, now).unwrap();
        tx.commit().unwrap();
    }

    fn follow(conn: &Connection, after: i64, limit: usize, reader: &str) -> Result<Page, i64> {
        let visible = |_: &str, acl: &[String]| acl.is_empty() || acl.iter().any(|a| a == reader);
        read(
            conn,
            &Follow {
                after,
                within: None,
                connector: None,
                kind: None,
                limit,
                visible: &visible,
            },
        )
        .unwrap()
    }

    #[test]
    fn upserts_and_deletes_come_in_commit_order_with_tombstones_and_acls() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::store::open(dir.path()).unwrap();
        commit(
            &mut conn,
            &[doc("1", &[]), doc("2", &["ada"])],
            &[],
            "2026-01-01T00:00:00.000Z",
        );
        // Deleting what is not there changes nothing, and is not in the feed.
        commit(
            &mut conn,
            &[doc("3", &[])],
            &[("ticket", "2"), ("ticket", "9")],
            "2026-01-02T00:00:00.000Z",
        );
        let all = follow(&conn, 0, 100, "ada").unwrap();
        let seen: Vec<(String, String)> = all
            .changes
            .iter()
            .map(|c| (c.id.clone(), c.op.clone()))
            .collect();
        let want = [
            ("1", "upsert"),
            ("2", "upsert"),
            ("3", "upsert"),
            ("2", "delete"),
        ];
        assert_eq!(seen, want.map(|(a, b)| (a.to_string(), b.to_string())));
        assert!(all.changes.windows(2).all(|w| w[0].seq < w[1].seq));
        // Another reader sees neither the document nor its tombstone, but moves past them.
        let bob = follow(&conn, 0, 100, "bob").unwrap();
        assert_eq!(bob.changes.len(), 2);
        assert_eq!(bob.next, all.next);
        // Resuming from any sequence gives exactly the rest.
        let first = follow(&conn, 0, 2, "ada").unwrap();
        let rest = follow(&conn, first.next, 100, "ada").unwrap();
        assert_eq!(first.changes.len() + rest.changes.len(), 4);
        assert_eq!(rest.changes[0].id, "3");
    }

    #[test]
    fn past_upserts_follow_the_documents_current_acl_and_unchanged_upserts_are_no_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::store::open(dir.path()).unwrap();
        commit(
            &mut conn,
            &[doc("1", &["ada", "bob"])],
            &[],
            "2026-01-01T00:00:00.000Z",
        );
        assert_eq!(follow(&conn, 0, 10, "bob").unwrap().changes.len(), 1);
        // The same document again is not a change; a narrower ACL is, and it also hides the
        // earlier change from the reader who lost access.
        commit(
            &mut conn,
            &[doc("1", &["ada", "bob"])],
            &[],
            "2026-01-02T00:00:00.000Z",
        );
        assert_eq!(last_seq(&conn).unwrap(), 1);
        commit(
            &mut conn,
            &[doc("1", &["ada"])],
            &[],
            "2026-01-03T00:00:00.000Z",
        );
        assert_eq!(last_seq(&conn).unwrap(), 2);
        assert!(follow(&conn, 0, 10, "bob").unwrap().changes.is_empty());
        assert_eq!(follow(&conn, 0, 10, "ada").unwrap().changes.len(), 2);
    }

    #[test]
    fn a_reader_behind_the_retention_is_told_where_the_feed_now_starts() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = crate::store::open(dir.path()).unwrap();
        commit(
            &mut conn,
            &[doc("1", &[]), doc("2", &[])],
            &[],
            "2026-01-01T00:00:00.000Z",
        );
        commit(&mut conn, &[doc("3", &[])], &[], "2026-03-01T00:00:00.000Z");
        let tx = conn.transaction().unwrap();
        assert_eq!(prune(&tx, "2026-02-01T00:00:00.000Z").unwrap(), 2);
        tx.commit().unwrap();
        assert_eq!(follow(&conn, 0, 10, "x").unwrap_err(), 3);
        assert_eq!(follow(&conn, 2, 10, "x").unwrap().changes.len(), 1);
        // Sequences never go back, also after pruning.
        commit(&mut conn, &[doc("4", &[])], &[], "2026-03-02T00:00:00.000Z");
        assert_eq!(last_seq(&conn).unwrap(), 4);
    }
}
