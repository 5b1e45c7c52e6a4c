//! The audit log on PostgreSQL: one hash chain per writing process.
//!
//! Why per writer and not one chain per tenant (or one global chain): every daemon writes rows
//! for every tenant, all the time, and a single chain would make every daemon's batch wait for
//! one row lock (the chain head) held across a network round trip. With one chain per process
//! each writer appends to its own head without waiting for the others, and each chain verifies
//! on its own with exactly the SQLite scheme (same columns, same `row_hash`, the same genesis).
//! The chain id is the process's lease owner name (`HOST:PID:BOOT:RANDOM`, see
//! `store/leases.rs`): a restarted daemon starts a new chain, so a chain never has two live
//! writers. Should two writers share an id anyway, the head row lock (`FOR UPDATE`) serialises
//! them and the chain stays whole.
//!
//! Merge rule for readers: rows are shown in the order (ts, chain, seq). `ts` is the time the
//! row was queued (RFC 3339 UTC with milliseconds, so text order is time order); rows of one
//! chain keep their chain order because a writer's times never go backwards by more than the
//! clock's own steps, and `seq` breaks ties within a millisecond. The merged order is for
//! reading only: what is verified is each chain by itself.
//!
//! Durability: a batch is one transaction, and the writer answers a waiting
//! [`crate::store::audit::AuditLog::flush_durable`] only after PostgreSQL acknowledged the
//! commit, so a daemon killed mid-batch loses only rows nobody was told are durable (the batch
//! is rolled back whole). `[audit] durability = "fsync"` also sets `synchronous_commit = on` for
//! the writer's session whatever the server default is.

use std::collections::BTreeMap;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use tokio_postgres::{Client, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgStore;
use crate::store::audit::{
    AnchorCheck, AuditEvent, AuditFilter, AuditRow, ChainSink, ChainWalk, Durability, GENESIS,
    Tamper, Verification, anchor_problem, row_hash,
};
use crate::store::checkpoint::{self, Checkpoint};

/// How long one append may take before the writer counts it as failed and retries.
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Rows read per round trip while verifying a chain.
const VERIFY_PAGE: i64 = 10_000;

const COLUMNS: &str = "chain, seq, ts, connector, invocation, event, decision, reason, method, \
    scheme, host, port, path, status, latency_ms, bytes, prev_hash, hash, principal";

/// The writer's end: a connection of its own (outside the pool, so a busy pool never holds
/// back audit rows), driven by a private single-thread runtime on the writer's thread.
pub struct ChainWriter {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    chain: String,
    durability: Durability,
    /// Made on the writer thread at first use (a runtime must not be dropped on an async one).
    rt: Option<tokio::runtime::Runtime>,
    client: Option<Client>,
}

impl ChainWriter {
    pub fn new(pg: &PgStore, chain: &str, durability: Durability) -> anyhow::Result<ChainWriter> {
        anyhow::ensure!(!chain.is_empty(), "an audit chain needs a name");
        Ok(ChainWriter {
            config: pg.config().clone(),
            tls: pg.tls(),
            chain: chain.to_string(),
            durability,
            rt: None,
            client: None,
        })
    }

    fn runtime(&mut self) -> anyhow::Result<&tokio::runtime::Runtime> {
        if self.rt.is_none() {
            self.rt = Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?,
            );
        }
        self.rt
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no runtime for the audit writer"))
    }

    /// Runs `f` with a live connection (a new one when the last broke), under the timeout.
    fn with_client<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut Client, &str) -> Result<T, tokio_postgres::Error>,
    ) -> anyhow::Result<T> {
        let config = self.config.clone();
        let tls = self.tls.clone();
        let durability = self.durability;
        let mut client = self.client.take().filter(|c| !c.is_closed());
        let chain = self.chain.clone();
        let rt = self.runtime()?;
        let (client, out) = rt.block_on(async move {
            let work = async {
                let mut c = match client.take() {
                    Some(c) => c,
                    None => connect(&config, tls, durability).await?,
                };
                let out = f(&mut c, &chain).await;
                Ok::<_, tokio_postgres::Error>((c, out))
            };
            match tokio::time::timeout(APPEND_TIMEOUT, work).await {
                Ok(Ok((c, out))) => (Some(c), out.map_err(anyhow::Error::from)),
                Ok(Err(e)) => (None, Err(anyhow::Error::from(e))),
                Err(_) => (
                    None,
                    Err(anyhow::anyhow!(
                        "PostgreSQL did not answer within {}s",
                        APPEND_TIMEOUT.as_secs()
                    )),
                ),
            }
        });
        self.client = client;
        out
    }
}

async fn connect(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
    durability: Durability,
) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("audit writer's PostgreSQL connection ended: {e}");
        }
    });
    if durability == Durability::Fsync {
        client.batch_execute("SET synchronous_commit = on").await?;
    }
    Ok(client)
}

impl ChainSink for ChainWriter {
    fn chain(&self) -> Option<String> {
        Some(self.chain.clone())
    }

    fn keep_checkpoint(&mut self, cp: &Checkpoint) -> anyhow::Result<()> {
        self.with_client(async |c, chain| {
            c.execute(
                "INSERT INTO audit_checkpoints (chain, seq, hash, time, signature, key_id)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[
                    &chain,
                    &cp.seq,
                    &cp.hash,
                    &cp.time,
                    &cp.signature,
                    &cp.key_id,
                ],
            )
            .await
            .map(|_| ())
        })
    }

    fn newest_checkpoint(&mut self) -> Option<(i64, String)> {
        self.with_client(async |c, chain| {
            let row = c
                .query_opt(
                    "SELECT seq, hash FROM audit_checkpoints WHERE chain = $1
                     ORDER BY seq DESC, time DESC LIMIT 1",
                    &[&chain],
                )
                .await?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
        .ok()
        .flatten()
    }

    fn head(&mut self) -> Option<(i64, String)> {
        self.with_client(async |c, chain| {
            let row = c
                .query_opt(
                    "SELECT seq, hash FROM audit_heads WHERE chain = $1",
                    &[&chain],
                )
                .await?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
        .ok()
        .flatten()
    }

    fn append(&mut self, batch: &[(String, Box<AuditEvent>)]) -> anyhow::Result<(i64, String)> {
        self.with_client(async |c, chain| append(c, chain, batch).await)
    }
}

/// Appends a batch after the chain's head, in one transaction holding the head's row lock.
async fn append(
    client: &mut Client,
    chain: &str,
    batch: &[(String, Box<AuditEvent>)],
) -> Result<(i64, String), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let now = crate::store::now_rfc3339();
    tx.execute(
        "INSERT INTO audit_heads (chain, seq, hash, updated_at) VALUES ($1, 0, $2, $3)
         ON CONFLICT (chain) DO NOTHING",
        &[&chain, &GENESIS, &now],
    )
    .await?;
    let head = tx
        .query_one(
            "SELECT seq, hash FROM audit_heads WHERE chain = $1 FOR UPDATE",
            &[&chain],
        )
        .await?;
    let (mut seq, mut prev): (i64, String) = (head.get(0), head.get(1));
    let n = batch.len();
    let mut cols = Columns::with_capacity(n);
    for (ts, e) in batch {
        seq += 1;
        let hash = row_hash(seq, ts, e, &prev);
        cols.push(seq, ts, e, &prev, &hash);
        prev = hash;
    }
    tx.execute(
        "INSERT INTO audit (chain, seq, ts, connector, invocation, event, decision, reason,
           method, scheme, host, port, path, status, latency_ms, bytes, prev_hash, hash, principal)
         SELECT $1::text, u.* FROM UNNEST($2::int8[], $3::text[], $4::text[], $5::text[],
           $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int4[],
           $13::text[], $14::int4[], $15::float8[], $16::int8[], $17::text[], $18::text[],
           $19::text[]) AS u",
        &[
            &chain,
            &cols.seq,
            &cols.ts,
            &cols.connector,
            &cols.invocation,
            &cols.event,
            &cols.decision,
            &cols.reason,
            &cols.method,
            &cols.scheme,
            &cols.host,
            &cols.port,
            &cols.path,
            &cols.status,
            &cols.latency_ms,
            &cols.bytes,
            &cols.prev_hash,
            &cols.hash,
            &cols.principal,
        ],
    )
    .await?;
    tx.execute(
        "UPDATE audit_heads SET seq = $2, hash = $3, updated_at = $4 WHERE chain = $1",
        &[&chain, &seq, &prev, &now],
    )
    .await?;
    tx.commit().await?;
    Ok((seq, prev))
}

/// A batch as one array per column (one INSERT … UNNEST instead of a round trip per row).
#[derive(Default)]
struct Columns {
    seq: Vec<i64>,
    ts: Vec<String>,
    connector: Vec<String>,
    invocation: Vec<String>,
    event: Vec<String>,
    decision: Vec<String>,
    reason: Vec<String>,
    method: Vec<Option<String>>,
    scheme: Vec<Option<String>>,
    host: Vec<Option<String>>,
    port: Vec<Option<i32>>,
    path: Vec<Option<String>>,
    status: Vec<Option<i32>>,
    latency_ms: Vec<Option<f64>>,
    bytes: Vec<Option<i64>>,
    prev_hash: Vec<String>,
    hash: Vec<String>,
    principal: Vec<Option<String>>,
}

impl Columns {
    fn with_capacity(n: usize) -> Columns {
        Columns {
            seq: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            ..Default::default()
        }
    }

    fn push(&mut self, seq: i64, ts: &str, e: &AuditEvent, prev: &str, hash: &str) {
        self.seq.push(seq);
        self.ts.push(ts.to_string());
        self.connector.push(e.connector.clone());
        self.invocation.push(e.invocation.clone());
        self.event.push(e.event.clone());
        self.decision.push(e.decision.clone());
        self.reason.push(e.reason.clone());
        self.method.push(e.method.clone());
        self.scheme.push(e.scheme.clone());
        self.host.push(e.host.clone());
        self.port.push(e.port.map(i32::from));
        self.path.push(e.path.clone());
        self.status.push(e.status.map(i32::from));
        self.latency_ms.push(e.latency_ms);
        self.bytes.push(e.bytes.map(|b| b as i64));
        self.prev_hash.push(prev.to_string());
        self.hash.push(hash.to_string());
        self.principal.push(e.principal.clone());
    }
}

fn read_row(r: &Row) -> AuditRow {
    // Out-of-range numbers can only come from an edited row: they keep a value the hash then
    // rejects rather than failing the whole read.
    let small = |v: Option<i32>| v.map(|n| u16::try_from(n).unwrap_or(u16::MAX));
    AuditRow {
        chain: Some(r.get(0)),
        seq: r.get(1),
        ts: r.get(2),
        event: AuditEvent {
            connector: r.get(3),
            invocation: r.get(4),
            event: r.get(5),
            decision: r.get(6),
            reason: r.get(7),
            method: r.get(8),
            scheme: r.get(9),
            host: r.get(10),
            port: small(r.get(11)),
            path: r.get(12),
            status: small(r.get(13)),
            latency_ms: r.get(14),
            bytes: r.get::<_, Option<i64>>(15).map(|b| b as u64),
            principal: r.get(18),
            grant: None,
        },
        prev_hash: r.get(16),
        hash: r.get(17),
    }
}

impl PgStore {
    /// The latest `limit` rows matching the filters, oldest first, in the merged order
    /// (ts, chain, seq).
    pub async fn audit_query(&self, q: &AuditFilter) -> anyhow::Result<Vec<AuditRow>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM audit
             WHERE ($1::text[] IS NULL OR connector = ANY($1))
               AND ($2::text IS NULL OR connector = $2) AND ($3::text IS NULL OR ts >= $3)
               AND ($4::text IS NULL OR ts < $4) AND ($5::text IS NULL OR decision = $5)
               AND ($6::text IS NULL OR principal = $6)
             ORDER BY ts DESC, chain DESC, seq DESC LIMIT $7"
        );
        let rows = client
            .query(
                &sql,
                &[
                    &q.within,
                    &q.connector,
                    &q.since,
                    &q.until,
                    &q.decision,
                    &q.principal,
                    &(q.limit as i64),
                ],
            )
            .await?;
        let mut rows: Vec<AuditRow> = rows.iter().map(read_row).collect();
        rows.reverse();
        Ok(rows)
    }

    /// The decision and reason of the newest row of `invocation` among the connector's latest
    /// 1,000 rows (as SQLite's `latest_of`).
    pub async fn audit_latest_of(
        &self,
        connector: &str,
        invocation: &str,
    ) -> anyhow::Result<Option<(String, String)>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT decision, reason FROM (SELECT ts, chain, seq, decision, reason, invocation
                   FROM audit WHERE connector = $1 ORDER BY ts DESC, chain DESC, seq DESC
                   LIMIT 1000) AS recent
                 WHERE invocation = $2 ORDER BY ts DESC, chain DESC, seq DESC LIMIT 1",
                &[&connector, &invocation],
            )
            .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// The stored chains with their heads: (chain, seq, hash), by chain id.
    pub async fn audit_heads(&self) -> anyhow::Result<Vec<(String, i64, String)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT chain, seq, hash FROM audit_heads ORDER BY chain",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Walks every chain (each on its own, exactly as the SQLite chain is walked); a problem
    /// names its chain and row. Returns the check and the number of chains.
    pub async fn audit_verify(&self) -> anyhow::Result<(Verification, usize)> {
        let client = self.client().await?;
        let chains: Vec<String> = client
            .query(
                "SELECT chain FROM audit_heads UNION SELECT DISTINCT chain FROM audit ORDER BY 1",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut total = Verification {
            rows: 0,
            problems: Vec::new(),
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM audit WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        for chain in &chains {
            let mut walk = ChainWalk::default();
            let mut after = i64::MIN;
            loop {
                let rows = client.query(&sql, &[chain, &after, &VERIFY_PAGE]).await?;
                for r in &rows {
                    let row = read_row(r);
                    after = row.seq;
                    walk.row(&row);
                }
                if (rows.len() as i64) < VERIFY_PAGE {
                    break;
                }
            }
            let head = client
                .query_opt(
                    "SELECT seq, hash FROM audit_heads WHERE chain = $1",
                    &[chain],
                )
                .await?
                .map(|r| (r.get(0), r.get(1)));
            let v = walk.finish(head);
            total.rows += v.rows;
            total.problems.extend(
                v.problems
                    .into_iter()
                    .map(|p| format!("chain {chain}: {p}")),
            );
        }
        Ok((total, chains.len()))
    }

    /// Every chain against its signed checkpoints (signatures under one of `keys`) and against
    /// `expect`, heads kept elsewhere as (chain, seq, hash). As on SQLite: a checkpoint past
    /// its chain's end is a cut tail, one whose row differs a rewrite, one that does not verify
    /// (or is signed by a key not in `keys`) a forgery; and a chain with rows but no valid
    /// checkpoint had them removed, since every chain is anchored at its genesis first.
    pub async fn audit_check_anchors(
        &self,
        keys: &[VerifyingKey],
        expect: &[(String, i64, String)],
    ) -> anyhow::Result<AnchorCheck> {
        let client = self.client().await?;
        let mut out = AnchorCheck::default();
        let lasts: BTreeMap<String, i64> = client
            .query("SELECT chain, MAX(seq) FROM audit GROUP BY chain", &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let last_of = |chain: &str| lasts.get(chain).copied().unwrap_or(0);
        if keys.is_empty() {
            if lasts.values().any(|&n| n > 0) {
                out.problems.push((
                    Tamper::CheckpointMissing,
                    format!(
                        "no checkpoint signing key ({}) to check checkpoints with; pass --public-key",
                        checkpoint::KEY_FILE
                    ),
                ));
            }
        } else {
            let trusted: BTreeMap<String, &VerifyingKey> =
                keys.iter().map(|k| (checkpoint::key_id(k), k)).collect();
            let rows = client
                .query(
                    "SELECT c.chain, c.seq, c.hash, c.time, c.signature, c.key_id, a.hash
                     FROM audit_checkpoints c
                     LEFT JOIN audit a ON a.chain = c.chain AND a.seq = c.seq
                     ORDER BY c.chain, c.seq, c.time",
                    &[],
                )
                .await?;
            // The newest valid checkpoint's row per chain.
            let mut anchored: BTreeMap<String, i64> = BTreeMap::new();
            for r in &rows {
                let chain: String = r.get(0);
                let cp = Checkpoint {
                    chain: Some(chain.clone()),
                    seq: r.get(1),
                    hash: r.get(2),
                    time: r.get(3),
                    signature: r.get(4),
                    key_id: r.get(5),
                };
                let stored: Option<String> = r.get(6);
                let Some(key) = trusted.get(&cp.key_id) else {
                    out.problems.push((
                        Tamper::Rewritten,
                        format!(
                            "chain {chain}: the checkpoint of row {} signed at {} is signed by key \
                             {}, which is not a trusted key (forged, or a daemon with a key of \
                             its own: give every daemon the same {} or pass each --public-key)",
                            cp.seq,
                            cp.time,
                            cp.key_id,
                            checkpoint::KEY_FILE
                        ),
                    ));
                    continue;
                };
                if !checkpoint::verify_one(&cp, key) {
                    out.problems.push((
                        Tamper::Rewritten,
                        format!(
                            "chain {chain}: the checkpoint of row {} signed at {} does not verify \
                             under key {} (forged or edited)",
                            cp.seq, cp.time, cp.key_id
                        ),
                    ));
                    continue;
                }
                out.valid_checkpoints += 1;
                let source = format!("the checkpoint signed at {}", cp.time);
                if let Some((kind, p)) = anchor_problem(
                    cp.seq,
                    &cp.hash,
                    last_of(&chain),
                    stored.as_deref(),
                    &source,
                ) {
                    out.problems.push((kind, format!("chain {chain}: {p}")));
                }
                let newest = anchored.entry(chain).or_insert(cp.seq);
                *newest = (*newest).max(cp.seq);
                if out.newest.as_ref().is_none_or(|n| cp.time > n.time) {
                    out.newest = Some(cp);
                }
            }
            for (chain, &last) in &lasts {
                match anchored.get(chain) {
                    Some(&seq) => out.unanchored_rows += (last - seq).max(0),
                    None if last > 0 => out.problems.push((
                        Tamper::CheckpointMissing,
                        format!(
                            "chain {chain}: rows 1..={last} but no valid signed checkpoint (its \
                             checkpoints were removed: every chain is anchored before its first row)"
                        ),
                    )),
                    None => {}
                }
            }
        }
        for (chain, seq, hash) in expect {
            let stored: Option<String> = client
                .query_opt(
                    "SELECT hash FROM audit WHERE chain = $1 AND seq = $2",
                    &[chain, seq],
                )
                .await?
                .map(|r| r.get(0));
            let source = "the expected head (--expect)";
            if let Some((kind, p)) =
                anchor_problem(*seq, hash, last_of(chain), stored.as_deref(), source)
            {
                out.problems.push((kind, format!("chain {chain}: {p}")));
            }
        }
        Ok(out)
    }

    /// Data committed from sync pages whose `invoke` row is in no chain (as SQLite's
    /// `unaudited_data`).
    pub async fn audit_unaudited_data(&self) -> anyhow::Result<Vec<String>> {
        let client = self.client().await?;
        let mut problems = Vec::new();
        let pages = client
            .query(
                "SELECT d.invocation, d.connector, COALESCE(d.stream, '?'), COUNT(*), MAX(d.synced_at)
                 FROM documents d WHERE d.invocation IS NOT NULL AND NOT EXISTS
                   (SELECT 1 FROM audit a WHERE a.event = 'invoke' AND a.invocation = d.invocation)
                 GROUP BY d.invocation, d.connector, d.stream ORDER BY 5",
                &[],
            )
            .await?;
        for r in &pages {
            let (invocation, connector, stream): (String, String, String) =
                (r.get(0), r.get(1), r.get(2));
            let (n, at): (i64, Option<String>) = (r.get(3), r.get(4));
            problems.push(format!(
                "{connector}/{stream}: {n} document(s) committed at {} by sync call {invocation}, \
                 which has no audit row (the requests that fetched them are not in the log)",
                at.unwrap_or_default()
            ));
        }
        let cursors = client
            .query(
                "SELECT s.cursor_invocation, s.connector, s.stream, s.cursor_updated_at
                 FROM sync_state s WHERE s.cursor_invocation IS NOT NULL AND NOT EXISTS
                   (SELECT 1 FROM audit a WHERE a.event = 'invoke'
                      AND a.invocation = s.cursor_invocation)
                 ORDER BY s.connector, s.stream",
                &[],
            )
            .await?;
        for r in &cursors {
            let (invocation, connector, stream): (String, String, String) =
                (r.get(0), r.get(1), r.get(2));
            let at: Option<String> = r.get(3);
            problems.push(format!(
                "{connector}/{stream}: the cursor committed at {} came from sync call \
                 {invocation}, which has no audit row",
                at.unwrap_or_default()
            ));
        }
        Ok(problems)
    }
}
