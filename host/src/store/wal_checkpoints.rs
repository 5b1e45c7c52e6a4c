//! SQLite WAL checkpoints on a thread of their own. By default SQLite copies the write-ahead log
//! back into the database file inside whichever commit takes the log past 1,000 pages: a sync
//! page's commit, or the audit writer's next small batch (and each page's commit waits for that
//! batch). Measured on the sync bench's first load, those checkpoints were ~2–9 ms of a ~40 ms
//! page commit. Here a [`Checkpointer`] runs them beside the writers instead: SQLite's `PASSIVE`
//! checkpoint never blocks a writer or a reader, and a writer never waits for it.
//!
//! Every connection still checkpoints by itself past [`FALLBACK_PAGES`] (SQLite's own automatic
//! checkpoint), so the log stays bounded when the thread falls behind and in processes that run
//! none (the CLI's one-shot commands).

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

/// The log size (pages) past which a committing connection checkpoints by itself; ~40 MB at
/// SQLite's default 4 KiB pages.
pub const FALLBACK_PAGES: i64 = 10_000;

/// How often the thread checkpoints with no nudge (writes of connections that do not nudge,
/// such as the audit writer's, reach the file within this).
const INTERVAL: Duration = Duration::from_secs(5);

/// The least time between two checkpoints: a burst of small writes (API calls) shares one, so
/// the thread adds at most this many rounds of fsyncs a second, not one per write.
const SPACING: Duration = Duration::from_millis(50);

/// What the last checkpoint reported: frames in the log and frames copied into the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub log_frames: i64,
    pub checkpointed: i64,
}

/// The checkpoint thread of one database file; stops (and is joined) when dropped.
pub struct Checkpointer {
    nudges: Option<SyncSender<()>>,
    last: Arc<Mutex<Option<Outcome>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread, with its own connection to the existing database at `path` (never
    /// one it creates: the store makes the file, owner-only, first).
    pub fn start(path: &Path) -> anyhow::Result<Checkpointer> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // One waiting nudge is enough: a checkpoint copies everything committed before it.
        let (nudges, rx) = std::sync::mpsc::sync_channel(1);
        let last = Arc::new(Mutex::new(None));
        let seen = last.clone();
        let file = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("airlock-wal".into())
            .spawn(move || run(conn, &rx, &seen, &file))?;
        Ok(Checkpointer {
            nudges: Some(nudges),
            last,
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint soon (after a commit); never blocks.
    pub fn nudge(&self) {
        // Full: a checkpoint is asked for already, and covers this write too.
        if let Some(tx) = &self.nudges {
            let _ = tx.try_send(());
        }
    }

    /// What the last checkpoint reported (None before the first).
    pub fn last(&self) -> Option<Outcome> {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Closing the channel wakes the thread, which ends after the checkpoint in hand (if
        // any), so its connection is closed when the database's owner is gone.
        self.nudges = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: Connection, rx: &Receiver<()>, last: &Mutex<Option<Outcome>>, file: &Path) {
    let mut due = Instant::now();
    loop {
        match rx.recv_timeout(INTERVAL) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let wait = due.saturating_duration_since(Instant::now());
        if !wait.is_zero() && rx.recv_timeout(wait) == Err(RecvTimeoutError::Disconnected) {
            return;
        }
        let outcome = checkpoint(&conn);
        due = Instant::now() + SPACING;
        match outcome {
            Ok(outcome) => *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome),
            // A failed checkpoint loses nothing (the log keeps every commit) and the next one
            // or a writer's own automatic checkpoint catches up.
            Err(e) => tracing::warn!(
                "WAL checkpoint of {} failed (the writers' own checkpoints take over): {e}",
                file.display()
            ),
        }
    }
}

/// One `PASSIVE` checkpoint: copies what it can without waiting for anyone.
fn checkpoint(conn: &Connection) -> rusqlite::Result<Outcome> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(Outcome {
            log_frames: r.get(1)?,
            checkpointed: r.get(2)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database in WAL mode in `dir`, and a connection to it.
    fn wal_db(dir: &tempfile::TempDir) -> (std::path::PathBuf, Connection) {
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        (path, conn)
    }

    /// Nudges `ckpt` and waits for what its first checkpoint reports.
    fn first_checkpoint(ckpt: &Checkpointer) -> Outcome {
        ckpt.nudge();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match ckpt.last() {
                Some(o) => return o,
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                None => panic!("no checkpoint within 10 s of a nudge"),
            }
        }
    }

    #[test]
    fn a_nudge_copies_the_log_into_the_file_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = wal_db(&dir);
        // The writer never checkpoints by itself here: only the thread can.
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        writer
            .execute_batch("CREATE TABLE t(x BLOB); INSERT INTO t VALUES (zeroblob(4000000));")
            .unwrap();
        let ckpt = Checkpointer::start(&path).unwrap();
        assert_eq!(ckpt.last(), None, "nothing before the first nudge");
        let copied = first_checkpoint(&ckpt);
        assert!(copied.log_frames > 900, "{copied:?}");
        assert_eq!(
            copied.checkpointed, copied.log_frames,
            "all of the log copied"
        );
    }

    #[test]
    fn dropping_it_closes_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (path, own) = wal_db(&dir);
        own.busy_timeout(Duration::ZERO).unwrap();
        let leave_wal = |c: &Connection| {
            c.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get::<_, String>(0))
        };
        let ckpt = Checkpointer::start(&path).unwrap();
        first_checkpoint(&ckpt);
        // Leaving WAL mode needs the only connection to the file.
        assert!(leave_wal(&own).is_err(), "the thread's connection is open");
        drop(ckpt);
        assert_eq!(leave_wal(&own).unwrap(), "delete");
    }

    #[test]
    fn it_never_creates_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.db");
        assert!(Checkpointer::start(&path).is_err());
        assert!(!path.exists());
    }
}
