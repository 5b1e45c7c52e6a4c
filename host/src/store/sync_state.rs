//! Per-(connector, stream) sync state: the committed cursor, last success and error, when a
//! rate-limited stream may resume, and how many records it has applied.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SyncState {
    pub connector: String,
    pub stream: String,
    pub cursor: Option<String>,
    pub cursor_updated_at: Option<String>,
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Set after a `rate-limited` answer: the scheduler waits until then.
    pub resume_after: Option<String>,
    /// Documents of this stream in the store now.
    pub records: i64,
    /// Upserts and deletes the latest run applied (counted from its first committed page).
    pub last_run_upserts: i64,
    pub last_run_deletes: i64,
}

const COLUMNS: &str = "connector, stream, cursor, cursor_updated_at, last_success_at, last_error,
    last_error_at, resume_after,
    (SELECT COUNT(*) FROM documents d WHERE d.connector = sync_state.connector
       AND d.stream = sync_state.stream),
    last_run_upserts, last_run_deletes";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SyncState> {
    Ok(SyncState {
        connector: r.get(0)?,
        stream: r.get(1)?,
        cursor: r.get(2)?,
        cursor_updated_at: r.get(3)?,
        last_success_at: r.get(4)?,
        last_error: r.get(5)?,
        last_error_at: r.get(6)?,
        resume_after: r.get(7)?,
        records: r.get(8)?,
        last_run_upserts: r.get(9)?,
        last_run_deletes: r.get(10)?,
    })
}

pub fn get(
    conn: &Connection,
    connector: &str,
    stream: &str,
) -> rusqlite::Result<Option<SyncState>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM sync_state WHERE connector = ?1 AND stream = ?2"),
        params![connector, stream],
        row,
    )
    .optional()
}

pub fn all(conn: &Connection) -> rusqlite::Result<Vec<SyncState>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM sync_state ORDER BY connector, stream"
    ))?;
    let rows = stmt.query_map([], row)?;
    rows.collect()
}

fn ensure(conn: &Connection, connector: &str, stream: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO sync_state (connector, stream) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![connector, stream],
    )?;
    Ok(())
}

/// What one committed page applied; `first` marks the first page of a run, which restarts the
/// run's counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageCounts {
    pub upserts: i64,
    pub deletes: i64,
    pub first: bool,
}

/// Records a page's cursor inside the same transaction as its documents.
/// `invocation` is the sync call whose page brought the cursor (`audit verify` checks its rows).
pub fn commit_cursor(
    tx: &Transaction<'_>,
    connector: &str,
    stream: &str,
    cursor: Option<&str>,
    invocation: Option<&str>,
    counts: PageCounts,
    now: &str,
) -> rusqlite::Result<()> {
    ensure(tx, connector, stream)?;
    tx.execute(
        "UPDATE sync_state SET cursor = ?3, cursor_updated_at = ?4,
           last_run_upserts = CASE WHEN ?7 THEN ?5 ELSE last_run_upserts + ?5 END,
           last_run_deletes = CASE WHEN ?7 THEN ?6 ELSE last_run_deletes + ?6 END,
           cursor_invocation = ?8
         WHERE connector = ?1 AND stream = ?2",
        params![
            connector,
            stream,
            cursor,
            now,
            counts.upserts,
            counts.deletes,
            counts.first,
            invocation
        ],
    )?;
    Ok(())
}

pub fn record_success(
    conn: &Connection,
    connector: &str,
    stream: &str,
    now: &str,
) -> rusqlite::Result<()> {
    ensure(conn, connector, stream)?;
    conn.execute(
        "UPDATE sync_state SET last_success_at = ?3, last_error = NULL, last_error_at = NULL,
           resume_after = NULL WHERE connector = ?1 AND stream = ?2",
        params![connector, stream, now],
    )?;
    Ok(())
}

pub fn record_error(
    conn: &Connection,
    connector: &str,
    stream: &str,
    error: &str,
    now: &str,
) -> rusqlite::Result<()> {
    ensure(conn, connector, stream)?;
    conn.execute(
        "UPDATE sync_state SET last_error = ?3, last_error_at = ?4 WHERE connector = ?1 AND stream = ?2",
        params![connector, stream, error, now],
    )?;
    Ok(())
}

/// A rate-limited run is not a failure: only the resume time is recorded.
pub fn record_rate_limited(
    conn: &Connection,
    connector: &str,
    stream: &str,
    resume_after: &str,
) -> rusqlite::Result<()> {
    ensure(conn, connector, stream)?;
    conn.execute(
        "UPDATE sync_state SET resume_after = ?3 WHERE connector = ?1 AND stream = ?2",
        params![connector, stream, resume_after],
    )?;
    Ok(())
}

/// Forgets the cursor so the next run starts from the beginning (`--full`).
pub fn reset_cursor(conn: &Connection, connector: &str, stream: &str) -> rusqlite::Result<()> {
    ensure(conn, connector, stream)?;
    conn.execute(
        "UPDATE sync_state SET cursor = NULL, cursor_updated_at = NULL WHERE connector = ?1 AND stream = ?2",
        params![connector, stream],
    )?;
    Ok(())
}
