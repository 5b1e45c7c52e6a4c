//! The audit log: one row per invocation and per outbound decision, each holding the hash of the
//! previous row, so `verify` finds an edited, inserted or deleted row. Rows are written by one
//! background thread in batched transactions; the chain head is read inside each write
//! transaction, so several processes (daemon and CLI) can append to the same log safely.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::{Connection, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::scrub::Scrubber;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit row, before it is chained.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditEvent {
    pub connector: String,
    pub invocation: String,
    /// `invoke`, `http`, `header`, `secret`, `oauth-token`.
    pub event: String,
    /// `allow`, `deny`, `ok`, `error`, `rate-limited`, `circuit-open`.
    pub decision: String,
    pub reason: String,
    pub method: Option<String>,
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// Path only: the query is dropped so that no parameter value is logged.
    pub path: Option<String>,
    pub status: Option<u16>,
    pub latency_ms: Option<f64>,
    pub bytes: Option<u64>,
    /// Who asked for the work the row records: `token:NAME` (API or MCP), `cli:USER`,
    /// `daemon:scheduler`. None on rows written before the column existed, and for work nobody
    /// named. Filled from the task's call context when the recorder leaves it empty.
    pub principal: Option<String>,
}

/// A stored row.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub seq: i64,
    pub ts: String,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

enum Msg {
    Event(String, Box<AuditEvent>),
    Flush(mpsc::Sender<()>),
}

/// Handle for appending rows; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    scrubber: Scrubber,
}

/// Owns the writer thread; dropping it flushes and stops the thread.
pub struct AuditWriter {
    log: AuditLog,
    thread: Option<JoinHandle<()>>,
}

impl AuditWriter {
    pub fn start(data_dir: &Path, scrubber: Scrubber) -> anyhow::Result<AuditWriter> {
        let conn = super::open(data_dir)?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("airlock-audit".into())
            .spawn(move || writer_loop(conn, rx))?;
        Ok(AuditWriter {
            log: AuditLog { tx, scrubber },
            thread: Some(thread),
        })
    }

    pub fn log(&self) -> AuditLog {
        self.log.clone()
    }
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        self.log.flush();
        // The thread ends when every sender is gone; other clones may outlive us, so do not join
        // unconditionally (that could hang); the flush above already made our rows durable.
        if let Some(t) = self.thread.take()
            && t.is_finished()
        {
            let _ = t.join();
        }
    }
}

impl AuditLog {
    /// Queues a row. Text fields are scrubbed of secret values first.
    pub fn record(&self, mut e: AuditEvent) {
        if e.principal.is_none() {
            e.principal = crate::runtime::context::current_principal();
        }
        let s = &self.scrubber;
        s.scrub_in_place(&mut e.reason);
        for field in [&mut e.path, &mut e.host].into_iter().flatten() {
            s.scrub_in_place(field);
        }
        let _ = self.tx.send(Msg::Event(super::now_rfc3339(), Box::new(e)));
    }

    /// Blocks until every row queued so far is committed.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

/// How long the writer lets rows accumulate after the first one arrives. Senders never block;
/// while the writer naps, a send does not have to wake a parked thread, which on a busy gate
/// saves a futex wake and a context switch per row.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Msg>) {
    while let Ok(first) = rx.recv() {
        if !matches!(first, Msg::Flush(_)) {
            std::thread::sleep(BATCH_WINDOW);
        }
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        let mut push = |m: Msg, batch: &mut Vec<(String, Box<AuditEvent>)>| match m {
            Msg::Event(ts, e) => batch.push((ts, e)),
            Msg::Flush(done) => flushes.push(done),
        };
        push(first, &mut batch);
        while batch.len() < 5000 {
            match rx.try_recv() {
                Ok(m) => push(m, &mut batch),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            // Retry a busy database a few times; audit rows must not be dropped silently.
            let mut attempt = 0;
            loop {
                match append(&mut conn, &batch) {
                    Ok(()) => break,
                    Err(e) if attempt < 5 => {
                        attempt += 1;
                        tracing::warn!("audit write failed (attempt {attempt}): {e}");
                        std::thread::sleep(std::time::Duration::from_millis(50 * attempt));
                    }
                    Err(e) => {
                        tracing::error!("audit rows lost after retries: {e}");
                        break;
                    }
                }
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}

fn append(conn: &mut Connection, batch: &[(String, Box<AuditEvent>)]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (mut seq, mut prev): (i64, String) = tx
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap_or((0, GENESIS.to_string()));
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO audit (seq, ts, connector, invocation, event, decision, reason, method,
               scheme, host, port, path, status, latency_ms, bytes, prev_hash, hash, principal)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
               ?18)",
        )?;
        for (ts, e) in batch {
            seq += 1;
            let hash = row_hash(seq, ts, e, &prev);
            stmt.execute(params![
                seq,
                ts,
                e.connector,
                e.invocation,
                e.event,
                e.decision,
                e.reason,
                e.method,
                e.scheme,
                e.host,
                e.port,
                e.path,
                e.status,
                e.latency_ms,
                e.bytes.map(|b| b as i64),
                prev,
                hash,
                e.principal
            ])?;
            prev = hash;
        }
    }
    tx.execute(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET seq = ?1, hash = ?2",
        params![seq, prev],
    )?;
    tx.commit()
}

/// The hash covers every column and the previous row's hash. The principal joins the hashed
/// columns only when set, so rows written before it existed still verify unchanged.
fn row_hash(seq: i64, ts: &str, e: &AuditEvent, prev: &str) -> String {
    let mut canonical = serde_json::json!([
        seq,
        ts,
        e.connector,
        e.invocation,
        e.event,
        e.decision,
        e.reason,
        e.method,
        e.scheme,
        e.host,
        e.port,
        e.path,
        e.status,
        e.latency_ms,
        e.bytes,
        prev
    ]);
    if let (Some(p), Some(items)) = (&e.principal, canonical.as_array_mut()) {
        items.push(p.as_str().into());
    }
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        seq: r.get(0)?,
        ts: r.get(1)?,
        event: AuditEvent {
            connector: r.get(2)?,
            invocation: r.get(3)?,
            event: r.get(4)?,
            decision: r.get(5)?,
            reason: r.get(6)?,
            method: r.get(7)?,
            scheme: r.get(8)?,
            host: r.get(9)?,
            port: r.get(10)?,
            path: r.get(11)?,
            status: r.get(12)?,
            latency_ms: r.get(13)?,
            bytes: r.get::<_, Option<i64>>(14)?.map(|b| b as u64),
            principal: r.get(17)?,
        },
        prev_hash: r.get(15)?,
        hash: r.get(16)?,
    })
}

const COLUMNS: &str =
    "seq, ts, connector, invocation, event, decision, reason, method, scheme, host,
    port, path, status, latency_ms, bytes, prev_hash, hash, principal";

/// The last `n` rows, oldest first, optionally for one connector.
pub fn tail(conn: &Connection, n: usize, connector: Option<&str>) -> anyhow::Result<Vec<AuditRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM audit WHERE (?1 IS NULL OR connector = ?1) ORDER BY seq DESC LIMIT ?2"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows: Vec<AuditRow> = stmt
        .query_map(params![connector, n as i64], read_row)?
        .collect::<Result<_, _>>()?;
    rows.reverse();
    Ok(rows)
}

/// Filters of [`query`]. Times are RFC 3339 UTC with milliseconds, as the rows store them.
#[derive(Debug, Default)]
pub struct AuditQuery<'a> {
    /// Only rows of these connectors and routes (None: every row).
    pub within: Option<&'a [String]>,
    pub connector: Option<&'a str>,
    /// Rows at or after this time.
    pub since: Option<&'a str>,
    /// Rows before this time.
    pub until: Option<&'a str>,
    pub decision: Option<&'a str>,
    /// Only rows of this principal (`token:alice`, `cli:root`, ...).
    pub principal: Option<&'a str>,
    pub limit: usize,
}

/// The latest `limit` rows matching the filters, oldest first.
pub fn query(conn: &Connection, q: &AuditQuery<'_>) -> anyhow::Result<Vec<AuditRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM audit
         WHERE (?1 IS NULL OR connector IN (SELECT value FROM json_each(?1)))
           AND (?2 IS NULL OR connector = ?2) AND (?3 IS NULL OR ts >= ?3)
           AND (?4 IS NULL OR ts < ?4) AND (?5 IS NULL OR decision = ?5)
           AND (?7 IS NULL OR principal = ?7)
         ORDER BY seq DESC LIMIT ?6"
    );
    let within = q.within.map(serde_json::to_string).transpose()?;
    let mut stmt = conn.prepare(&sql)?;
    let mut rows: Vec<AuditRow> = stmt
        .query_map(
            params![
                within,
                q.connector,
                q.since,
                q.until,
                q.decision,
                q.limit as i64,
                q.principal
            ],
            read_row,
        )?
        .collect::<Result<_, _>>()?;
    rows.reverse();
    Ok(rows)
}

/// Every row after sequence number `seq`, oldest first, optionally for one connector.
pub fn after(
    conn: &Connection,
    seq: i64,
    connector: Option<&str>,
) -> anyhow::Result<Vec<AuditRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM audit WHERE seq > ?1 AND (?2 IS NULL OR connector = ?2) ORDER BY seq"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(params![seq, connector], read_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The sequence number of the newest row (0 for an empty log).
pub fn last_seq(conn: &Connection) -> anyhow::Result<i64> {
    Ok(conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM audit", [], |r| r.get(0))?)
}

/// Result of checking the chain.
#[derive(Debug)]
pub struct Verification {
    pub rows: u64,
    /// Empty when the log is intact.
    pub problems: Vec<String>,
}

/// Walks the whole chain and reports every break.
pub fn verify(conn: &Connection) -> anyhow::Result<Verification> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    let mut expected_seq = 1i64;
    let mut prev = GENESIS.to_string();
    let mut problems = Vec::new();
    let mut count = 0u64;
    while let Some(r) = rows.next()? {
        let row = read_row(r)?;
        count += 1;
        if row.seq != expected_seq {
            if row.seq > expected_seq {
                problems.push(format!(
                    "rows {}..={} are missing (deleted)",
                    expected_seq,
                    row.seq - 1
                ));
            } else {
                problems.push(format!("row {} is out of sequence (inserted)", row.seq));
            }
        }
        if row.prev_hash != prev {
            problems.push(format!(
                "row {}: previous-hash does not match the row before it (a row was inserted, deleted or edited)",
                row.seq
            ));
        }
        let h = row_hash(row.seq, &row.ts, &row.event, &row.prev_hash);
        if h != row.hash {
            problems.push(format!(
                "row {}: contents do not match its hash (edited)",
                row.seq
            ));
        }
        prev = row.hash.clone();
        expected_seq = row.seq + 1;
    }
    let head: Option<(i64, String)> = conn
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .ok();
    match head {
        Some((seq, hash)) if seq != expected_seq - 1 || hash != prev => {
            problems.push(format!(
                "the chain head records row {seq} but the log ends at row {} (rows deleted at the end, or the head was edited)",
                expected_seq - 1
            ));
        }
        Some(_) => {}
        None if count > 0 => problems.push("the chain head is missing".into()),
        None => {}
    }
    Ok(Verification {
        rows: count,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: usize) -> AuditEvent {
        AuditEvent {
            connector: "c".into(),
            invocation: format!("inv{i}"),
            event: "http".into(),
            decision: "allow".into(),
            method: Some("GET".into()),
            host: Some("h".into()),
            path: Some("/p".into()),
            status: Some(200),
            ..Default::default()
        }
    }

    fn logged(n: usize) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let w = AuditWriter::start(dir.path(), Scrubber::new()).unwrap();
        for i in 0..n {
            w.log().record(ev(i));
        }
        w.log().flush();
        let conn = crate::store::open(dir.path()).unwrap();
        (dir, conn)
    }

    #[test]
    fn untouched_log_verifies() {
        let (_d, c) = logged(20);
        let v = verify(&c).unwrap();
        assert_eq!(v.rows, 20);
        assert!(v.problems.is_empty(), "{:?}", v.problems);
    }

    #[test]
    fn edited_row_is_reported() {
        let (_d, c) = logged(5);
        c.execute("UPDATE audit SET decision = 'deny' WHERE seq = 3", [])
            .unwrap();
        let v = verify(&c).unwrap();
        assert!(
            v.problems
                .iter()
                .any(|p| p.contains("row 3") && p.contains("edited")),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn deleted_middle_and_tail_rows_are_reported() {
        let (_d, c) = logged(6);
        c.execute("DELETE FROM audit WHERE seq = 2", []).unwrap();
        let v = verify(&c).unwrap();
        assert!(
            v.problems.iter().any(|p| p.contains("missing")),
            "{:?}",
            v.problems
        );
        let (_d2, c2) = logged(6);
        c2.execute("DELETE FROM audit WHERE seq = 6", []).unwrap();
        let v = verify(&c2).unwrap();
        assert!(
            v.problems.iter().any(|p| p.contains("chain head")),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn inserted_row_is_reported() {
        let (_d, c) = logged(3);
        c.execute("UPDATE audit SET seq = seq + 1 WHERE seq = 3", [])
            .unwrap();
        c.execute(
            "INSERT INTO audit SELECT 3, ts, connector, invocation, event, decision, 'forged', method, scheme, host, port, path, status, latency_ms, bytes, prev_hash, hash, principal FROM audit WHERE seq = 2",
            [],
        )
        .unwrap();
        let v = verify(&c).unwrap();
        assert!(!v.problems.is_empty());
    }

    #[test]
    fn the_principal_is_stored_hashed_and_filterable() {
        let dir = tempfile::tempdir().unwrap();
        let w = AuditWriter::start(dir.path(), Scrubber::new()).unwrap();
        let mut e = ev(0);
        e.principal = Some("token:alice".into());
        w.log().record(e);
        w.log().record(ev(1));
        w.log().flush();
        let c = crate::store::open(dir.path()).unwrap();
        let rows = query(
            &c,
            &AuditQuery {
                principal: Some("token:alice"),
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].event.principal.as_deref(), Some("token:alice"));
        assert!(verify(&c).unwrap().problems.is_empty());
        // Rewriting who asked breaks the chain like any other edit.
        c.execute(
            "UPDATE audit SET principal = 'token:mallory' WHERE seq = 1",
            [],
        )
        .unwrap();
        assert!(!verify(&c).unwrap().problems.is_empty());
    }

    #[test]
    fn rows_without_a_principal_hash_as_before_the_column_existed() {
        // The canonical form of the first four migrations' rows: no principal in it.
        let e = ev(7);
        let old = serde_json::json!([
            1,
            "t",
            e.connector,
            e.invocation,
            e.event,
            e.decision,
            e.reason,
            e.method,
            e.scheme,
            e.host,
            e.port,
            e.path,
            e.status,
            e.latency_ms,
            e.bytes,
            GENESIS
        ]);
        let old = hex::encode(Sha256::digest(old.to_string().as_bytes()));
        assert_eq!(row_hash(1, "t", &e, GENESIS), old);
    }

    #[test]
    fn secrets_are_scrubbed_from_rows() {
        let dir = tempfile::tempdir().unwrap();
        let s = Scrubber::new();
        s.add("canary-zz-9876");
        let w = AuditWriter::start(dir.path(), s).unwrap();
        let mut e = ev(0);
        e.reason = "upstream said canary-zz-9876".into();
        w.log().record(e);
        w.log().flush();
        let c = crate::store::open(dir.path()).unwrap();
        let rows = tail(&c, 10, None).unwrap();
        assert_eq!(rows[0].event.reason, "upstream said [REDACTED]");
    }
}
