//! Sync job leases: before a daemon runs a (connector, stream), it takes the job's lease; a lease
//! names its owner (one daemon process) and carries a fencing number that grows with every
//! takeover. Each page commit renews the lease in its own transaction and fails when the fence
//! moved on, so a daemon whose lease expired and was taken over cannot commit a stale page. A
//! daemon that dies simply stops renewing: after the lease time another one takes the job and
//! resumes from the last committed cursor.
//!
//! This file is the SQLite side (daemons and the CLI sharing one data directory; the clock is the
//! machine's); `pg/leases.rs` is the PostgreSQL side (the database's clock).

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

/// A held lease: who holds the job and under which fencing number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub connector: String,
    pub stream: String,
    pub owner: String,
    pub fence: i64,
}

/// A job's lease as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseInfo {
    pub connector: String,
    pub stream: String,
    /// The daemon holding it; None when free.
    pub owner: Option<String>,
    pub fence: i64,
    /// Whether the holder's time has run out (another daemon may take the job).
    pub expired: bool,
}

/// A lease lost to another daemon: the page was not committed.
#[derive(Debug, thiserror::Error)]
#[error(
    "the lease on {connector}/{stream} was taken over by another daemon (fence {fence} is stale); the page was not committed"
)]
pub struct LeaseLost {
    pub connector: String,
    pub stream: String,
    pub fence: i64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Takes the job's lease for `ttl` when it is free or expired; None when another owner holds it.
pub fn acquire(
    conn: &mut Connection,
    connector: &str,
    stream: &str,
    owner: &str,
    ttl: std::time::Duration,
) -> rusqlite::Result<Option<Lease>> {
    let now = now_ms();
    let until = now + ttl.as_millis() as i64;
    let fence: Option<i64> = conn
        .query_row(
            "INSERT INTO sync_jobs (connector, stream, owner, fence, lease_until_ms)
             VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT (connector, stream) DO UPDATE
               SET owner = excluded.owner, fence = sync_jobs.fence + 1,
                   lease_until_ms = excluded.lease_until_ms
               WHERE sync_jobs.owner IS NULL OR sync_jobs.lease_until_ms < ?5
             RETURNING fence",
            params![connector, stream, owner, until, now],
            |r| r.get(0),
        )
        .optional()?;
    Ok(fence.map(|fence| Lease {
        connector: connector.into(),
        stream: stream.into(),
        owner: owner.into(),
        fence,
    }))
}

/// Extends a held lease by `ttl`; false when it was taken over (the fence moved on). A lease
/// that ran out but that nobody took is still this owner's: nobody else can have written.
pub fn renew(conn: &Connection, lease: &Lease, ttl: std::time::Duration) -> rusqlite::Result<bool> {
    let until = now_ms() + ttl.as_millis() as i64;
    let n = conn.execute(
        "UPDATE sync_jobs SET lease_until_ms = ?5
         WHERE connector = ?1 AND stream = ?2 AND owner = ?3 AND fence = ?4",
        params![
            lease.connector,
            lease.stream,
            lease.owner,
            lease.fence,
            until
        ],
    )?;
    Ok(n == 1)
}

/// The fencing check of a page commit, inside its transaction: renews the lease or fails.
pub fn fence(tx: &Transaction<'_>, lease: &Lease, ttl: std::time::Duration) -> anyhow::Result<()> {
    if renew(tx, lease, ttl)? {
        Ok(())
    } else {
        Err(lost(lease).into())
    }
}

pub fn lost(lease: &Lease) -> LeaseLost {
    LeaseLost {
        connector: lease.connector.clone(),
        stream: lease.stream.clone(),
        fence: lease.fence,
    }
}

/// Gives the job back (after a run); a lease already taken over is left to its new owner.
pub fn release(conn: &Connection, lease: &Lease) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE sync_jobs SET owner = NULL, lease_until_ms = NULL
         WHERE connector = ?1 AND stream = ?2 AND owner = ?3 AND fence = ?4",
        params![lease.connector, lease.stream, lease.owner, lease.fence],
    )?;
    Ok(())
}

/// Every job's lease.
pub fn all(conn: &Connection) -> rusqlite::Result<Vec<LeaseInfo>> {
    let now = now_ms();
    let mut stmt = conn.prepare(
        "SELECT connector, stream, owner, fence, COALESCE(lease_until_ms < ?1, 1)
         FROM sync_jobs ORDER BY connector, stream",
    )?;
    let rows = stmt.query_map([now], |r| {
        Ok(LeaseInfo {
            connector: r.get(0)?,
            stream: r.get(1)?,
            owner: r.get(2)?,
            fence: r.get(3)?,
            expired: r.get(4)?,
        })
    })?;
    rows.collect()
}
