//! Synced documents keyed by (connector, kind, id), the FTS5 index over title and body, and
//! bm25-ranked search with highlighted snippets.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use super::changes::Op::{Delete, Upsert};
use crate::model::{Document, DocumentRef, Metadata};

/// Applies one page (upserts, then deletes) of no particular stream inside the caller's
/// transaction (imports and tests; sync uses [`apply_stream_page`]).
pub fn apply_page(
    tx: &Transaction<'_>,
    connector: &str,
    upserts: &[Document],
    deletes: &[DocumentRef],
    now: &str,
) -> rusqlite::Result<()> {
    apply_stream_page(tx, connector, None, None, upserts, deletes, now)
}

/// Applies one sync page of `stream` (upserts, then deletes) inside the caller's transaction;
/// upserted documents are counted as the stream's stored records. An upsert identical to
/// the stored document writes nothing and is no change in the feed.
/// `invocation` is the sync call that fetched the page: `audit verify` checks that its rows exist.
pub fn apply_stream_page(
    tx: &Transaction<'_>,
    connector: &str,
    stream: Option<&str>,
    invocation: Option<&str>,
    upserts: &[Document],
    deletes: &[DocumentRef],
    now: &str,
) -> rusqlite::Result<()> {
    // An unchanged record (same digest, same stream) is left alone: no write, no FTS
    // re-index, no change row. A permission change is a change: the ACL is in the digest.
    let mut up = tx.prepare_cached(
        "INSERT INTO documents (connector, kind, id, title, body, url, updated_at, metadata, acl, synced_at, stream, invocation, content_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (connector, kind, id) DO UPDATE SET
           title = excluded.title, body = excluded.body, url = excluded.url,
           updated_at = excluded.updated_at, metadata = excluded.metadata, acl = excluded.acl,
           synced_at = excluded.synced_at, stream = COALESCE(excluded.stream, documents.stream),
           invocation = excluded.invocation, content_hash = excluded.content_hash
         WHERE documents.content_hash IS NOT excluded.content_hash
            OR documents.stream IS NOT COALESCE(excluded.stream, documents.stream)",
    )?;
    // The stored digest and stream, read first: an unchanged record (a whole unchanged re-sync)
    // then costs a key lookup, not the binding of its every field to an upsert that writes nothing.
    let mut stored = tx.prepare_cached(
        "SELECT content_hash, stream FROM documents WHERE connector = ?1 AND kind = ?2 AND id = ?3",
    )?;
    // A document upserted exactly as stored is no change (no row written, nothing in the feed):
    // connectors that re-read every record to refresh its permissions re-send unchanged ones.
    for d in upserts {
        let acl = serde_json::to_string(&d.acl).unwrap_or_else(|_| "[]".into());
        let metadata = d.metadata.as_str();
        let hash = content_hash(d, metadata, &acl);
        let same = stored
            .query_row(params![connector, d.kind, d.id], |r| {
                let (h, s) = (
                    r.get_ref(0)?.as_str_or_null()?,
                    r.get_ref(1)?.as_str_or_null()?,
                );
                // The upsert's own condition: same digest, and the stream kept.
                Ok(h == Some(hash.as_str()) && (stream.is_none() || s == stream))
            })
            .optional()?;
        if same == Some(true) {
            continue;
        }
        let written = up.execute(params![
            connector,
            d.kind,
            d.id,
            d.title,
            d.body,
            d.url,
            d.updated_at,
            metadata,
            acl,
            now,
            stream,
            invocation,
            hash
        ])?;
        if written > 0 {
            let at = (connector, stream);
            super::changes::record(tx, at, Upsert, (&d.kind, &d.id), &acl, now)?;
        }
    }
    let mut del = tx.prepare_cached(
        "DELETE FROM documents WHERE connector = ?1 AND kind = ?2 AND id = ?3 RETURNING acl",
    )?;
    for r in deletes {
        // Only a document that was there is a change; its tombstone keeps its ACL.
        let gone: Option<String> = del
            .query_row(params![connector, r.kind, r.id], |row| row.get(0))
            .optional()?;
        if let Some(acl) = gone {
            let at = (connector, stream);
            super::changes::record(tx, at, Delete, (&r.kind, &r.id), &acl, now)?;
        }
    }
    Ok(())
}

/// The digest of everything a stored document shows: kind, title, body, URL, update time,
/// metadata and ACL, each length-prefixed so no two documents share an encoding.
pub(crate) fn content_hash(d: &Document, metadata: &str, acl: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let url = d.url.as_deref().unwrap_or("\u{0}none");
    for part in [
        d.kind.as_str(),
        &d.title,
        &d.body,
        url,
        &d.updated_at,
        metadata,
        acl,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// One stored document.
pub fn get(
    conn: &Connection,
    connector: &str,
    kind: &str,
    id: &str,
) -> rusqlite::Result<Option<Document>> {
    conn.query_row(
        "SELECT id, kind, title, body, url, updated_at, metadata, acl FROM documents
         WHERE connector = ?1 AND kind = ?2 AND id = ?3",
        params![connector, kind, id],
        row_document,
    )
    .optional()
}

fn row_document(r: &rusqlite::Row<'_>) -> rusqlite::Result<Document> {
    let metadata: String = r.get(6)?;
    let acl: String = r.get(7)?;
    Ok(Document {
        id: r.get(0)?,
        kind: r.get(1)?,
        title: r.get(2)?,
        body: r.get(3)?,
        url: r.get(4)?,
        updated_at: r.get(5)?,
        metadata: Metadata::from_stored(metadata),
        acl: parse_acl(&acl),
    })
}

/// Every document of a connector (tests and exports compare it with ground truth).
pub fn all(
    conn: &Connection,
    connector: &str,
    kind: Option<&str>,
) -> rusqlite::Result<Vec<Document>> {
    let mut stmt = conn.prepare(
        "SELECT id, kind, title, body, url, updated_at, metadata, acl FROM documents
         WHERE connector = ?1 AND (?2 IS NULL OR kind = ?2) ORDER BY kind, id",
    )?;
    let rows = stmt.query_map(params![connector, kind], row_document)?;
    rows.collect()
}

/// A local search hit.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub connector: String,
    pub kind: String,
    pub id: String,
    pub title: String,
    pub url: Option<String>,
    pub updated_at: String,
    /// Matching text with the terms wrapped in `[` `]`.
    pub snippet: String,
    /// Keyword mode: bm25 score (lower is better); semantic: cosine similarity, hybrid: fused
    /// reciprocal-rank score (both higher is better); absent for a live hit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// `local` or `live`.
    pub source: &'static str,
    #[serde(skip)]
    pub acl: Vec<String>,
}

/// Search filters.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    pub text: &'a str,
    pub connector: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub limit: usize,
    /// Only documents of these connectors (None: every connector).
    pub connectors: Option<&'a [String]>,
    /// Only documents these readers may open (see [`Readers::allows`]); None: no ACL filter
    /// (the operator's CLI).
    pub readers: Option<&'a Readers>,
    /// Documents with any of the words (ranked by bm25, so those with more and rarer words
    /// lead) rather than all of them: for questions in plain language (`ask`).
    pub any_word: bool,
}

/// Who is reading: the identities a principal has, overall and per connector, and which
/// connectors' records without an ACL are tenant-wide. A document is readable when its ACL lists
/// one of the reader's identities for the document's connector; an empty ACL only when the
/// connector is declared tenant-wide (`permissions = "tenant"`). Everything else fails closed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Readers {
    /// Identities that count for every connector: the principal's name and its groups, bare
    /// (the ACL form documents had before identities were namespaced) and as `group:NAME`.
    pub common: Vec<String>,
    /// Per connector, the identities the principal has upstream there (e.g. `user:ACCOUNT-ID`).
    pub by_connector: std::collections::BTreeMap<String, Vec<String>>,
    /// Connectors whose records without an ACL every principal of the tenant may read.
    pub open: Vec<String>,
}

impl Readers {
    /// Readers whose only identities are `names`, for every connector; `open` connectors'
    /// records without an ACL are tenant-wide.
    pub fn names(names: &[&str], open: &[&str]) -> Self {
        Readers {
            common: names.iter().map(|s| s.to_string()).collect(),
            by_connector: Default::default(),
            open: open.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Whether a document of `connector` with this ACL may be read.
    pub fn allows(&self, connector: &str, acl: &[String]) -> bool {
        if acl.is_empty() {
            return self.open.iter().any(|c| c == connector);
        }
        let own = self.by_connector.get(connector);
        acl.iter()
            .any(|a| self.common.contains(a) || own.is_some_and(|ids| ids.contains(a)))
    }

    /// The filter as JSON for the SQL queries (`common`, `open`, `by_connector`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// SQL condition: the document row `d` may be read by the readers in JSON parameter `param`
/// (see [`Readers::to_json`]); a parameter that is NULL means no filter.
pub fn readers_sql(param: &str) -> String {
    format!(
        "({param} IS NULL OR (json_valid(d.acl) AND json_type(d.acl) = 'array' AND (
            (d.acl = '[]' AND d.connector IN (SELECT value FROM json_each({param}, '$.open')))
            OR EXISTS (SELECT 1 FROM json_each(d.acl) a WHERE json_type(d.acl) = 'array' AND (
                a.value IN (SELECT value FROM json_each({param}, '$.common'))
                OR a.value IN (SELECT value FROM json_each({param}, '$.by_connector.' || json_quote(d.connector))))))))"
    )
}

/// An ACL that no principal or group can match: what a stored ACL that does not parse becomes.
/// (Principal and group names never contain NUL.)
pub const UNREADABLE_ACL: &str = "\u{0}unreadable-acl";

/// A stored ACL. One that does not parse as a list of names fails closed: it lets nobody read
/// the document (an empty list would let a tenant-wide connector's readers in).
pub fn parse_acl(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|_| vec![UNREADABLE_ACL.to_string()])
}

/// The words of a query: split on every non-alphanumeric character (as the unicode61
/// tokenizer splits documents) and lowercased; None when there is none. Both backends build
/// their query from these, so they look for the same words.
pub fn fts_terms(text: &str) -> Option<Vec<String>> {
    let terms: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    (!terms.is_empty()).then_some(terms)
}

/// Turns user text into an FTS5 query: every word quoted (so punctuation and FTS syntax in
/// the input cannot cause errors or change the meaning) and all words required, or with
/// `any_word` any of them.
pub fn fts_query(text: &str, any_word: bool) -> Option<String> {
    let terms = fts_terms(text)?;
    let quoted: Vec<String> = terms.iter().map(|w| format!("\"{w}\"")).collect();
    Some(quoted.join(if any_word { " OR " } else { " " }))
}

/// bm25-ranked local search; title matches weigh more than body matches.
pub fn search(conn: &Connection, q: &Query<'_>) -> rusqlite::Result<Vec<Hit>> {
    let Some(fts) = fts_query(q.text, q.any_word) else {
        return Ok(Vec::new());
    };
    // Ordered by FTS5's own `rank` (set to the weighted bm25 for this query): FTS5 hands the
    // matches over best first, so the join, the tenant and ACL filters and the snippet run only
    // until LIMIT permitted hits are found. Ordered by a bm25() expression instead, every match
    // of a common word was joined, filtered and given a snippet, then sorted (p99 at a million
    // documents: the words in a tenth of them).
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT d.connector, d.kind, d.id, d.title, d.url, d.updated_at,
                snippet(documents_fts, 1, '[', ']', '…', 16), documents_fts.rank, d.acl
         FROM documents_fts JOIN documents d ON d.rowid = documents_fts.rowid
         WHERE documents_fts MATCH ?1 AND documents_fts.rank MATCH 'bm25(4.0, 1.0)'
           AND (?2 IS NULL OR d.connector = ?2) AND (?3 IS NULL OR d.kind = ?3)
           AND (?5 IS NULL OR d.connector IN (SELECT value FROM json_each(?5)))
           AND {}
         ORDER BY documents_fts.rank LIMIT ?4",
        readers_sql("?6")
    ))?;
    // The tenant and ACL filters run in SQL, before LIMIT, so a limit of N still returns up to
    // N permitted hits.
    let json = |l: Option<&[String]>| l.map(|l| serde_json::to_string(l).unwrap_or_default());
    let rows = stmt.query_map(
        params![
            fts,
            q.connector,
            q.kind,
            q.limit.clamp(1, 1000) as i64,
            json(q.connectors),
            q.readers.map(Readers::to_json)
        ],
        |r| {
            let acl: String = r.get(8)?;
            Ok(Hit {
                connector: r.get(0)?,
                kind: r.get(1)?,
                id: r.get(2)?,
                title: r.get(3)?,
                url: r.get(4)?,
                updated_at: r.get(5)?,
                snippet: r.get(6)?,
                score: Some(r.get(7)?),
                source: "local",
                acl: parse_acl(&acl),
            })
        },
    )?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, title: &str, body: &str) -> Document {
        Document {
            id: id.into(),
            kind: "page".into(),
            title: title.into(),
            body: body.into(),
            url: None,
            updated_at: "2026-01-01T00:00:00Z".into(),
            metadata: serde_json::json!({}).into(),
            acl: vec![],
        }
    }

    #[test]
    fn an_unchanged_record_is_not_rewritten_but_a_content_or_permission_change_is() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        let page = |c: &mut Connection, d: Document, now: &str| {
            let tx = c.transaction().unwrap();
            apply_stream_page(&tx, "c", Some("pages"), Some("inv"), &[d], &[], now).unwrap();
            tx.commit().unwrap();
        };
        let state = |c: &Connection| -> (String, i64) {
            let synced = c
                .query_row("SELECT synced_at FROM documents WHERE id = '1'", [], |r| {
                    r.get(0)
                })
                .unwrap();
            let changes = c
                .query_row("SELECT COUNT(*) FROM changes", [], |r| r.get(0))
                .unwrap();
            (synced, changes)
        };
        page(&mut c, doc("1", "Alpha", "body"), "t1");
        assert_eq!(state(&c), ("t1".into(), 1));
        page(&mut c, doc("1", "Alpha", "body"), "t2");
        assert_eq!(
            state(&c),
            ("t1".into(), 1),
            "same content: no write, no change"
        );
        page(&mut c, doc("1", "Alpha", "new body"), "t3");
        assert_eq!(state(&c), ("t3".into(), 2), "new content is a change");
        let mut restricted = doc("1", "Alpha", "new body");
        restricted.acl = vec!["group:finance".into()];
        page(&mut c, restricted, "t4");
        assert_eq!(
            state(&c),
            ("t4".into(), 3),
            "a permission change is a change"
        );
    }

    #[test]
    fn index_follows_upserts_updates_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        let tx = c.transaction().unwrap();
        apply_page(
            &tx,
            "c",
            &[
                doc("1", "Alpha", "the quick brown fox"),
                doc("2", "Beta", "lazy dog"),
            ],
            &[],
            "t",
        )
        .unwrap();
        tx.commit().unwrap();
        let q = |c: &Connection, text: &str| {
            search(
                c,
                &Query {
                    text,
                    limit: 10,
                    ..Default::default()
                },
            )
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect::<Vec<_>>()
        };
        assert_eq!(q(&c, "brown fox"), vec!["1"]);
        let tx = c.transaction().unwrap();
        apply_page(&tx, "c", &[doc("1", "Alpha", "now about cats")], &[], "t").unwrap();
        tx.commit().unwrap();
        assert!(
            q(&c, "fox").is_empty(),
            "old text must leave the index on update"
        );
        assert_eq!(q(&c, "cats"), vec!["1"]);
        let tx = c.transaction().unwrap();
        apply_page(
            &tx,
            "c",
            &[],
            &[DocumentRef {
                kind: "page".into(),
                id: "2".into(),
            }],
            "t",
        )
        .unwrap();
        tx.commit().unwrap();
        assert!(q(&c, "dog").is_empty());
        assert!(get(&c, "c", "page", "2").unwrap().is_none());
    }

    #[test]
    fn an_unparseable_stored_acl_lets_nobody_read_the_document() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        let tx = c.transaction().unwrap();
        apply_page(
            &tx,
            "c",
            &[
                doc("bad", "Runbook", "runbook"),
                doc("ok", "Runbook", "runbook"),
            ],
            &[],
            "t",
        )
        .unwrap();
        tx.commit().unwrap();
        // A row damaged outside Airlock (or by an older writer): not JSON, or not a list.
        c.execute("UPDATE documents SET acl = 'bob' WHERE id = 'bad'", [])
            .unwrap();
        let alice = Readers::names(&["alice"], &["c"]);
        let hits = search(
            &c,
            &Query {
                text: "runbook",
                limit: 10,
                readers: Some(&alice),
                ..Default::default()
            },
        )
        .unwrap();
        let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, vec!["ok"], "the damaged ACL is not read as empty");
        let d = get(&c, "c", "page", "bad").unwrap().expect("stored");
        assert!(!alice.allows("c", &d.acl));
        for text in ["bob", "{\"a\": 1}", "[1, 2]", ""] {
            assert!(!alice.allows("c", &parse_acl(text)), "{text}");
        }
        assert!(alice.allows("c", &parse_acl("[]")));
        // The operator's own (unfiltered) search still finds it.
        let all = search(
            &c,
            &Query {
                text: "runbook",
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn acl_and_connector_filters_apply_before_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        let mut docs = Vec::new();
        // Ten best-ranked documents only `bob` may read, then two for the `ops` group and one
        // open to all.
        for i in 0..10 {
            let mut d = doc(&format!("bob{i}"), "Runbook runbook", "runbook");
            d.acl = vec!["bob".into()];
            docs.push(d);
        }
        for i in 0..2 {
            let mut d = doc(&format!("ops{i}"), "Other", "runbook");
            d.acl = vec!["ops".into(), "carol".into()];
            docs.push(d);
        }
        docs.push(doc("open", "Other", "runbook"));
        let tx = c.transaction().unwrap();
        apply_page(&tx, "c", &docs, &[], "t").unwrap();
        apply_page(&tx, "other", &[doc("x", "Runbook", "runbook")], &[], "t").unwrap();
        tx.commit().unwrap();
        let ids = |names: &[&str], connectors: &[String]| {
            let readers = Readers::names(names, &["c", "other"]);
            let mut v: Vec<String> = search(
                &c,
                &Query {
                    text: "runbook",
                    limit: 3,
                    readers: Some(&readers),
                    connectors: Some(connectors),
                    ..Default::default()
                },
            )
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect();
            v.sort();
            v
        };
        let only_c = ["c".to_string()];
        assert_eq!(
            ids(&["alice", "ops"], &only_c),
            vec!["open", "ops0", "ops1"]
        );
        assert_eq!(ids(&["alice"], &only_c), vec!["open"]);
        assert_eq!(ids(&["bob"], &only_c).len(), 3);
        assert_eq!(ids(&["alice"], &["other".into()]), vec!["x"]);
        let anyone = Readers::names(&["anyone"], &["c"]);
        assert!(anyone.allows("c", &[]));
        assert!(!Readers::names(&["alice"], &["c"]).allows("c", &["bob".into()]));
    }

    #[test]
    fn records_without_acl_are_hidden_unless_their_connector_is_tenant_wide() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        let tx = c.transaction().unwrap();
        let mut own = doc("own", "Runbook", "runbook");
        own.acl = vec!["user:acc-1".into(), "group:ops".into()];
        apply_page(
            &tx,
            "wiki",
            &[doc("bare", "Runbook", "runbook"), own],
            &[],
            "t",
        )
        .unwrap();
        apply_page(&tx, "desk", &[doc("open", "Runbook", "runbook")], &[], "t").unwrap();
        let mut elsewhere = doc("elsewhere", "Runbook", "runbook");
        elsewhere.acl = vec!["user:acc-1".into()];
        apply_page(&tx, "other", &[elsewhere], &[], "t").unwrap();
        tx.commit().unwrap();
        let ids = |r: &Readers| {
            let q = Query {
                text: "runbook",
                limit: 10,
                readers: Some(r),
                ..Default::default()
            };
            let mut v: Vec<String> = search(&c, &q).unwrap().into_iter().map(|h| h.id).collect();
            v.sort();
            v
        };
        // `desk` is tenant-wide, `wiki` per-record: its record without an ACL is nobody's.
        let mut ada = Readers::names(&["ada"], &["desk"]);
        assert_eq!(ids(&ada), vec!["open"]);
        // An upstream user id counts only for the connector it was resolved for.
        ada.by_connector
            .insert("wiki".into(), vec!["user:acc-1".into()]);
        assert_eq!(ids(&ada), vec!["open", "own"]);
        assert!(ada.allows("wiki", &["user:acc-1".into()]));
        assert!(!ada.allows("other", &["user:acc-1".into()]));
        assert!(!ada.allows("wiki", &[]));
        // Groups count everywhere.
        let ops = Readers::names(&["bob", "group:ops"], &[]);
        assert_eq!(ids(&ops), vec!["own"]);
    }

    #[test]
    fn hostile_query_text_is_quoted_not_interpreted() {
        assert_eq!(
            fts_query("a\" OR b*", false).as_deref(),
            Some("\"a\" \"or\" \"b\"")
        );
        assert_eq!(
            fts_query("a\" OR b*", true).as_deref(),
            Some("\"a\" OR \"or\" OR \"b\"")
        );
        assert_eq!(fts_query("  ... ", false), None);
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open(dir.path()).unwrap();
        let r = search(
            &c,
            &Query {
                text: "NEAR( \"x",
                limit: 5,
                ..Default::default()
            },
        );
        assert!(r.is_ok());
    }

    #[test]
    fn snippets_highlight_terms_and_titles_rank_higher() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        let tx = c.transaction().unwrap();
        apply_page(
            &tx,
            "c",
            &[
                doc("body", "Other", "mentions runbook once"),
                doc("title", "Runbook", "text"),
            ],
            &[],
            "t",
        )
        .unwrap();
        tx.commit().unwrap();
        let hits = search(
            &c,
            &Query {
                text: "runbook",
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(hits[0].id, "title");
        assert!(hits[1].snippet.contains("[runbook]"), "{}", hits[1].snippet);
    }
}
