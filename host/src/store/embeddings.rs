//! Chunk vectors for semantic search (SQLite side, and the parts both backends share).
//!
//! `chunked_documents` remembers, per document, the content hash and embedding model its chunks
//! were made from: a document whose row still has that hash is up to date and is never looked
//! at again (a re-sync of an unchanged corpus embeds nothing). `chunks` holds each chunk's text,
//! the hash of that text and its vector; a chunk whose (model, text hash) is already stored
//! anywhere reuses that vector, so a changed document re-embeds only its changed chunks.
//! Deleting a document deletes its chunks (a trigger here, a cascade on PostgreSQL).

use rusqlite::{Connection, OptionalExtension, params};

use super::documents::{Hit, Readers, parse_acl, readers_sql};

/// A stored document whose chunks are missing or stale.
#[derive(Debug, Clone)]
pub struct Pending {
    pub kind: String,
    pub id: String,
    pub title: String,
    pub body: String,
    /// The document's content hash the chunks will be recorded against.
    pub doc_hash: String,
    /// The document's ACL (the approximate index keeps a copy to choose its candidates).
    pub acl: Vec<String>,
}

/// One chunk to store: its place in the document, text, text hash and vector.
#[derive(Debug, Clone)]
pub struct ChunkRow {
    pub seq: u32,
    pub text: String,
    pub text_hash: String,
    pub vector: Vec<f32>,
}

/// A vector query over the chunks of the documents a reader may open.
#[derive(Debug, Clone, Default)]
pub struct VectorQuery {
    pub model: String,
    pub vector: Vec<f32>,
    pub connector: Option<String>,
    pub kind: Option<String>,
    pub limit: usize,
    pub connectors: Option<Vec<String>>,
    pub readers: Option<Readers>,
}

/// Vectors are stored as little-endian f32 bytes (both backends).
pub fn encode(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The vector of stored bytes; None when they are not a whole number of f32s.
pub fn decode(b: &[u8]) -> Option<Vec<f32>> {
    if !b.len().is_multiple_of(4) {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Cosine similarity; 0 for vectors of different sizes or of zero length.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

/// Keeps, per document, its best chunk's similarity, and returns the `limit` best documents
/// (ties by connector, kind, id, so answers are stable). `rows`: a hit (without score) and its
/// chunk's similarity to the query.
pub fn best_documents(rows: impl IntoIterator<Item = (Hit, f32)>, limit: usize) -> Vec<Hit> {
    let mut best: std::collections::HashMap<(String, String, String), Hit> = Default::default();
    for (mut hit, sim) in rows {
        let key = (hit.connector.clone(), hit.kind.clone(), hit.id.clone());
        match best.get(&key) {
            Some(h) if h.score.unwrap_or(f64::MIN) >= f64::from(sim) => {}
            _ => {
                hit.score = Some(f64::from(sim));
                best.insert(key, hit);
            }
        }
    }
    let mut hits: Vec<Hit> = best.into_values().collect();
    hits.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| (&a.connector, &a.kind, &a.id).cmp(&(&b.connector, &b.kind, &b.id)))
    });
    hits.truncate(limit.clamp(1, 1000));
    hits
}

/// A chunk's text as a hit snippet: whitespace folded, at most ~200 bytes.
pub fn snippet(text: &str) -> String {
    let mut s: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Documents of `connector` whose chunks are missing, stale, or of another model (at most
/// `limit`, in a stable order).
pub fn pending(
    conn: &Connection,
    connector: &str,
    model: &str,
    limit: usize,
) -> rusqlite::Result<Vec<Pending>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.kind, d.id, d.title, d.body, COALESCE(d.content_hash, ''), d.acl FROM documents d
         LEFT JOIN chunked_documents c ON c.connector = d.connector AND c.kind = d.kind AND c.id = d.id
         WHERE d.connector = ?1
           AND (c.id IS NULL OR c.model <> ?2 OR c.doc_hash <> COALESCE(d.content_hash, ''))
         ORDER BY d.kind, d.id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![connector, model, limit as i64], |r| {
        Ok(Pending {
            kind: r.get(0)?,
            id: r.get(1)?,
            title: r.get(2)?,
            body: r.get(3)?,
            doc_hash: r.get(4)?,
            acl: parse_acl(&r.get::<_, String>(5)?),
        })
    })?;
    rows.collect()
}

/// The stored vector of a chunk text already embedded with `model`, if any.
pub fn known_vector(
    conn: &Connection,
    model: &str,
    text_hash: &str,
) -> rusqlite::Result<Option<Vec<f32>>> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT vector FROM chunks WHERE model = ?1 AND text_hash = ?2 LIMIT 1")?
        .query_row(params![model, text_hash], |r| r.get(0))
        .optional()?;
    Ok(bytes.and_then(|b| decode(&b)))
}

/// Replaces a document's chunks and records the hash they were made from, in one transaction;
/// nothing is written when the document is gone meanwhile (no orphan chunks).
pub fn replace(
    conn: &mut Connection,
    connector: &str,
    doc: &Pending,
    model: &str,
    chunks: &[ChunkRow],
) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let exists = tx
        .query_row(
            "SELECT 1 FROM documents WHERE connector = ?1 AND kind = ?2 AND id = ?3",
            params![connector, doc.kind, doc.id],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if exists {
        tx.execute(
            "DELETE FROM chunks WHERE connector = ?1 AND kind = ?2 AND id = ?3",
            params![connector, doc.kind, doc.id],
        )?;
        let mut ins = tx.prepare_cached(
            "INSERT INTO chunks (connector, kind, id, seq, model, text_hash, text, vector)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for c in chunks {
            ins.execute(params![
                connector,
                doc.kind,
                doc.id,
                c.seq,
                model,
                c.text_hash,
                c.text,
                encode(&c.vector)
            ])?;
        }
        drop(ins);
        tx.execute(
            "INSERT INTO chunked_documents (connector, kind, id, model, doc_hash)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (connector, kind, id) DO UPDATE SET
               model = excluded.model, doc_hash = excluded.doc_hash",
            params![connector, doc.kind, doc.id, model, doc.doc_hash],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// One stored chunk: the approximate index names its candidates by this key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ChunkKey {
    pub connector: String,
    pub kind: String,
    pub id: String,
    pub seq: u32,
}

/// The conditions every vector search applies (the model, the tenant's connectors, the kind and
/// the ACL, the same as keyword search's): one text for the exact scan and the candidate
/// lookup, so the approximate path can never be looser than the exact one.
fn filter_sql() -> String {
    format!(
        "c.model = ?1
           AND (?2 IS NULL OR d.connector = ?2) AND (?3 IS NULL OR d.kind = ?3)
           AND (?4 IS NULL OR d.connector IN (SELECT value FROM json_each(?4)))
           AND {}",
        readers_sql("?5")
    )
}

const COLUMNS: &str =
    "SELECT d.connector, d.kind, d.id, d.title, d.url, d.updated_at, c.text, c.vector, d.acl";

/// Runs a vector search statement whose parameters ?1..?5 are the query's filters (and ?6, when
/// given, the candidates), ranking each row by its stored vector.
fn ranked(
    conn: &Connection,
    sql: &str,
    q: &VectorQuery,
    candidates: Option<String>,
) -> rusqlite::Result<Vec<Hit>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let connectors = q
        .connectors
        .as_ref()
        .map(|l| serde_json::to_string(l).unwrap_or_default());
    let readers = q.readers.as_ref().map(Readers::to_json);
    let map = |r: &rusqlite::Row<'_>| {
        let text: String = r.get(6)?;
        let vector: Vec<u8> = r.get(7)?;
        let acl: String = r.get(8)?;
        let sim = decode(&vector).map_or(0.0, |v| cosine(&q.vector, &v));
        Ok((
            Hit {
                connector: r.get(0)?,
                kind: r.get(1)?,
                id: r.get(2)?,
                title: r.get(3)?,
                url: r.get(4)?,
                updated_at: r.get(5)?,
                snippet: snippet(&text),
                score: None,
                source: "local",
                acl: parse_acl(&acl),
            },
            sim,
        ))
    };
    let rows: Vec<(Hit, f32)> = match candidates {
        None => stmt
            .query_map(
                params![q.model, q.connector, q.kind, connectors, readers],
                map,
            )?
            .collect::<rusqlite::Result<_>>()?,
        Some(keys) => stmt
            .query_map(
                params![q.model, q.connector, q.kind, connectors, readers, keys],
                map,
            )?
            .collect::<rusqlite::Result<_>>()?,
    };
    Ok(best_documents(rows, q.limit))
}

/// Exact cosine search over the chunks of the documents the query's filters let through (the
/// same tenant and ACL conditions as keyword search, in SQL, before ranking).
pub fn search(conn: &Connection, q: &VectorQuery) -> rusqlite::Result<Vec<Hit>> {
    let sql = format!(
        "{COLUMNS}
         FROM chunks c JOIN documents d ON d.connector = c.connector AND d.kind = c.kind AND d.id = c.id
         WHERE {}",
        filter_sql()
    );
    ranked(conn, &sql, q, None)
}

/// The same search over the given chunks only (the approximate index's candidates): a chunk
/// deleted or outside the query's filters is not returned, and each is ranked by the vector
/// stored now (not the one the index remembers). CROSS JOIN keeps SQLite's planner on this
/// order (candidates, then each chunk by its key): left free, it scans every chunk of the model
/// through `chunks_by_text` and looks each up among the candidates.
pub fn search_among(
    conn: &Connection,
    q: &VectorQuery,
    candidates: &[ChunkKey],
) -> rusqlite::Result<Vec<Hit>> {
    let keys: Vec<(&str, &str, &str, u32)> = candidates
        .iter()
        .map(|k| (k.connector.as_str(), k.kind.as_str(), k.id.as_str(), k.seq))
        .collect();
    let keys = serde_json::to_string(&keys).unwrap_or_else(|_| "[]".into());
    let sql = format!(
        "{COLUMNS}
         FROM json_each(?6) k
         CROSS JOIN chunks c ON c.connector = k.value ->> 0 AND c.kind = k.value ->> 1
                            AND c.id = k.value ->> 2 AND c.seq = k.value ->> 3
         CROSS JOIN documents d ON d.connector = c.connector AND d.kind = c.kind AND d.id = c.id
         WHERE {}",
        filter_sql()
    );
    ranked(conn, &sql, q, Some(keys))
}

/// A stored chunk with its document's ACL, as the approximate index holds it.
#[derive(Debug, Clone)]
pub struct IndexedChunk {
    pub key: ChunkKey,
    pub vector: Vec<f32>,
    pub acl: Vec<String>,
}

/// A document's ACL as stored now (the index's copy follows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentAcl {
    pub kind: String,
    pub id: String,
    pub acl: Vec<String>,
}

/// Every chunk vector of `connector` made with `model` with its document's ACL, in key order
/// (to build the index).
pub fn vectors(
    conn: &Connection,
    connector: &str,
    model: &str,
) -> rusqlite::Result<Vec<IndexedChunk>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.kind, c.id, c.seq, c.vector, d.acl FROM chunks c
         JOIN documents d ON d.connector = c.connector AND d.kind = c.kind AND d.id = c.id
         WHERE c.connector = ?1 AND c.model = ?2
         ORDER BY c.kind, c.id, c.seq",
    )?;
    let rows = stmt.query_map(params![connector, model], |r| {
        let bytes: Vec<u8> = r.get(3)?;
        let acl: String = r.get(4)?;
        Ok((
            ChunkKey {
                connector: connector.to_string(),
                kind: r.get(0)?,
                id: r.get(1)?,
                seq: r.get(2)?,
            },
            decode(&bytes),
            acl,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        if let (key, Some(vector), acl) = row? {
            out.push(IndexedChunk {
                key,
                vector,
                acl: parse_acl(&acl),
            });
        }
    }
    Ok(out)
}

/// The ACL of every document of `connector` that has chunks.
pub fn acls(conn: &Connection, connector: &str) -> rusqlite::Result<Vec<DocumentAcl>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.kind, d.id, d.acl FROM chunked_documents c
         JOIN documents d ON d.connector = c.connector AND d.kind = c.kind AND d.id = c.id
         WHERE c.connector = ?1",
    )?;
    let rows = stmt.query_map(params![connector], |r| {
        Ok(DocumentAcl {
            kind: r.get(0)?,
            id: r.get(1)?,
            acl: parse_acl(&r.get::<_, String>(2)?),
        })
    })?;
    rows.collect()
}

/// A document's chunks made with `model` from its content as stored now (text and vector, in
/// order; none when they are missing or stale), with the document's ACL read in the same
/// statement, so a caller checks the ACL these texts were read under.
#[derive(Debug, Clone, Default)]
pub struct CurrentChunks {
    pub acl: Vec<String>,
    pub chunks: Vec<(String, Vec<f32>)>,
}

const CURRENT_CHUNKS: &str = "SELECT c.text, c.vector, d.acl FROM chunks c
     JOIN chunked_documents cd ON cd.connector = c.connector AND cd.kind = c.kind AND cd.id = c.id
     JOIN documents d ON d.connector = c.connector AND d.kind = c.kind AND d.id = c.id
     WHERE c.connector = ?1 AND c.kind = ?2 AND c.id = ?3 AND c.model = ?4 AND cd.model = ?4
       AND cd.doc_hash = COALESCE(d.content_hash, '')
     ORDER BY c.seq";

pub fn current_chunks(
    conn: &Connection,
    connector: &str,
    kind: &str,
    id: &str,
    model: &str,
) -> rusqlite::Result<CurrentChunks> {
    let mut stmt = conn.prepare_cached(CURRENT_CHUNKS)?;
    let rows = stmt.query_map(params![connector, kind, id, model], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = CurrentChunks::default();
    for row in rows {
        let (text, bytes, acl) = row?;
        out.acl = parse_acl(&acl);
        if let Some(v) = decode(&bytes) {
            out.chunks.push((text, v));
        }
    }
    Ok(out)
}

/// The connectors that have chunks of `model`.
pub fn vector_connectors(conn: &Connection, model: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT DISTINCT connector FROM chunks WHERE model = ?1")?;
    let rows = stmt.query_map(params![model], |r| r.get(0))?;
    rows.collect()
}

/// How many chunks are stored for a connector (status and tests).
pub fn count(conn: &Connection, connector: &str) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT COUNT(*) FROM chunks WHERE connector = ?1",
        params![connector],
        |r| r.get::<_, i64>(0).map(|n| n as u64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Document, DocumentRef};
    use crate::store::documents::apply_page;

    fn doc(id: &str, acl: &[&str]) -> Document {
        Document {
            id: id.into(),
            kind: "page".into(),
            title: format!("T{id}"),
            body: "b".into(),
            url: None,
            updated_at: "2026-01-01T00:00:00Z".into(),
            metadata: serde_json::json!({}).into(),
            acl: acl.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn chunk(seq: u32, v: Vec<f32>) -> ChunkRow {
        ChunkRow {
            seq,
            text: format!("chunk {seq}"),
            text_hash: format!("h{seq}"),
            vector: v,
        }
    }

    #[test]
    fn chunks_follow_their_documents_and_the_acl_filters_vector_search() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        let tx = c.transaction().unwrap();
        apply_page(
            &tx,
            "w",
            &[doc("1", &["alice"]), doc("2", &["bob"])],
            &[],
            "t",
        )
        .unwrap();
        tx.commit().unwrap();
        let p = pending(&c, "w", "m", 10).unwrap();
        assert_eq!(p.len(), 2);
        replace(&mut c, "w", &p[0], "m", &[chunk(0, vec![1.0, 0.0])]).unwrap();
        replace(&mut c, "w", &p[1], "m", &[chunk(0, vec![0.9, 0.1])]).unwrap();
        assert!(pending(&c, "w", "m", 10).unwrap().is_empty(), "up to date");
        assert_eq!(pending(&c, "w", "other-model", 10).unwrap().len(), 2);
        assert_eq!(
            known_vector(&c, "m", "h0").unwrap().map(|v| v.len()),
            Some(2)
        );
        let q = |names: &[&str]| {
            let readers = Readers::names(names, &[]);
            search(
                &c,
                &VectorQuery {
                    model: "m".into(),
                    vector: vec![1.0, 0.0],
                    limit: 10,
                    readers: Some(readers),
                    ..Default::default()
                },
            )
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect::<Vec<_>>()
        };
        assert_eq!(q(&["alice", "bob"]), vec!["1", "2"]);
        assert_eq!(q(&["bob"]), vec!["2"], "alice's document never reaches bob");
        let tx = c.transaction().unwrap();
        let gone = DocumentRef {
            kind: "page".into(),
            id: "1".into(),
        };
        apply_page(&tx, "w", &[], &[gone], "t").unwrap();
        tx.commit().unwrap();
        assert_eq!(
            count(&c, "w").unwrap(),
            1,
            "a deleted document's chunks go with it"
        );
        // Chunks of a document deleted while it was being embedded are not written.
        replace(&mut c, "w", &p[0], "m", &[chunk(0, vec![1.0, 0.0])]).unwrap();
        assert_eq!(count(&c, "w").unwrap(), 1);
    }

    #[test]
    fn vectors_round_trip_and_best_chunk_wins() {
        let v = vec![0.5f32, -1.25, 3.0];
        assert_eq!(decode(&encode(&v)), Some(v));
        assert_eq!(decode(&[1, 2, 3]), None);
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
    }

    /// Exact search cost (run by hand: `cargo test --release -p airlock --lib
    /// exact_vector_search_latency -- --ignored --nocapture`): 20,000 chunks of 256 dimensions,
    /// an ACL filter that lets a quarter of them through.
    #[test]
    #[ignore]
    fn exact_vector_search_latency() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::store::open(dir.path()).unwrap();
        let (docs, per_doc, dims) = (5_000usize, 4u32, 256usize);
        let mut seed = 7u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 2000) as f32 / 1000.0 - 1.0
        };
        let all: Vec<Document> = (0..docs)
            .map(|i| doc(&i.to_string(), &[["alice", "bob", "carol", "dave"][i % 4]]))
            .collect();
        let tx = c.transaction().unwrap();
        apply_page(&tx, "w", &all, &[], "t").unwrap();
        tx.commit().unwrap();
        for p in pending(&c, "w", "m", docs).unwrap() {
            let rows: Vec<ChunkRow> = (0..per_doc)
                .map(|s| ChunkRow {
                    seq: s,
                    text: format!("{} {s}", p.id),
                    text_hash: format!("{}-{s}", p.id),
                    vector: (0..dims).map(|_| rnd()).collect(),
                })
                .collect();
            replace(&mut c, "w", &p, "m", &rows).unwrap();
        }
        let mut times = Vec::new();
        for _ in 0..30 {
            let q = VectorQuery {
                model: "m".into(),
                vector: (0..dims).map(|_| rnd()).collect(),
                limit: 10,
                readers: Some(Readers::names(&["alice"], &[])),
                ..Default::default()
            };
            let t = std::time::Instant::now();
            let hits = search(&c, &q).unwrap();
            times.push(t.elapsed());
            assert_eq!(hits.len(), 10);
        }
        times.sort();
        println!(
            "exact search over {} chunks ({} permitted): p50 {:?}, max of 30 {:?}",
            docs * per_doc as usize,
            docs * per_doc as usize / 4,
            times[15],
            times[29]
        );
    }
}
