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
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the lease on {connector}/{stream} was taken over by another daemon (fence {fence} is stale); the page was not committed"
)]
pub struct LeaseLost {
    pub connector: String,
    pub stream: String,
    pub fence: i64,
}

/// This process's name as a lease owner: `HOST:PID:BOOT:RANDOM`. The host, pid and boot id let
/// another process on the same machine see that the owner died (see [`owner_is_dead`]); the
/// random part keeps two runs of one pid apart.
pub fn this_process() -> String {
    static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OWNER
        .get_or_init(|| {
            owner_for(
                std::process::id(),
                &ulid::Ulid::new().to_string().to_lowercase(),
            )
        })
        .clone()
}

/// The owner name of process `pid` of this machine (`nonce` tells its runs apart).
pub fn owner_for(pid: u32, nonce: &str) -> String {
    format!("{}:{pid}:{}:{nonce}", host_name(), boot_id())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().replace(':', "_"))
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().chars().take(8).collect())
        .unwrap_or_else(|_| "noboot".into())
}

/// Whether `owner` names a process of this machine (same host, same boot) that no longer
/// exists: its lease can be taken at once instead of after it expires (a `kill -9`ed run
/// restarted at once, a crashed daemon restarted by its service manager).
pub fn owner_is_dead(owner: &str) -> bool {
    let parts: Vec<&str> = owner.split(':').collect();
    let [host, pid, boot, _] = parts[..] else {
        return false;
    };
    if host != host_name() || boot != boot_id() {
        return false;
    }
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    if pid <= 0 || pid as u32 == std::process::id() {
        return false;
    }
    #[cfg(unix)]
    {
        // SAFETY: signal 0 only checks whether the process exists; nothing is sent.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    false
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

/// Takes the lease from `dead_owner` (see [`owner_is_dead`]) under a new fence, if that owner
/// still holds it.
pub fn take_over(
    conn: &Connection,
    connector: &str,
    stream: &str,
    dead_owner: &str,
    owner: &str,
    ttl: std::time::Duration,
) -> rusqlite::Result<Option<Lease>> {
    let until = now_ms() + ttl.as_millis() as i64;
    let fence: Option<i64> = conn
        .query_row(
            "UPDATE sync_jobs SET owner = ?4, fence = fence + 1, lease_until_ms = ?5
             WHERE connector = ?1 AND stream = ?2 AND owner = ?3 RETURNING fence",
            params![connector, stream, dead_owner, owner, until],
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
