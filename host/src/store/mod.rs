//! The store. By default the SQLite data directory: one database file (`airlock.db`) holding the
//! audit log, the secret vault, the synced documents with their full-text index, the sync state
//! and the API tokens, with numbered migrations. [`backend::Store`] is the interface over it and
//! over the PostgreSQL backend (`pg/`) that several daemons share.

pub mod approvals;
pub mod audit;
pub mod backend;
pub mod changes;
pub mod checkpoint;
pub mod connections;
pub mod documents;
pub mod embeddings;
pub mod hook_subscriptions;
pub mod leases;
pub mod oauth_grants;
pub mod oauth_signin;
pub mod pg;
pub mod sync_state;
pub mod token_cache;
pub mod tokens;
pub mod vault;
pub mod wal_checkpoints;
pub mod webhooks;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rusqlite::Connection;

/// Schema migrations, applied in order; the index + 1 is the schema version.
const MIGRATIONS: &[&str] = &[
    // 1: secret vault and hash-chained audit log.
    r#"
    CREATE TABLE secrets (
        name        TEXT PRIMARY KEY,
        nonce       BLOB NOT NULL,
        ciphertext  BLOB NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE TABLE audit (
        seq         INTEGER PRIMARY KEY,
        ts          TEXT NOT NULL,
        connector   TEXT NOT NULL,
        invocation  TEXT NOT NULL,
        event       TEXT NOT NULL,
        decision    TEXT NOT NULL,
        reason      TEXT NOT NULL,
        method      TEXT,
        scheme      TEXT,
        host        TEXT,
        port        INTEGER,
        path        TEXT,
        status      INTEGER,
        latency_ms  REAL,
        bytes       INTEGER,
        prev_hash   TEXT NOT NULL,
        hash        TEXT NOT NULL
    );
    CREATE INDEX audit_connector ON audit(connector, seq);
    CREATE TABLE audit_head (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        seq  INTEGER NOT NULL,
        hash TEXT NOT NULL
    );
    "#,
    // 2: the document store with its FTS5 index (kept in step by triggers, so every write
    // transaction updates both), and per-stream sync state.
    r#"
    CREATE TABLE documents (
        connector   TEXT NOT NULL,
        kind        TEXT NOT NULL,
        id          TEXT NOT NULL,
        title       TEXT NOT NULL,
        body        TEXT NOT NULL,
        url         TEXT,
        updated_at  TEXT NOT NULL,
        metadata    TEXT NOT NULL,
        acl         TEXT NOT NULL,
        synced_at   TEXT NOT NULL,
        UNIQUE (connector, kind, id)
    );
    CREATE VIRTUAL TABLE documents_fts USING fts5(
        title, body, content = 'documents', content_rowid = 'rowid',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER documents_ai AFTER INSERT ON documents BEGIN
        INSERT INTO documents_fts (rowid, title, body) VALUES (new.rowid, new.title, new.body);
    END;
    CREATE TRIGGER documents_ad AFTER DELETE ON documents BEGIN
        INSERT INTO documents_fts (documents_fts, rowid, title, body)
        VALUES ('delete', old.rowid, old.title, old.body);
    END;
    CREATE TRIGGER documents_au AFTER UPDATE ON documents BEGIN
        INSERT INTO documents_fts (documents_fts, rowid, title, body)
        VALUES ('delete', old.rowid, old.title, old.body);
        INSERT INTO documents_fts (rowid, title, body) VALUES (new.rowid, new.title, new.body);
    END;
    CREATE TABLE sync_state (
        connector          TEXT NOT NULL,
        stream             TEXT NOT NULL,
        cursor             TEXT,
        cursor_updated_at  TEXT,
        last_success_at    TEXT,
        last_error         TEXT,
        last_error_at      TEXT,
        resume_after       TEXT,
        records            INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (connector, stream)
    );
    "#,
    // 3: API tokens. Only the SHA-256 of each token is stored (see store/tokens.rs).
    r#"
    CREATE TABLE api_tokens (
        id          TEXT PRIMARY KEY,
        hash        TEXT NOT NULL UNIQUE,
        principal   TEXT NOT NULL,
        tenant      TEXT NOT NULL,
        groups      TEXT NOT NULL,
        admin       INTEGER NOT NULL,
        created_at  TEXT NOT NULL,
        revoked_at  TEXT
    );
    CREATE INDEX api_tokens_principal ON api_tokens(principal);
    "#,
    // 4: write approvals (who asked for which write action with what input, and the decision).
    r#"
    CREATE TABLE approvals (
        id            TEXT PRIMARY KEY,
        created_at    TEXT NOT NULL,
        requested_by  TEXT NOT NULL,
        tenant        TEXT NOT NULL,
        connector     TEXT NOT NULL,
        action        TEXT NOT NULL,
        input         TEXT NOT NULL,
        status        TEXT NOT NULL,
        decided_by    TEXT,
        decided_at    TEXT,
        result        TEXT,
        error         TEXT
    );
    CREATE INDEX approvals_status ON approvals(tenant, status);
    "#,
    // 5: audit rows name who asked (token principal, CLI user, scheduler); NULL on older rows,
    // whose hashes therefore stay valid (see store/audit.rs `row_hash`).
    r#"
    ALTER TABLE audit ADD COLUMN principal TEXT;
    CREATE INDEX audit_principal ON audit(principal, seq);
    "#,
    // 6: documents remember the stream that synced them, so a stream's status counts the
    // records it has stored (`records` counted upserts over time); the last run's upserts and
    // deletes are kept apart. Older rows of a connector with a single stream are attributed
    // to it; the others are attributed as their streams sync them again.
    r#"
    ALTER TABLE documents ADD COLUMN stream TEXT;
    CREATE INDEX documents_stream ON documents(connector, stream);
    UPDATE documents SET stream = (
        SELECT s.stream FROM sync_state s WHERE s.connector = documents.connector)
      WHERE (SELECT COUNT(*) FROM sync_state s WHERE s.connector = documents.connector) = 1;
    ALTER TABLE sync_state ADD COLUMN last_run_upserts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sync_state ADD COLUMN last_run_deletes INTEGER NOT NULL DEFAULT 0;
    "#,
    // 7: what a sync page committed names the invocation that fetched it, so `audit verify`
    // can find data whose audit rows are missing (NULL on rows committed before).
    r#"
    ALTER TABLE documents ADD COLUMN invocation TEXT;
    ALTER TABLE sync_state ADD COLUMN cursor_invocation TEXT;
    "#,
    // 8: the change feed, one row per committed upsert and delete (store/changes.rs); the
    // sequence never repeats (AUTOINCREMENT), and how far it was pruned is remembered.
    r#"
    CREATE TABLE changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        connector TEXT NOT NULL,
        stream TEXT,
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        op TEXT NOT NULL,
        acl TEXT NOT NULL DEFAULT '[]',
        committed_at TEXT NOT NULL
    );
    CREATE INDEX changes_committed ON changes(committed_at);
    CREATE TABLE changes_meta (id INTEGER PRIMARY KEY CHECK (id = 1), pruned_through INTEGER NOT NULL);
    "#,
    // 9: a token's `proxy` scope, the connectors whose grants it may send its own requests
    // through (`/v1/proxy/{connector}/...`), as a JSON list; none by default.
    r#"
    ALTER TABLE api_tokens ADD COLUMN proxy TEXT NOT NULL DEFAULT '[]';
    "#,
    // 10: the webhook outbox (store/webhooks.rs): how far each webhook's fan-out has read the
    // change feed, and one row per delivery with its own retry state.
    r#"
    CREATE TABLE webhook_cursors (webhook TEXT PRIMARY KEY, cursor INTEGER NOT NULL);
    CREATE TABLE webhook_deliveries (
        id TEXT PRIMARY KEY,
        webhook TEXT NOT NULL,
        connector TEXT NOT NULL,
        change_seq INTEGER NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        last_status INTEGER,
        last_error TEXT,
        created_at TEXT NOT NULL,
        delivered_at TEXT
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_ms);
    CREATE INDEX webhook_deliveries_of ON webhook_deliveries(webhook, change_seq);
    "#,
    // 11: push subscriptions Airlock keeps alive at upstreams (store/hook_subscriptions.rs), so
    // a restart renews the one it made instead of making another.
    r#"
    CREATE TABLE hook_subscriptions (
        connector TEXT PRIMARY KEY,
        id TEXT NOT NULL,
        resource TEXT NOT NULL,
        notification_url TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        renewed_at TEXT NOT NULL
    );
    "#,
    // 12: a digest of what a document shows (store/documents.rs `content_hash`): a re-sync that
    // brings a record back unchanged writes nothing, re-indexes nothing and is no change in the
    // feed. Rows stored before have none, so their first re-sync rewrites them once.
    r#"
    ALTER TABLE documents ADD COLUMN content_hash TEXT;
    "#,
    // 13: sync job leases (store/leases.rs): which process runs a (connector, stream) now, until
    // when, under which fencing number; a commit under a lease taken over is refused.
    r#"
    CREATE TABLE sync_jobs (
        connector      TEXT NOT NULL,
        stream         TEXT NOT NULL,
        owner          TEXT,
        fence          INTEGER NOT NULL DEFAULT 0,
        lease_until_ms INTEGER,
        PRIMARY KEY (connector, stream)
    );
    "#,
    // 14: Airlock's own OAuth authorization server (store/oauth_grants.rs): dynamically
    // registered clients, grants (one sign-in of one person for one client: a refresh-token
    // family, ended by revocation, by reuse of a rotated refresh token, or with the API token
    // it was signed in with), one-time codes and refresh tokens, both stored only hashed.
    r#"
    CREATE TABLE oauth_clients (
        id TEXT PRIMARY KEY,
        name TEXT,
        redirect_uris TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE oauth_grants (
        id TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        api_token_id TEXT NOT NULL,
        scopes TEXT NOT NULL,
        resource TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT,
        revoked_why TEXT
    );
    CREATE INDEX oauth_grants_of_token ON oauth_grants(api_token_id);
    CREATE TABLE oauth_codes (
        hash TEXT PRIMARY KEY,
        grant_id TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        code_challenge TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        used_at TEXT
    );
    CREATE TABLE oauth_refresh_tokens (
        hash TEXT PRIMARY KEY,
        grant_id TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        used_at TEXT
    );
    CREATE INDEX oauth_refresh_tokens_of ON oauth_refresh_tokens(grant_id);
    "#,
    // 15: what the own authorization server keeps between requests (store/oauth_signin.rs):
    // its access-token signing key sealed with the vault's master key (one row), and sign-ins
    // waiting for the person (request id and CSRF token only as digests).
    r#"
    CREATE TABLE oauth_signing_key (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE oauth_pending (
        id_hash TEXT PRIMARY KEY,
        request TEXT NOT NULL,
        csrf_hash TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0
    );
    "#,
    // 16: semantic search (store/embeddings.rs): each document's chunks with their vectors,
    // and the content hash and model they were made from; a deleted document's go with it.
    r#"
    CREATE TABLE chunks (
        connector TEXT NOT NULL,
        kind      TEXT NOT NULL,
        id        TEXT NOT NULL,
        seq       INTEGER NOT NULL,
        model     TEXT NOT NULL,
        text_hash TEXT NOT NULL,
        text      TEXT NOT NULL,
        vector    BLOB NOT NULL,
        PRIMARY KEY (connector, kind, id, seq)
    );
    CREATE INDEX chunks_by_text ON chunks(model, text_hash);
    CREATE TABLE chunked_documents (
        connector TEXT NOT NULL,
        kind      TEXT NOT NULL,
        id        TEXT NOT NULL,
        model     TEXT NOT NULL,
        doc_hash  TEXT NOT NULL,
        PRIMARY KEY (connector, kind, id)
    );
    CREATE TRIGGER documents_chunks_ad AFTER DELETE ON documents BEGIN
        DELETE FROM chunks WHERE connector = old.connector AND kind = old.kind AND id = old.id;
        DELETE FROM chunked_documents
        WHERE connector = old.connector AND kind = old.kind AND id = old.id;
    END;
    "#,
    // 17: people's connections to upstreams (delegated OAuth, store/connections.rs): their
    // sealed tokens per (connector, principal), and the pending connects' single-use states.
    r#"
    CREATE TABLE user_connections (
        connector    TEXT NOT NULL,
        principal    TEXT NOT NULL,
        nonce        BLOB NOT NULL,
        ciphertext   BLOB NOT NULL,
        expires_ms   INTEGER,
        scopes       TEXT NOT NULL,
        version      INTEGER NOT NULL,
        connected_at TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        PRIMARY KEY (connector, principal)
    );
    CREATE INDEX user_connections_of ON user_connections (principal);
    CREATE TABLE connection_states (
        hash       TEXT PRIMARY KEY,
        connector  TEXT NOT NULL,
        principal  TEXT NOT NULL,
        nonce      BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    "#,
    // 18: the own authorization server signs people in through the company's OpenID Connect
    // provider too (api/authorization/upstream.rs): such a grant has no API token
    // (`api_token_id` is empty) and names the person, their tenant and groups itself.
    r#"
    ALTER TABLE oauth_grants ADD COLUMN person TEXT;
    ALTER TABLE oauth_grants ADD COLUMN person_tenant TEXT;
    ALTER TABLE oauth_grants ADD COLUMN person_groups TEXT;
    "#,
];

/// The database file inside a data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("airlock.db")
}

/// Creates the data directory if needed and makes it private to the daemon's user (0700),
/// whoever created it and with whatever umask: it holds the database, the vault key and the
/// compile cache.
/// Refuses a key file that anyone but its owner may read: a key others could have copied is no
/// longer secret, so it is not used (and not quietly narrowed either).
pub fn require_owner_only(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "{} has mode {mode:04o}; it must be readable by its owner only (chmod 600)",
                path.display()
            );
        }
    }
    Ok(())
}

pub fn ensure_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    if !data_dir.exists() {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    }
    restrict(data_dir, 0o700)
}

/// Narrows a file's or directory's mode to `mode` when it grants more (a group or world bit).
/// Not being able to is an error: the daemon does not run on files others can read.
fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot stat {}", path.display())),
        };
        let now = meta.permissions().mode() & 0o777;
        if now & !mode != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).with_context(
                || {
                    format!(
                        "{} has mode {now:04o} and cannot be narrowed to {mode:04o}",
                        path.display()
                    )
                },
            )?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// The database and the files SQLite keeps beside it in WAL mode.
fn db_files(data_dir: &Path) -> [PathBuf; 3] {
    let db = db_path(data_dir);
    let side = |suffix: &str| {
        let mut s = db.clone().into_os_string();
        s.push(suffix);
        PathBuf::from(s)
    };
    [side("-wal"), side("-shm"), db]
}

/// Opens (creating and migrating if needed) the database of a data directory.
pub fn open(data_dir: &Path) -> anyhow::Result<Connection> {
    ensure_data_dir(data_dir)?;
    let path = db_path(data_dir);
    // Created 0600 before SQLite sees it: SQLite gives its -wal and -shm files the database's
    // mode, so all three stay owner-only. Files made earlier (another umask, another tool) are
    // narrowed here.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }
    for f in db_files(data_dir) {
        restrict(&f, 0o600)?;
    }
    let mut conn = Connection::open(&path)
        .with_context(|| format!("cannot open database {}", path.display()))?;
    configure(&conn).map_err(|e| unusable(&path, e))?;
    migrate(&mut conn).with_context(|| format!("cannot migrate database {}", path.display()))?;
    for f in db_files(data_dir) {
        restrict(&f, 0o600)?;
    }
    Ok(conn)
}

/// How long a connection waits for another's write lock before giving up with SQLITE_BUSY.
const BUSY_TIMEOUT_MS: i32 = 10_000;
/// Tries a connection waits in short steps, then in long ones (see [`busy_wait`]).
const BUSY_SHORT_TRIES: i32 = 200;
const BUSY_SHORT: std::time::Duration = std::time::Duration::from_micros(500);
const BUSY_LONG: std::time::Duration = std::time::Duration::from_millis(5);

/// SQLite's busy handler: whether to try the lock again, after a nap. SQLite's own (what
/// `busy_timeout` installs) naps 1, 2, 5, 10, 15, 20, 25 ms... between tries, so a writer that
/// met a ~40 ms sync-page commit woke up to ~16 ms after it ended. The audit writer often does,
/// and each page's commit waits for it (write-ahead audit): on the sync bench's first load that
/// wait was 6 ms a page on average, 15 % of the load. Here: 0.5 ms naps for the first 100 ms,
/// then 5 ms ones, 10 s in all, as before.
fn busy_wait(tries: i32) -> bool {
    busy_nap(tries).map(std::thread::sleep).is_some()
}

/// The nap before try `tries + 1`; `None` once the naps add up to the timeout.
fn busy_nap(tries: i32) -> Option<std::time::Duration> {
    let short_ms = BUSY_SHORT_TRIES * BUSY_SHORT.as_micros() as i32 / 1000;
    let long_tries = (BUSY_TIMEOUT_MS - short_ms) / BUSY_LONG.as_millis() as i32;
    match tries {
        t if t < BUSY_SHORT_TRIES => Some(BUSY_SHORT),
        t if t < BUSY_SHORT_TRIES + long_tries => Some(BUSY_LONG),
        _ => None,
    }
}

/// The connection settings every user of the store shares. The first statement is the first
/// read of the file, so a file that is not a database fails here.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(busy_wait))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Checkpoints are the daemon's checkpoint thread's work ([`wal_checkpoints`]); a commit
    // checkpoints by itself only past this bound.
    conn.pragma_update(None, "wal_autocheckpoint", wal_checkpoints::FALLBACK_PAGES)?;
    // A bigger page cache keeps the FTS index's hot b-tree pages in memory during sync bursts.
    conn.pragma_update(None, "cache_size", -65536)
}

/// Why the database file cannot be used, naming it and what to do; the file is left as it is.
fn unusable(path: &Path, e: rusqlite::Error) -> anyhow::Error {
    let corrupt = matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    );
    if corrupt {
        anyhow::anyhow!(
            "database {} is not a usable SQLite database ({e}); nothing was changed: restore it \
             from a backup, or move it aside to start with an empty store",
            path.display()
        )
    } else {
        anyhow::anyhow!("cannot use database {}: {e}", path.display())
    }
}

fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    if current as usize > MIGRATIONS.len() {
        anyhow::bail!(
            "database schema version {current} is newer than this airlock supports ({}); upgrade airlock",
            MIGRATIONS.len()
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [i as i64 + 1],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The schema version this airlock migrates SQLite stores to.
pub fn schema_version() -> usize {
    MIGRATIONS.len()
}

/// RFC 3339 UTC timestamp with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// A shared connection for the daemon's own reads and writes (sync commits, search). SQLite
/// calls are blocking, so async callers go through [`Db::run`].
pub struct Db {
    conn: std::sync::Mutex<Connection>,
    /// Read-only connections for searches and gets, opened on demand: SQLite in WAL mode
    /// serves readers in parallel with each other and with the writer.
    readers: std::sync::Mutex<Vec<Connection>>,
    reader_slots: tokio::sync::Semaphore,
    path: PathBuf,
    /// Woken after each committed sync page: change-feed readers waiting for news (long poll).
    committed: tokio::sync::Notify,
    /// API tokens found live (see [`token_cache`]).
    pub(crate) tokens: token_cache::TokenCache,
    /// Its own read connection for the revocation count, asked on the request's thread.
    revocations: std::sync::Mutex<Option<Connection>>,
    /// Copies the write-ahead log into the file beside the writers, nudged after each write.
    checkpoints: wal_checkpoints::Checkpointer,
}

/// At most this many read connections (each with its own page cache).
const READERS: usize = 4;

impl Db {
    pub fn open(data_dir: &Path) -> anyhow::Result<Db> {
        let conn = open(data_dir)?;
        Ok(Db {
            checkpoints: wal_checkpoints::Checkpointer::start(&db_path(data_dir))?,
            conn: std::sync::Mutex::new(conn),
            readers: std::sync::Mutex::new(Vec::new()),
            reader_slots: tokio::sync::Semaphore::new(READERS),
            path: db_path(data_dir),
            committed: tokio::sync::Notify::new(),
            tokens: token_cache::TokenCache::default(),
            revocations: std::sync::Mutex::new(None),
        })
    }

    /// How many API tokens are revoked (by any process sharing the file): what the token cache
    /// checks per request. Asked on the caller's thread, not the blocking pool: a count of a
    /// small table, and a reader never waits for a lock here (None then, and for any error: the
    /// token is looked up as without a cache).
    pub(crate) fn revoked_tokens(&self) -> Option<i64> {
        let mut conn = self.revocations.lock().unwrap_or_else(|e| e.into_inner());
        if conn.is_none() {
            let c = self.open_reader().ok()?;
            c.busy_timeout(std::time::Duration::ZERO).ok()?;
            *conn = Some(c);
        }
        let count = conn
            .as_ref()?
            .prepare_cached("SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NOT NULL");
        count.and_then(|mut q| q.query_row([], |r| r.get(0))).ok()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tells change-feed readers of this process that a page was committed.
    pub fn notify_committed(&self) {
        self.committed.notify_waiters();
    }

    /// Waits until this process commits a page, or `within` passes (commits of other
    /// processes, such as the CLI, are seen by polling again after it).
    pub async fn committed_within(&self, within: std::time::Duration) {
        let _ = tokio::time::timeout(within, self.committed.notified()).await;
    }

    fn open_reader(&self) -> anyhow::Result<Connection> {
        use rusqlite::OpenFlags;
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open database {}", self.path.display()))?;
        conn.busy_handler(Some(busy_wait))?;
        conn.pragma_update(None, "cache_size", -16384)?;
        Ok(conn)
    }

    /// Runs a read-only `f` on one of the read connections, on the blocking pool.
    pub async fn read<R: Send + 'static>(
        self: &std::sync::Arc<Self>,
        f: impl FnOnce(&Connection) -> anyhow::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        let _slot = self
            .reader_slots
            .acquire()
            .await
            .map_err(|e| anyhow::anyhow!("database readers closed: {e}"))?;
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = db.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match pooled {
                Some(c) => c,
                None => db.open_reader()?,
            };
            let result = f(&conn);
            db.readers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
            result
        })
        .await
        .map_err(|e| anyhow::anyhow!("database task failed: {e}"))?
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn run<R: Send + 'static>(
        self: &std::sync::Arc<Self>,
        f: impl FnOnce(&mut Connection) -> anyhow::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db
                .conn
                .lock()
                .map_err(|_| anyhow::anyhow!("database connection poisoned"))?;
            let result = f(&mut conn);
            db.checkpoints.nudge();
            result
        })
        .await
        .map_err(|e| anyhow::anyhow!("database task failed: {e}"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_connection_naps_briefly_first_and_gives_up_after_ten_seconds() {
        let naps: Vec<_> = (0..).map_while(busy_nap).collect();
        let total: std::time::Duration = naps.iter().sum();
        assert_eq!(
            total,
            std::time::Duration::from_millis(BUSY_TIMEOUT_MS as u64)
        );
        assert_eq!(naps[0], std::time::Duration::from_micros(500));
        // Naps stay short, so a waiter wakes soon after the lock is free.
        assert!(
            naps.iter()
                .all(|n| *n <= std::time::Duration::from_millis(5))
        );
        assert!(
            naps[..200]
                .iter()
                .all(|n| *n < std::time::Duration::from_millis(1))
        );
    }

    #[test]
    fn migrations_apply_once_and_record_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path()).unwrap();
        drop(c);
        let c = open(dir.path()).unwrap();
        let v: i64 = c
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
    }

    #[cfg(unix)]
    #[test]
    fn the_data_dir_and_database_files_are_made_owner_only_whoever_created_them() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let set = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        let tmp = tempfile::tempdir().unwrap();
        // Made by someone else with a permissive umask: a world-readable directory and files.
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        set(&dir, 0o755);
        let db = db_path(&dir);
        let c = Connection::open(&db).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        let [wal, shm, _] = db_files(&dir);
        for f in [&db, &wal, &shm] {
            set(f, 0o644);
        }
        let conn = open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        for f in [&db, &wal, &shm] {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        drop((c, conn));

        // A fresh data directory under a permissive umask: owner-only from the start.
        let fresh = tmp.path().join("fresh");
        let conn = open(&fresh).unwrap();
        conn.execute_batch("CREATE TABLE u (x); INSERT INTO u VALUES (1);")
            .unwrap();
        assert_eq!(mode(&fresh), 0o700);
        for f in db_files(&fresh) {
            if f.exists() {
                assert_eq!(mode(&f), 0o600, "{}", f.display());
            }
        }
    }
}
