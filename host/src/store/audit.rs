//! The audit log: one row per invocation and per outbound decision, each holding the hash of the
//! previous row, so `verify` finds an edited, inserted or deleted row. Rows are written by one
//! background thread in batched transactions; the chain head is read inside each write
//! transaction, so several processes (daemon and CLI) can append to the same log safely.
//!
//! The queue to the writer is bounded: when it is full, `record` waits (backpressure) rather
//! than drop a row or grow without limit. The writer signs the chain head into the checkpoint
//! file (see [`super::checkpoint`]) every N rows or T seconds, at start and on a clean stop.
//!
//! This file holds the SQLite chain and what both backends share (the row, the hash, the
//! writer and the chain walk); the PostgreSQL chains (one per writing process) are in
//! `pg/audit.rs`, and `backend/audit.rs` picks the backend from the store.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::{Connection, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use ed25519_dalek::VerifyingKey;
use rusqlite::OptionalExtension;

use super::checkpoint::{self, Checkpoint, CheckpointSigner, Sink};
use crate::scrub::Scrubber;

/// The previous-hash of a chain's first row.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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
    /// The configured name of the grant that matched (metrics label only; not stored, not
    /// hashed: the reason names the grant in stored rows).
    #[serde(skip)]
    pub grant: Option<String>,
}

/// A stored row.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    /// The chain the row belongs to: None in the SQLite store (one chain); on PostgreSQL the
    /// writing daemon's chain (see `store/pg/audit.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    pub seq: i64,
    pub ts: String,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

enum Msg {
    /// A row and when it was recorded (formatted, and scrubbed, on the writer's thread: off the
    /// request path).
    Event(std::time::SystemTime, Box<AuditEvent>),
    /// Commit what is queued; with `true`, also sign the head now. The answer says whether the
    /// rows are committed.
    Flush(mpsc::Sender<bool>, bool),
}

/// How the writer queues rows and anchors the chain (`[audit]` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSettings {
    /// Rows the queue holds before `record` waits for the writer.
    pub queue_rows: usize,
    /// Sign the head after this many new rows...
    pub checkpoint_rows: u64,
    /// ...or this long after the last checkpoint, whichever comes first (if rows were added).
    pub checkpoint_interval: std::time::Duration,
    pub checkpoint_sink: Sink,
    pub durability: Durability,
}

/// When a committed audit row is on disk (`[audit] durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// SQLite WAL with `synchronous = NORMAL`: a committed row survives a process crash; a power
    /// loss may drop the last commits the OS had not written out.
    #[default]
    Normal,
    /// `synchronous = FULL` on the writer's connection: every commit is fsynced before a flush
    /// returns, so rows survive a power loss too (at the cost of one fsync per batch).
    Fsync,
}

impl Durability {
    /// `normal` or `fsync`.
    pub fn parse(s: &str) -> Option<Durability> {
        match s {
            "normal" => Some(Durability::Normal),
            "fsync" => Some(Durability::Fsync),
            _ => None,
        }
    }
}

/// The writer's own connection, with the durability the operator asked for.
fn writer_connection(data_dir: &Path, durability: Durability) -> anyhow::Result<Connection> {
    let conn = super::open(data_dir)?;
    if durability == Durability::Fsync {
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    Ok(conn)
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            queue_rows: 10_000,
            checkpoint_rows: 1000,
            checkpoint_interval: std::time::Duration::from_secs(60),
            checkpoint_sink: Sink::Log,
            durability: Durability::Normal,
        }
    }
}

/// Handle for appending rows; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::SyncSender<Msg>,
    /// Times `record` found the queue full and waited (for metrics and tests).
    waits: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Whether the writer's last commit succeeded. While it cannot write (disk full, I/O error,
    /// a lock held past every retry) the gate lets no request leave and syncs commit nothing.
    available: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The writer thread, woken from its batching nap when someone waits for a commit...
    writer: std::thread::Thread,
    /// ...and told so here (the wake alone can be taken by the channel's own parking).
    flush_wanted: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The audit log cannot be written: what needs its rows durable must not go ahead.
#[derive(Debug, Clone, thiserror::Error)]
#[error("audit unavailable: {0}")]
pub struct AuditUnavailable(pub String);

/// How long [`AuditLog::flush_durable`] waits for the writer before it reports the log
/// unavailable.
const DURABLE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Owns the writer thread; dropping it flushes and stops the thread.
pub struct AuditWriter {
    log: AuditLog,
    thread: Option<JoinHandle<()>>,
}

impl AuditWriter {
    pub fn start(data_dir: &Path, scrubber: Scrubber) -> anyhow::Result<AuditWriter> {
        Self::start_with(data_dir, scrubber, &AuditSettings::default())
    }

    /// Starts the writer; fails when the checkpoint signing key is unusable (e.g. too open).
    pub fn start_with(
        data_dir: &Path,
        scrubber: Scrubber,
        settings: &AuditSettings,
    ) -> anyhow::Result<AuditWriter> {
        let conn = writer_connection(data_dir, settings.durability)?;
        Self::spawn(Box::new(conn), data_dir, scrubber, settings)
    }

    /// Starts the writer on `sink` (a SQLite connection or a PostgreSQL chain; see
    /// `store/backend/audit.rs`), signing checkpoints with `data_dir`'s key.
    pub(crate) fn spawn(
        sink: Box<dyn ChainSink>,
        data_dir: &Path,
        scrubber: Scrubber,
        settings: &AuditSettings,
    ) -> anyhow::Result<AuditWriter> {
        let signer = CheckpointSigner::open(data_dir, settings.checkpoint_sink)?;
        let (tx, rx) = mpsc::sync_channel(settings.queue_rows.max(1));
        let available = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let writer_available = available.clone();
        let flush_wanted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let wanted = flush_wanted.clone();
        let anchor = Anchor {
            signer,
            every_rows: settings.checkpoint_rows.max(1),
            interval: settings.checkpoint_interval,
        };
        let thread = std::thread::Builder::new()
            .name("airlock-audit".into())
            .spawn(move || writer_loop(sink, rx, anchor, scrubber, writer_available, wanted))?;
        Ok(AuditWriter {
            log: AuditLog {
                tx,
                waits: Default::default(),
                available,
                writer: thread.thread().clone(),
                flush_wanted,
            },
            thread: Some(thread),
        })
    }

    pub fn log(&self) -> AuditLog {
        self.log.clone()
    }
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        // A clean stop signs the head, so the newest rows are anchored too.
        self.log.flush_and_checkpoint();
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
    /// Queues a row. Its text fields are scrubbed of secret values before it is written (on the
    /// writer's thread, so the request path does not pay for it). The caller names the
    /// principal in the event: the store knows nothing of who is calling.
    pub fn record(&self, e: AuditEvent) {
        let msg = Msg::Event(std::time::SystemTime::now(), Box::new(e));
        // Backpressure, never a silent drop: a full queue makes the recorder wait.
        let sent = match self.tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(mpsc::TrySendError::Full(msg)) => {
                self.waits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.tx.send(msg).map_err(|_| ())
            }
            Err(mpsc::TrySendError::Disconnected(_)) => Err(()),
        };
        if sent.is_err() {
            tracing::error!("audit writer has stopped; an audit row was not recorded");
        }
    }

    /// How many times a recorder found the queue full and waited.
    pub fn queue_full_waits(&self) -> u64 {
        self.waits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Blocks until every row queued so far is committed.
    pub fn flush(&self) {
        self.flush_inner(false)
    }

    /// Like [`AuditLog::flush`], then signs the chain head into the checkpoint file.
    pub fn flush_and_checkpoint(&self) {
        self.flush_inner(true)
    }

    fn flush_inner(&self, checkpoint: bool) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(tx, checkpoint)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Whether the audit log can be written now (the writer's last commit succeeded).
    pub fn available(&self) -> bool {
        self.available.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Blocks until every row queued so far is committed, or reports that it cannot be: a sync
    /// page is committed, and an action's result returned, only after the rows of the requests
    /// behind them are durable (a crash then loses no row of anything it kept).
    pub fn flush_durable(&self) -> Result<(), AuditUnavailable> {
        let down = || AuditUnavailable("the audit log cannot be written".into());
        if !self.available() {
            return Err(down());
        }
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Msg::Flush(tx, false))
            .map_err(|_| AuditUnavailable("the audit writer has stopped".into()))?;
        // Someone waits: the writer commits now instead of finishing its batching nap.
        self.flush_wanted
            .store(true, std::sync::atomic::Ordering::Release);
        self.writer.unpark();
        match rx.recv_timeout(DURABLE_WAIT) {
            Ok(true) => Ok(()),
            Ok(false) => Err(down()),
            Err(_) => Err(AuditUnavailable(format!(
                "the audit writer did not commit within {}s",
                DURABLE_WAIT.as_secs()
            ))),
        }
    }
}

/// The writer's checkpoint schedule.
struct Anchor {
    signer: CheckpointSigner,
    every_rows: u64,
    interval: std::time::Duration,
}

impl Anchor {
    /// Signs `head` and keeps the checkpoint where the sink's chain keeps them (the data
    /// directory's file for SQLite, the database for a PostgreSQL chain). False when it could
    /// not be kept: the writer tries again later.
    fn sign(&self, sink: &mut dyn ChainSink, head: &(i64, String)) -> bool {
        let signer = &self.signer;
        let kept = match sink.chain() {
            None => signer.checkpoint(head.0, &head.1).map(|_| ()),
            Some(chain) => {
                let cp = signer.sign(Some(&chain), head.0, &head.1);
                sink.keep_checkpoint(&cp).map(|()| signer.emit(&cp))
            }
        };
        match kept {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("audit checkpoint of row {} failed: {e:#}", head.0);
                false
            }
        }
    }

    fn newest(&self, sink: &mut dyn ChainSink) -> Option<(i64, String)> {
        match sink.chain() {
            None => self.signer.newest(),
            Some(_) => sink.newest_checkpoint(),
        }
    }
}

/// The database a writer appends its chain to.
pub(crate) trait ChainSink: Send {
    /// The chain's stored head, if any row was ever written.
    fn head(&mut self) -> Option<(i64, String)>;
    /// Appends a batch in one transaction after the stored head; returns the new head. Rows
    /// are durable when this returns Ok.
    fn append(&mut self, batch: &[(String, Box<AuditEvent>)]) -> anyhow::Result<(i64, String)>;
    /// The chain's id when the sink keeps its checkpoints itself, beside the rows (PostgreSQL);
    /// None: the store's one chain, anchored in the data directory's checkpoint file.
    fn chain(&self) -> Option<String> {
        None
    }
    /// Stores a signed checkpoint of this chain (sinks that name a [`ChainSink::chain`]).
    fn keep_checkpoint(&mut self, _cp: &Checkpoint) -> anyhow::Result<()> {
        anyhow::bail!("this audit store keeps checkpoints in the data directory")
    }
    /// The head this chain's newest stored checkpoint signs.
    fn newest_checkpoint(&mut self) -> Option<(i64, String)> {
        None
    }
}

impl ChainSink for Connection {
    fn head(&mut self) -> Option<(i64, String)> {
        read_head(self)
    }

    fn append(&mut self, batch: &[(String, Box<AuditEvent>)]) -> anyhow::Result<(i64, String)> {
        Ok(append(self, batch)?)
    }
}

/// How long the writer lets rows accumulate after the first one arrives. Senders never block;
/// while the writer naps, a send does not have to wake a parked thread, which on a busy gate
/// saves a futex wake and a context switch per row. A caller waiting for durable rows
/// ([`AuditLog::flush_durable`]) cuts the nap short, so an answer never waits for the window.
const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

/// Longest pause between attempts to write rows the log could not take.
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(2);

fn writer_loop(
    mut sink: Box<dyn ChainSink>,
    rx: mpsc::Receiver<Msg>,
    anchor: Anchor,
    scrubber: Scrubber,
    available: std::sync::Arc<std::sync::atomic::AtomicBool>,
    flush_wanted: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    use std::time::Instant;
    // The head this writer last committed, and rows committed since its last checkpoint.
    let mut head: Option<(i64, String)> = sink.head();
    let mut unsigned: u64 = 0;
    let mut last_signed = Instant::now();
    // Anchor what is already there (a log from before checkpoints), unless the newest
    // checkpoint already does. A chain of its own (PostgreSQL) is anchored at its genesis
    // before its first row: a chain whose rows have no checkpoint at all then had them removed.
    let start = head
        .clone()
        .or_else(|| sink.chain().map(|_| (0, GENESIS.to_string())));
    // False until the chain's first checkpoint is kept (the database may be down at start):
    // the first batch written then signs at once.
    let mut anchored = true;
    if let Some(h) = &start
        && anchor.newest(sink.as_mut()).as_ref() != Some(h)
    {
        anchored = anchor.sign(sink.as_mut(), h);
    }
    loop {
        let wait = anchor.interval.saturating_sub(last_signed.elapsed());
        let first = match rx.recv_timeout(wait.max(std::time::Duration::from_millis(10))) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if unsigned > 0
                    && let Some(h) = &head
                {
                    anchored |= anchor.sign(sink.as_mut(), h);
                    unsigned = 0;
                }
                last_signed = Instant::now();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if !matches!(first, Msg::Flush(..)) {
            let until = Instant::now() + BATCH_WINDOW;
            loop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() || flush_wanted.swap(false, Ordering::AcqRel) {
                    break;
                }
                std::thread::park_timeout(left);
            }
        }
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        let mut sign_now = false;
        let mut push = |m: Msg, batch: &mut Vec<(String, Box<AuditEvent>)>| match m {
            Msg::Event(at, mut e) => {
                scrub_event(&scrubber, &mut e);
                let ts = humantime::format_rfc3339_millis(at).to_string();
                batch.push((ts, e))
            }
            Msg::Flush(done, checkpoint) => {
                sign_now |= checkpoint;
                flushes.push(done)
            }
        };
        push(first, &mut batch);
        while batch.len() < 5000 {
            match rx.try_recv() {
                Ok(m) => push(m, &mut batch),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            // Rows are never dropped: a batch the database does not take is retried until it
            // does. Meanwhile the log is marked unavailable (the gate refuses requests, syncs
            // commit nothing, /readyz is unready) and waiting flushes are told so; the queue
            // behind this batch makes recorders wait.
            let mut attempt: u32 = 0;
            loop {
                match sink.append(&batch) {
                    Ok(h) => {
                        head = Some(h);
                        unsigned += batch.len() as u64;
                        if !available.swap(true, Ordering::AcqRel) {
                            tracing::warn!("audit log writable again; outbound requests resume");
                        }
                        break;
                    }
                    Err(e) => {
                        attempt += 1;
                        if attempt == 3 && available.swap(false, Ordering::AcqRel) {
                            tracing::error!(
                                "audit log cannot be written ({e}); no outbound request \
                                 leaves and no sync page is committed until it can"
                            );
                        } else {
                            tracing::warn!("audit write failed (attempt {attempt}): {e}");
                        }
                        if attempt >= 3 {
                            for f in flushes.drain(..) {
                                let _ = f.send(false);
                            }
                        }
                        let pause = std::time::Duration::from_millis(50 * u64::from(attempt));
                        std::thread::sleep(pause.min(RETRY_MAX));
                    }
                }
            }
        }
        let due =
            unsigned >= anchor.every_rows || last_signed.elapsed() >= anchor.interval || !anchored;
        if (sign_now || due)
            && unsigned > 0
            && let Some(h) = &head
        {
            // A failed checkpoint waits for the next one due (it is logged), except the
            // chain's first, which every batch tries again until one is kept.
            anchored |= anchor.sign(sink.as_mut(), h);
            unsigned = 0;
            last_signed = Instant::now();
        }
        for f in flushes {
            let _ = f.send(true);
        }
    }
    // Every sender is gone: a last checkpoint for rows not yet anchored.
    if unsigned > 0
        && let Some(h) = &head
    {
        anchor.sign(sink.as_mut(), h);
    }
}

/// Secret values out of a row's free text (the reason, the path as sent, the host).
fn scrub_event(s: &Scrubber, e: &mut AuditEvent) {
    s.scrub_in_place(&mut e.reason);
    for field in [&mut e.path, &mut e.host].into_iter().flatten() {
        s.scrub_in_place(field);
    }
}

/// The stored chain head, if any row was ever written.
fn read_head(conn: &Connection) -> Option<(i64, String)> {
    conn.query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .ok()
}

/// Appends a batch; returns the new head.
fn append(
    conn: &mut Connection,
    batch: &[(String, Box<AuditEvent>)],
) -> rusqlite::Result<(i64, String)> {
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
    tx.commit()?;
    Ok((seq, prev))
}

/// The hash covers every column and the previous row's hash. The principal joins the hashed
/// columns only when set, so rows written before it existed still verify unchanged.
///
/// The hashed text is the compact JSON array of those columns, exactly as
/// `serde_json::Value::to_string` writes it, streamed into the hasher element by element:
/// building the array as a `Value` and then its text cost ~50 allocations a row on the writer's
/// thread.
pub(crate) fn row_hash(seq: i64, ts: &str, e: &AuditEvent, prev: &str) -> String {
    let mut hasher = Sha256::new();
    let mut items = JsonArray::new(&mut hasher);
    items.push(&seq);
    items.push(ts);
    items.push(&e.connector);
    items.push(&e.invocation);
    items.push(&e.event);
    items.push(&e.decision);
    items.push(&e.reason);
    items.push(&e.method);
    items.push(&e.scheme);
    items.push(&e.host);
    items.push(&e.port);
    items.push(&e.path);
    items.push(&e.status);
    items.push(&e.latency_ms);
    items.push(&e.bytes);
    items.push(prev);
    if let Some(p) = &e.principal {
        items.push(p);
    }
    items.end();
    hex::encode(hasher.finalize())
}

/// A compact JSON array written straight into a hasher. Writing into a hasher cannot fail, and
/// serializing these plain values (strings, integers, floats, options of them) cannot either.
struct JsonArray<'h> {
    out: &'h mut Sha256,
    first: bool,
}

impl<'h> JsonArray<'h> {
    fn new(out: &'h mut Sha256) -> JsonArray<'h> {
        out.update(b"[");
        JsonArray { out, first: true }
    }

    fn push<T: Serialize + ?Sized>(&mut self, item: &T) {
        if !self.first {
            self.out.update(b",");
        }
        self.first = false;
        let _ = serde_json::to_writer(&mut *self.out, item);
    }

    fn end(self) {
        self.out.update(b"]");
    }
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        chain: None,
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
            grant: None,
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

/// [`AuditQuery`] with owned parts (it crosses onto the blocking pool or into an async client).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub within: Option<Vec<String>>,
    pub connector: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub decision: Option<String>,
    pub principal: Option<String>,
    pub limit: usize,
}

impl AuditFilter {
    pub fn as_query(&self) -> AuditQuery<'_> {
        AuditQuery {
            within: self.within.as_deref(),
            connector: self.connector.as_deref(),
            since: self.since.as_deref(),
            until: self.until.as_deref(),
            decision: self.decision.as_deref(),
            principal: self.principal.as_deref(),
            limit: self.limit,
        }
    }
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

/// The decision and reason of the newest row of `invocation` among the connector's latest
/// 1,000 rows (a caller that just wrote it finds it there without an index on invocations).
pub fn latest_of(
    conn: &Connection,
    connector: &str,
    invocation: &str,
) -> anyhow::Result<Option<(String, String)>> {
    let row = conn
        .query_row(
            "SELECT decision, reason FROM (SELECT seq, decision, reason, invocation FROM audit
               WHERE connector = ?1 ORDER BY seq DESC LIMIT 1000)
             WHERE invocation = ?2 ORDER BY seq DESC LIMIT 1",
            params![connector, invocation],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row)
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
    let mut walk = ChainWalk::default();
    while let Some(r) = rows.next()? {
        walk.row(&read_row(r)?);
    }
    let head: Option<(i64, String)> = conn
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .ok();
    Ok(walk.finish(head))
}

/// One chain's check, fed its rows in sequence order (both backends walk chains with it).
pub(crate) struct ChainWalk {
    expected_seq: i64,
    prev: String,
    count: u64,
    problems: Vec<String>,
}

impl Default for ChainWalk {
    fn default() -> Self {
        ChainWalk {
            expected_seq: 1,
            prev: GENESIS.to_string(),
            count: 0,
            problems: Vec::new(),
        }
    }
}

impl ChainWalk {
    /// Checks the next row against the one before it and against its own hash.
    pub(crate) fn row(&mut self, row: &AuditRow) {
        self.count += 1;
        let expected_seq = self.expected_seq;
        if row.seq != expected_seq {
            if row.seq > expected_seq {
                self.problems.push(format!(
                    "rows {}..={} are missing (deleted)",
                    expected_seq,
                    row.seq - 1
                ));
            } else {
                self.problems
                    .push(format!("row {} is out of sequence (inserted)", row.seq));
            }
        }
        if row.prev_hash != self.prev {
            self.problems.push(format!(
                "row {}: previous-hash does not match the row before it (a row was inserted, deleted or edited)",
                row.seq
            ));
        }
        let h = row_hash(row.seq, &row.ts, &row.event, &row.prev_hash);
        if h != row.hash {
            self.problems.push(format!(
                "row {}: contents do not match its hash (edited)",
                row.seq
            ));
        }
        self.prev = row.hash.clone();
        self.expected_seq = row.seq + 1;
    }

    /// The end of the chain against its stored head.
    pub(crate) fn finish(mut self, head: Option<(i64, String)>) -> Verification {
        let expected_seq = self.expected_seq;
        match head {
            Some((seq, hash)) if seq != expected_seq - 1 || hash != self.prev => {
                self.problems.push(format!(
                    "the chain head records row {seq} but the log ends at row {} (rows deleted at the end, or the head was edited)",
                    expected_seq - 1
                ));
            }
            Some(_) => {}
            None if self.count > 0 => self.problems.push("the chain head is missing".into()),
            None => {}
        }
        Verification {
            rows: self.count,
            problems: self.problems,
        }
    }
}

/// Data the store committed from a sync page whose audit rows are not in the log: what a page
/// commit names as the invocation that fetched it (documents, a stream's cursor) has no
/// `invoke` row. Writers commit a page only after its rows are durable, and the `invoke` row is
/// the invocation's last (the writer keeps order), so each finding is a lost or removed row.
/// Data committed before the store recorded invocations is not checked.
pub fn unaudited_data(conn: &Connection) -> anyhow::Result<Vec<String>> {
    let mut invoked = std::collections::HashSet::new();
    let mut stmt = conn.prepare("SELECT DISTINCT invocation FROM audit WHERE event = 'invoke'")?;
    for id in stmt.query_map([], |r| r.get::<_, String>(0))? {
        invoked.insert(id?);
    }
    let mut problems = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT invocation, connector, COALESCE(stream, '?'), COUNT(*), MAX(synced_at)
         FROM documents WHERE invocation IS NOT NULL GROUP BY invocation ORDER BY 5",
    )?;
    let pages = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    for page in pages {
        let (invocation, connector, stream, n, at) = page?;
        if !invoked.contains(&invocation) {
            problems.push(format!(
                "{connector}/{stream}: {n} document(s) committed at {} by sync call {invocation}, \
                 which has no audit row (the requests that fetched them are not in the log)",
                at.unwrap_or_default()
            ));
        }
    }
    let mut stmt = conn.prepare(
        "SELECT cursor_invocation, connector, stream, cursor_updated_at FROM sync_state
         WHERE cursor_invocation IS NOT NULL",
    )?;
    let cursors = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    for c in cursors {
        let (invocation, connector, stream, at) = c?;
        if !invoked.contains(&invocation) {
            problems.push(format!(
                "{connector}/{stream}: the cursor committed at {} came from sync call \
                 {invocation}, which has no audit row",
                at.unwrap_or_default()
            ));
        }
    }
    Ok(problems)
}

/// What a failed verification found, ordered by how much it says: the exit code of `audit
/// verify` is the most serious one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tamper {
    /// No checkpoint file, no valid checkpoint in it, or no key to check them with.
    CheckpointMissing,
    /// Synced data whose audit rows are not in the log ([`unaudited_data`]).
    Unaudited,
    /// A row edited, inserted or deleted inside the chain, or the head out of step.
    ChainBroken,
    /// The log ends before a row a signed checkpoint (or `--expect`) records.
    Truncated,
    /// A row's hash differs from what a signed checkpoint (or `--expect`) records, or a
    /// checkpoint's signature does not verify.
    Rewritten,
}

impl Tamper {
    /// `audit verify` exit codes (docs/security.md): 3 chain broken, 4 truncated, 5 rewritten,
    /// 6 checkpoint missing.
    pub fn exit_code(self) -> u8 {
        match self {
            Tamper::ChainBroken => 3,
            Tamper::Truncated => 4,
            Tamper::Rewritten => 5,
            Tamper::CheckpointMissing => 6,
            Tamper::Unaudited => 7,
        }
    }
}

/// The log against its signed checkpoints and an optional head kept elsewhere.
#[derive(Debug, Default)]
pub struct AnchorCheck {
    /// Checkpoints whose signature verifies.
    pub valid_checkpoints: usize,
    pub newest: Option<Checkpoint>,
    /// Rows after the newest valid checkpoint (written since; not yet anchored).
    pub unanchored_rows: i64,
    pub problems: Vec<(Tamper, String)>,
}

/// Checks the log against every checkpoint in the data directory (signatures under `pinned`,
/// or the directory's own key) and against `expect` (`(seq, hash)` kept elsewhere).
pub fn check_anchor(
    conn: &Connection,
    data_dir: &Path,
    pinned: Option<VerifyingKey>,
    expect: Option<(i64, &str)>,
) -> anyhow::Result<AnchorCheck> {
    let mut out = AnchorCheck::default();
    let last = last_seq(conn)?;
    let row_hash_at = |seq: i64| -> anyhow::Result<Option<String>> {
        Ok(conn
            .query_row("SELECT hash FROM audit WHERE seq = ?1", [seq], |r| r.get(0))
            .optional()?)
    };
    let compare = |seq: i64, hash: &str, source: &str, out: &mut AnchorCheck| {
        let stored = if seq > 0 && seq <= last {
            row_hash_at(seq)?
        } else {
            None
        };
        out.problems
            .extend(anchor_problem(seq, hash, last, stored.as_deref(), source));
        Ok::<(), anyhow::Error>(())
    };
    let key = match pinned {
        Some(k) => Some(k),
        None => checkpoint::local_public_key(data_dir)?,
    };
    match key {
        None if last > 0 => out.problems.push((
            Tamper::CheckpointMissing,
            format!(
                "no checkpoint signing key ({}) to check checkpoints with; pass --public-key",
                checkpoint::KEY_FILE
            ),
        )),
        None => {}
        Some(key) => match checkpoint::read_all(data_dir, &key)? {
            None if last > 0 => out.problems.push((
                Tamper::CheckpointMissing,
                format!(
                    "the checkpoint file {} is missing",
                    checkpoint::CHECKPOINT_FILE
                ),
            )),
            None => {}
            Some((all, bad_lines)) => {
                for n in bad_lines {
                    out.problems.push((
                        Tamper::Rewritten,
                        format!("checkpoint file line {n} is not a checkpoint"),
                    ));
                }
                let mut seen = std::collections::HashSet::new();
                for (cp, ok) in all {
                    if !ok {
                        out.problems.push((
                            Tamper::Rewritten,
                            format!(
                                "the checkpoint of row {} signed at {} does not verify under key {} (forged or edited)",
                                cp.seq,
                                cp.time,
                                checkpoint::key_id(&key)
                            ),
                        ));
                        continue;
                    }
                    out.valid_checkpoints += 1;
                    if seen.insert((cp.seq, cp.hash.clone())) {
                        compare(
                            cp.seq,
                            &cp.hash,
                            &format!("the checkpoint signed at {}", cp.time),
                            &mut out,
                        )?;
                    }
                    if out.newest.as_ref().is_none_or(|n| cp.seq > n.seq) {
                        out.newest = Some(cp);
                    }
                }
                if out.valid_checkpoints == 0 && last > 0 {
                    out.problems.push((
                        Tamper::CheckpointMissing,
                        "the checkpoint file holds no valid checkpoint".into(),
                    ));
                }
            }
        },
    }
    if let Some((seq, hash)) = expect {
        compare(seq, hash, "the expected head (--expect)", &mut out)?;
    }
    out.unanchored_rows = (last - out.newest.as_ref().map_or(0, |n| n.seq)).max(0);
    Ok(out)
}

/// What a signed (or expected) head `seq`/`hash` says about a chain ending at row `last`
/// whose row `seq` has the hash `stored`: rows cut from the tail, a rewritten row, or nothing.
pub(crate) fn anchor_problem(
    seq: i64,
    hash: &str,
    last: i64,
    stored: Option<&str>,
    source: &str,
) -> Option<(Tamper, String)> {
    if seq <= 0 {
        return None;
    }
    if seq > last {
        return Some((
            Tamper::Truncated,
            format!(
                "{source} records row {seq}, but the log ends at row {last}: rows {}..={seq} were cut from the tail",
                last + 1
            ),
        ));
    }
    match stored {
        Some(h) if h == hash => None,
        Some(_) => Some((
            Tamper::Rewritten,
            format!("row {seq} does not have the hash {source} records: the log was rewritten"),
        )),
        // A gap inside the chain: the chain check reports it.
        None => None,
    }
}

/// A head kept elsewhere (`--expect`): `SEQ:HASH` of the SQLite chain, or `CHAIN:SEQ:HASH` of
/// a PostgreSQL writer's chain (chain ids hold colons themselves; the last two fields are the
/// row and its hash).
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedHead {
    pub chain: Option<String>,
    pub seq: i64,
    pub hash: String,
}

/// Parses `[CHAIN:]SEQ:HASH` (as `--expect` takes it).
pub fn parse_expected(s: &str) -> Result<ExpectedHead, String> {
    let mut parts = s.rsplitn(3, ':');
    let (hash, seq) = match (parts.next(), parts.next()) {
        (Some(hash), Some(seq)) => (hash, seq),
        _ => return Err(format!("`{s}` is not SEQ:HASH or CHAIN:SEQ:HASH")),
    };
    let chain = parts.next().map(str::to_string);
    let (seq, hash) = parse_expected_head(&format!("{seq}:{hash}"))?;
    Ok(ExpectedHead { chain, seq, hash })
}

/// Parses `SEQ:HASH` (the SQLite chain's head).
pub fn parse_expected_head(s: &str) -> Result<(i64, String), String> {
    let (seq, hash) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not SEQ:HASH"))?;
    let seq: i64 = seq
        .trim()
        .parse()
        .map_err(|_| format!("`{seq}` is not a row number"))?;
    let hash = hash.trim().to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`{hash}` is not a SHA-256 hex hash"));
    }
    Ok((seq, hash))
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
    fn synced_data_whose_invocation_has_no_invoke_row_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let w = AuditWriter::start(dir.path(), Scrubber::new()).unwrap();
        w.log().record(AuditEvent {
            event: "invoke".into(),
            decision: "ok".into(),
            ..ev(1)
        });
        w.log().flush();
        let mut conn = crate::store::open(dir.path()).unwrap();
        let doc = |id: &str| crate::model::Document {
            id: id.into(),
            kind: "page".into(),
            title: "t".into(),
            body: String::new(),
            url: None,
            updated_at: String::new(),
            metadata: serde_json::json!({}).into(),
            acl: Vec::new(),
        };
        let commit = |conn: &mut Connection, inv: &str, id: &str| {
            let tx = conn.transaction().unwrap();
            crate::store::documents::apply_stream_page(
                &tx,
                "c",
                Some("pages"),
                Some(inv),
                &[doc(id)],
                &[],
                "2026-12-03T00:00:00.000Z",
            )
            .unwrap();
            let counts = crate::store::sync_state::PageCounts::default();
            crate::store::sync_state::commit_cursor(
                &tx,
                "c",
                "pages",
                Some("k"),
                Some(inv),
                counts,
                "t",
            )
            .unwrap();
            tx.commit().unwrap();
        };
        commit(&mut conn, "inv1", "a");
        assert!(unaudited_data(&conn).unwrap().is_empty());
        // Documents committed before invocations were recorded are not judged.
        conn.execute("INSERT INTO documents (connector, kind, id, title, body, acl, metadata, updated_at, synced_at) VALUES ('c', 'page', 'old', '', '', '[]', '{}', '', '')", [])
            .unwrap();
        assert!(unaudited_data(&conn).unwrap().is_empty());
        commit(&mut conn, "inv9", "b");
        let found = unaudited_data(&conn).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("c/pages: 1 document(s)") && found[0].contains("inv9"));
        assert!(found[1].contains("cursor") && found[1].contains("inv9"));
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
        assert_eq!(e.principal, None);
        assert_eq!(
            row_hash(1, "t", &e, GENESIS),
            hash_through_a_value(1, "t", &e, GENESIS)
        );
    }

    /// The hash as it was first written: the columns built into a `Value` array, then its text.
    fn hash_through_a_value(seq: i64, ts: &str, e: &AuditEvent, prev: &str) -> String {
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

    #[test]
    fn the_streamed_hash_is_the_hash_of_the_value_text_for_every_kind_of_column() {
        let texts = [
            "",
            "plain",
            "quote \" and backslash \\ and / slash",
            "controls \u{0}\u{1f}\n\r\t\u{7f}",
            "unicode é 漢字 🚀 \u{2028}",
            "path/with?query=1&x=%20",
        ];
        let latencies = [
            None,
            Some(0.0),
            Some(-0.0),
            Some(1.0),
            Some(0.001),
            Some(123456.789),
            Some(1e21),
            Some(5e-324),
            Some(f64::NAN),
            Some(f64::INFINITY),
        ];
        let mut n = 0;
        for (i, text) in texts.iter().enumerate() {
            for (j, latency) in latencies.iter().enumerate() {
                let some = |s: &str| ((i + j) % 3 != 0).then(|| s.to_string());
                let e = AuditEvent {
                    connector: text.to_string(),
                    invocation: format!("inv-{i}-{j}"),
                    event: "http".into(),
                    decision: text.to_string(),
                    reason: text.repeat(j),
                    method: some("GET"),
                    scheme: some(text),
                    host: some("example.com"),
                    port: ((i + j) % 2 == 0).then_some(u16::MAX),
                    path: some(text),
                    status: (j % 2 == 1).then_some(200 + i as u16),
                    latency_ms: *latency,
                    bytes: (j % 3 == 1).then_some(u64::MAX - i as u64),
                    principal: ((i + j) % 2 == 1).then(|| format!("token:{text}")),
                    grant: Some("not hashed".into()),
                };
                for (seq, ts) in [
                    (i64::MIN, *text),
                    (0, "2026-12-06T04:00:00.000Z"),
                    (i64::MAX, "t"),
                ] {
                    assert_eq!(
                        row_hash(seq, ts, &e, GENESIS),
                        hash_through_a_value(seq, ts, &e, GENESIS),
                        "{e:?} at {seq} {ts:?}"
                    );
                    n += 1;
                }
            }
        }
        assert_eq!(n, texts.len() * latencies.len() * 3);
    }

    /// Rewrites row `seq`'s reason and recomputes the whole chain and head, as an attacker with
    /// the database but not the signing key would.
    fn rewrite_and_rechain(c: &Connection, seq: i64) {
        c.execute(
            "UPDATE audit SET reason = 'nothing to see' WHERE seq = ?1",
            [seq],
        )
        .unwrap();
        let rows = after(c, 0, None).unwrap();
        let mut prev = GENESIS.to_string();
        for r in rows {
            let h = row_hash(r.seq, &r.ts, &r.event, &prev);
            c.execute(
                "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
                params![prev, h, r.seq],
            )
            .unwrap();
            prev = h;
        }
        c.execute("UPDATE audit_head SET hash = ?1 WHERE id = 1", [&prev])
            .unwrap();
    }

    fn kinds(a: &AnchorCheck) -> Vec<Tamper> {
        a.problems.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn a_clean_stop_signs_the_head_and_an_untouched_log_is_anchored() {
        let (d, c) = logged(6);
        let a = check_anchor(&c, d.path(), None, None).unwrap();
        assert!(a.problems.is_empty(), "{:?}", a.problems);
        assert_eq!(a.newest.as_ref().map(|n| n.seq), Some(6));
        assert_eq!(a.unanchored_rows, 0);
    }

    #[test]
    fn rows_cut_from_the_tail_with_the_head_updated_are_reported_as_truncation() {
        let (d, c) = logged(6);
        let h4: String = c
            .query_row("SELECT hash FROM audit WHERE seq = 4", [], |r| r.get(0))
            .unwrap();
        c.execute("DELETE FROM audit WHERE seq > 4", []).unwrap();
        c.execute(
            "UPDATE audit_head SET seq = 4, hash = ?1 WHERE id = 1",
            [&h4],
        )
        .unwrap();
        // The chain alone cannot see it...
        assert!(verify(&c).unwrap().problems.is_empty());
        // ...the signed checkpoint can.
        let a = check_anchor(&c, d.path(), None, None).unwrap();
        assert_eq!(kinds(&a), vec![Tamper::Truncated], "{:?}", a.problems);
        assert!(a.problems[0].1.contains("rows 5..=6"), "{:?}", a.problems);
    }

    #[test]
    fn a_rewritten_and_rechained_log_is_reported_as_rewritten() {
        let (d, c) = logged(6);
        rewrite_and_rechain(&c, 2);
        assert!(verify(&c).unwrap().problems.is_empty());
        let a = check_anchor(&c, d.path(), None, None).unwrap();
        assert_eq!(kinds(&a), vec![Tamper::Rewritten], "{:?}", a.problems);
        // Re-signing needs the key: an edited checkpoint line does not verify.
        let file = d.path().join(checkpoint::CHECKPOINT_FILE);
        let new_head: String = c
            .query_row("SELECT hash FROM audit_head", [], |r| r.get(0))
            .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let old_head = a.newest.unwrap().hash;
        std::fs::write(&file, text.replace(&old_head, &new_head)).unwrap();
        let a = check_anchor(&c, d.path(), None, None).unwrap();
        assert!(
            a.problems
                .iter()
                .any(|(k, m)| *k == Tamper::Rewritten && m.contains("does not verify")),
            "{:?}",
            a.problems
        );
    }

    #[test]
    fn a_deleted_checkpoint_file_or_key_is_reported_as_missing() {
        let (d, c) = logged(3);
        std::fs::remove_file(d.path().join(checkpoint::CHECKPOINT_FILE)).unwrap();
        let a = check_anchor(&c, d.path(), None, None).unwrap();
        assert_eq!(kinds(&a), vec![Tamper::CheckpointMissing]);
        std::fs::remove_file(d.path().join(checkpoint::KEY_FILE)).unwrap();
        let a = check_anchor(&c, d.path(), None, None).unwrap();
        assert_eq!(kinds(&a), vec![Tamper::CheckpointMissing]);
    }

    #[test]
    fn a_key_swapped_in_the_data_dir_fails_against_a_pinned_public_key() {
        let (d, c) = logged(3);
        let pinned = checkpoint::local_public_key(d.path()).unwrap().unwrap();
        // An attacker replaces key and checkpoints with their own.
        std::fs::remove_file(d.path().join(checkpoint::KEY_FILE)).unwrap();
        std::fs::remove_file(d.path().join(checkpoint::CHECKPOINT_FILE)).unwrap();
        let forger = CheckpointSigner::open(d.path(), Sink::None).unwrap();
        let (seq, hash) = read_head(&c).unwrap();
        forger.checkpoint(seq, &hash).unwrap();
        assert!(
            check_anchor(&c, d.path(), None, None)
                .unwrap()
                .problems
                .is_empty()
        );
        let a = check_anchor(&c, d.path(), Some(pinned), None).unwrap();
        assert!(kinds(&a).contains(&Tamper::Rewritten), "{:?}", a.problems);
    }

    #[test]
    fn an_expected_head_kept_elsewhere_catches_truncation_and_rewrites() {
        let (d, c) = logged(4);
        let (seq, hash) = read_head(&c).unwrap();
        let ok = check_anchor(&c, d.path(), None, Some((seq, &hash))).unwrap();
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        let a = check_anchor(&c, d.path(), None, Some((seq, &"0".repeat(64)))).unwrap();
        assert_eq!(kinds(&a), vec![Tamper::Rewritten]);
        let a = check_anchor(&c, d.path(), None, Some((seq + 3, &hash))).unwrap();
        assert_eq!(kinds(&a), vec![Tamper::Truncated]);
        assert!(parse_expected_head("4:zz").is_err());
        assert_eq!(
            parse_expected_head(&format!("{seq}:{hash}")).unwrap(),
            (seq, hash.clone())
        );
    }

    #[test]
    fn an_expected_head_may_name_a_chain_whose_id_holds_colons() {
        let hash = "ab".repeat(32);
        assert_eq!(
            parse_expected(&format!("7:{hash}")).unwrap(),
            ExpectedHead {
                chain: None,
                seq: 7,
                hash: hash.clone()
            }
        );
        assert_eq!(
            parse_expected(&format!("host:42:boot:01j:7:{hash}")).unwrap(),
            ExpectedHead {
                chain: Some("host:42:boot:01j".into()),
                seq: 7,
                hash
            }
        );
        assert!(parse_expected("host:x:7").is_err());
    }

    #[test]
    fn the_writer_signs_every_n_rows() {
        let dir = tempfile::tempdir().unwrap();
        let settings = AuditSettings {
            checkpoint_rows: 5,
            checkpoint_sink: Sink::None,
            ..AuditSettings::default()
        };
        let w = AuditWriter::start_with(dir.path(), Scrubber::new(), &settings).unwrap();
        for i in 0..12 {
            w.log().record(ev(i));
            // One row per batch, so the count crosses N at a known row.
            w.log().flush();
        }
        let key = checkpoint::local_public_key(dir.path()).unwrap().unwrap();
        let (all, _) = checkpoint::read_all(dir.path(), &key).unwrap().unwrap();
        let seqs: Vec<i64> = all.iter().map(|(c, _)| c.seq).collect();
        assert_eq!(seqs, vec![5, 10]);
        drop(w);
        let (all, _) = checkpoint::read_all(dir.path(), &key).unwrap().unwrap();
        assert_eq!(
            all.last().map(|(c, _)| c.seq),
            Some(12),
            "a clean stop signs the head"
        );
    }

    #[test]
    fn fsync_durability_makes_the_writer_sync_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let level = |d| -> i64 {
            let c = writer_connection(dir.path(), d).unwrap();
            c.pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap()
        };
        // SQLite's levels: 1 = NORMAL, 2 = FULL.
        assert_eq!(level(Durability::Normal), 1);
        assert_eq!(level(Durability::Fsync), 2);
    }

    #[test]
    fn a_log_that_cannot_be_written_is_unavailable_keeps_its_rows_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let settings = AuditSettings {
            checkpoint_sink: Sink::None,
            ..AuditSettings::default()
        };
        let w = AuditWriter::start_with(dir.path(), Scrubber::new(), &settings).unwrap();
        let log = w.log();
        log.record(ev(0));
        log.flush_durable().expect("a writable log");
        // Every insert now fails, as on a full disk.
        let c = crate::store::open(dir.path()).unwrap();
        c.execute_batch(
            "CREATE TRIGGER full BEFORE INSERT ON audit BEGIN SELECT RAISE(FAIL, 'disk is full'); END;",
        )
        .unwrap();
        log.record(ev(1));
        let e = log
            .flush_durable()
            .expect_err("rows that cannot be written are not durable");
        assert!(e.to_string().contains("audit unavailable"), "{e}");
        assert!(!log.available());
        assert!(log.flush_durable().is_err(), "still unavailable");
        // Space is back: the writer recovers by itself and the held-back row is written.
        c.execute_batch("DROP TRIGGER full;").unwrap();
        let t = std::time::Instant::now();
        while !log.available() && t.elapsed() < std::time::Duration::from_secs(20) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(log.available(), "the log did not recover");
        log.flush_durable().expect("durable again");
        let v = verify(&c).unwrap();
        assert_eq!(v.rows, 2, "no row lost");
    }

    #[test]
    fn a_full_queue_makes_the_recorder_wait_and_loses_no_row() {
        let dir = tempfile::tempdir().unwrap();
        let settings = AuditSettings {
            queue_rows: 4,
            checkpoint_sink: Sink::None,
            ..AuditSettings::default()
        };
        let w = AuditWriter::start_with(dir.path(), Scrubber::new(), &settings).unwrap();
        let log = w.log();
        for i in 0..500 {
            log.record(ev(i));
        }
        log.flush();
        assert!(log.queue_full_waits() > 0, "the queue never filled");
        let c = crate::store::open(dir.path()).unwrap();
        assert_eq!(verify(&c).unwrap().rows, 500);
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
