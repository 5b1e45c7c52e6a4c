//! `airlock store copy`: moves a SQLite installation into an empty PostgreSQL store, row for
//! row. Values are copied as stored (token hashes, sealed vault values, cursors, audit hashes), so
//! tokens keep working, the same master key opens the vault, the daemons resume each stream from
//! its cursor, and the SQLite audit chain verifies in PostgreSQL as one chain of its own
//! (`sqlite-import:<database file>`; the row hash and genesis are the same on both backends).
//!
//! Why rows and not the per-area `Store` methods: those mint new ids, times and audit rows
//! (a put is a new change in the feed), and nothing must change in the move. Everything goes in
//! one PostgreSQL transaction, read from one SQLite read transaction (a consistent snapshot):
//! the target gets all of it or nothing.

use anyhow::Context as _;
use rusqlite::types::Value;
use tokio_postgres::types::ToSql;

use super::PgStore;

/// How a SQLite column lands in its PostgreSQL column.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Real,
    Blob,
    /// JSON kept as text in SQLite, JSONB in PostgreSQL.
    Json,
    /// 0/1 in SQLite, BOOLEAN in PostgreSQL.
    Bool,
}

/// One table copied as is: its name (the same on both sides) and the columns both hold.
struct Table {
    area: &'static str,
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// SQLite's order, kept so PostgreSQL's own ids (documents' `rid`) follow it.
    order: &'static str,
    /// The PostgreSQL column is `GENERATED ALWAYS` and takes the SQLite value.
    overriding: bool,
}

use Kind::*;

/// In order of what a move must not lose first.
const TABLES: &[Table] = &[
    Table {
        area: "documents",
        name: "documents",
        columns: &[
            ("connector", Text),
            ("kind", Text),
            ("id", Text),
            ("title", Text),
            ("body", Text),
            ("url", Text),
            ("updated_at", Text),
            ("metadata", Text),
            ("acl", Json),
            ("synced_at", Text),
            ("stream", Text),
            ("invocation", Text),
            ("content_hash", Text),
        ],
        order: "rowid",
        overriding: false,
    },
    Table {
        area: "sync state",
        name: "sync_state",
        columns: &[
            ("connector", Text),
            ("stream", Text),
            ("cursor", Text),
            ("cursor_updated_at", Text),
            ("cursor_invocation", Text),
            ("last_success_at", Text),
            ("last_error", Text),
            ("last_error_at", Text),
            ("resume_after", Text),
            ("last_run_upserts", Int),
            ("last_run_deletes", Int),
        ],
        order: "connector, stream",
        overriding: false,
    },
    Table {
        area: "API tokens",
        name: "api_tokens",
        columns: &[
            ("id", Text),
            ("hash", Text),
            ("principal", Text),
            ("tenant", Text),
            ("groups", Json),
            ("admin", Bool),
            ("proxy", Json),
            ("created_at", Text),
            ("revoked_at", Text),
        ],
        order: "created_at, id",
        overriding: false,
    },
    Table {
        area: "vault secrets",
        name: "secrets",
        columns: &[
            ("name", Text),
            ("nonce", Blob),
            ("ciphertext", Blob),
            ("updated_at", Text),
        ],
        order: "name",
        overriding: false,
    },
    Table {
        area: "approvals",
        name: "approvals",
        columns: &[
            ("id", Text),
            ("created_at", Text),
            ("requested_by", Text),
            ("tenant", Text),
            ("connector", Text),
            ("action", Text),
            ("input", Text),
            ("status", Text),
            ("decided_by", Text),
            ("decided_at", Text),
            ("result", Text),
            ("error", Text),
        ],
        order: "created_at, id",
        overriding: false,
    },
    Table {
        area: "audit rows",
        name: "audit",
        columns: &[
            ("seq", Int),
            ("ts", Text),
            ("connector", Text),
            ("invocation", Text),
            ("event", Text),
            ("decision", Text),
            ("reason", Text),
            ("method", Text),
            ("scheme", Text),
            ("host", Text),
            ("port", Int),
            ("path", Text),
            ("status", Int),
            ("latency_ms", Real),
            ("bytes", Int),
            ("prev_hash", Text),
            ("hash", Text),
            ("principal", Text),
        ],
        order: "seq",
        overriding: false,
    },
    Table {
        area: "change feed",
        name: "changes",
        columns: &[
            ("seq", Int),
            ("connector", Text),
            ("stream", Text),
            ("kind", Text),
            ("id", Text),
            ("op", Text),
            ("acl", Json),
            ("committed_at", Text),
        ],
        order: "seq",
        overriding: true,
    },
    Table {
        area: "change feed pruning",
        name: "changes_meta",
        columns: &[("id", Int), ("pruned_through", Int)],
        order: "id",
        overriding: false,
    },
    Table {
        area: "webhook cursors",
        name: "webhook_cursors",
        columns: &[("webhook", Text), ("cursor", Int)],
        order: "webhook",
        overriding: false,
    },
    Table {
        area: "webhook deliveries",
        name: "webhook_deliveries",
        columns: &[
            ("id", Text),
            ("webhook", Text),
            ("connector", Text),
            ("change_seq", Int),
            ("payload", Text),
            ("status", Text),
            ("attempts", Int),
            ("next_attempt_ms", Int),
            ("last_status", Int),
            ("last_error", Text),
            ("created_at", Text),
            ("delivered_at", Text),
        ],
        order: "created_at, id",
        overriding: false,
    },
    Table {
        area: "push subscriptions",
        name: "hook_subscriptions",
        columns: &[
            ("connector", Text),
            ("id", Text),
            ("resource", Text),
            ("notification_url", Text),
            ("expires_at", Text),
            ("renewed_at", Text),
        ],
        order: "connector",
        overriding: false,
    },
    Table {
        area: "OAuth clients",
        name: "oauth_clients",
        columns: &[
            ("id", Text),
            ("name", Text),
            ("redirect_uris", Text),
            ("created_at", Text),
        ],
        order: "id",
        overriding: false,
    },
    Table {
        area: "OAuth grants",
        name: "oauth_grants",
        columns: &[
            ("id", Text),
            ("client_id", Text),
            ("api_token_id", Text),
            ("scopes", Text),
            ("resource", Text),
            ("created_at", Text),
            ("revoked_at", Text),
            ("revoked_why", Text),
            ("person", Text),
            ("person_tenant", Text),
            ("person_groups", Json),
        ],
        order: "id",
        overriding: false,
    },
    Table {
        area: "OAuth codes",
        name: "oauth_codes",
        columns: &[
            ("hash", Text),
            ("grant_id", Text),
            ("redirect_uri", Text),
            ("code_challenge", Text),
            ("expires_ms", Int),
            ("used_at", Text),
        ],
        order: "hash",
        overriding: false,
    },
    Table {
        area: "OAuth refresh tokens",
        name: "oauth_refresh_tokens",
        columns: &[
            ("hash", Text),
            ("grant_id", Text),
            ("expires_ms", Int),
            ("used_at", Text),
        ],
        order: "hash",
        overriding: false,
    },
    Table {
        area: "OAuth signing key",
        name: "oauth_signing_key",
        columns: &[
            ("id", Int),
            ("nonce", Blob),
            ("ciphertext", Blob),
            ("created_at", Text),
        ],
        order: "id",
        overriding: false,
    },
    Table {
        area: "people's connections",
        name: "user_connections",
        columns: &[
            ("connector", Text),
            ("principal", Text),
            ("nonce", Blob),
            ("ciphertext", Blob),
            ("expires_ms", Int),
            ("scopes", Text),
            ("version", Int),
            ("connected_at", Text),
            ("updated_at", Text),
        ],
        order: "connector, principal",
        overriding: false,
    },
];

/// Rows per area, in the order of `TABLES`.
pub type Counts = Vec<(&'static str, u64)>;

/// The audit chain the SQLite log becomes in PostgreSQL.
pub fn import_chain(db_file: &std::path::Path) -> String {
    format!("sqlite-import:{}", db_file.display())
}

/// Rows per area in the SQLite store.
pub fn sqlite_counts(conn: &rusqlite::Connection) -> anyhow::Result<Counts> {
    TABLES
        .iter()
        .map(|t| {
            let n: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM {}", t.name), [], |r| {
                r.get(0)
            })?;
            Ok((t.area, n as u64))
        })
        .collect()
}

/// Rows per area in the PostgreSQL store (every chain's audit rows together).
pub async fn pg_counts(pg: &PgStore) -> anyhow::Result<Counts> {
    let client = pg.client().await?;
    let mut out = Vec::new();
    for t in TABLES {
        let n: i64 = client
            .query_one(&format!("SELECT COUNT(*) FROM {}", t.name), &[])
            .await?
            .get(0);
        out.push((t.area, n as u64));
    }
    Ok(out)
}

/// Copies every table of the SQLite store `conn` into `pg` in one PostgreSQL transaction, and
/// the audit head as the head of `chain`, anchored by a checkpoint `signer` signs (the caller
/// verified the SQLite log first; SQLite's own checkpoints sign no chain id and stay in its
/// file). Blocking (SQLite); call it off the async threads.
pub fn copy_all(
    conn: &mut rusqlite::Connection,
    pg: &PgStore,
    chain: &str,
    signer: &crate::store::checkpoint::CheckpointSigner,
    rt: &tokio::runtime::Handle,
) -> anyhow::Result<()> {
    // One read transaction: every table from the same moment.
    let snapshot = conn.transaction()?;
    let mut client = rt.block_on(pg.client())?;
    let tx = rt.block_on(client.transaction())?;
    // The caller refused a target with data; a daemon started on it meanwhile would mix its
    // rows with the copy's, so look again inside the transaction.
    for t in TABLES
        .iter()
        .map(|t| t.name)
        .chain(["audit_heads", "audit_checkpoints"])
    {
        let held: bool = rt
            .block_on(tx.query_one(&format!("SELECT EXISTS (SELECT 1 FROM {t})"), &[]))?
            .get(0);
        anyhow::ensure!(
            !held,
            "the target received data in {t} while the copy started"
        );
    }
    for t in TABLES {
        copy_table(&snapshot, &tx, t, chain, rt)
            .with_context(|| format!("copying {} ({})", t.area, t.name))?;
    }
    // The feed's sequence goes on after the highest number SQLite ever gave (AUTOINCREMENT
    // remembers numbers of pruned rows too), so readers' and webhooks' cursors stay valid.
    let last_seq: i64 = snapshot
        .query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)",
            [],
            |r| r.get(0),
        )
        .or_else(|_| {
            snapshot.query_row("SELECT COALESCE(MAX(seq), 0) FROM changes", [], |r| {
                r.get(0)
            })
        })?;
    if last_seq > 0 {
        rt.block_on(tx.execute(
            "SELECT setval(pg_get_serial_sequence('changes', 'seq'), $1)",
            &[&last_seq],
        ))?;
    }
    let head: Option<(i64, String)> = snapshot
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    if let Some((seq, hash)) = head {
        rt.block_on(tx.execute(
            "INSERT INTO audit_heads (chain, seq, hash, updated_at) VALUES ($1, $2, $3, $4)",
            &[&chain, &seq, &hash, &crate::store::now_rfc3339()],
        ))?;
        let cp = signer.sign(Some(chain), seq, &hash);
        rt.block_on(tx.execute(
            "INSERT INTO audit_checkpoints (chain, seq, hash, time, signature, key_id)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &chain,
                &cp.seq,
                &cp.hash,
                &cp.time,
                &cp.signature,
                &cp.key_id,
            ],
        ))?;
    }
    rt.block_on(tx.commit())?;
    snapshot.finish()?;
    Ok(())
}

fn copy_table(
    from: &rusqlite::Connection,
    to: &tokio_postgres::Transaction<'_>,
    t: &Table,
    chain: &str,
    rt: &tokio::runtime::Handle,
) -> anyhow::Result<()> {
    let names: Vec<&str> = t.columns.iter().map(|(n, _)| *n).collect();
    let audit = t.name == "audit";
    let mut targets = names.clone();
    let mut values: Vec<String> = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            let p = i + 1;
            match kind {
                Text => format!("${p}::text"),
                Int => format!("${p}::bigint"),
                Real => format!("${p}::float8"),
                Blob => format!("${p}::bytea"),
                Json => format!("${p}::text::jsonb"),
                Bool => format!("(${p}::bigint <> 0)"),
            }
        })
        .collect();
    if audit {
        targets.push("chain");
        values.push(format!("${}::text", names.len() + 1));
    }
    let insert = format!(
        "INSERT INTO {} ({}) {}VALUES ({})",
        t.name,
        targets.join(", "),
        if t.overriding {
            "OVERRIDING SYSTEM VALUE "
        } else {
            ""
        },
        values.join(", ")
    );
    let statement = rt.block_on(to.prepare(&insert))?;
    let mut select = from.prepare(&format!(
        "SELECT {} FROM {} ORDER BY {}",
        names.join(", "),
        t.name,
        t.order
    ))?;
    let mut rows = select.query([])?;
    let chain = chain.to_string();
    while let Some(row) = rows.next()? {
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::with_capacity(targets.len());
        for (i, (name, kind)) in t.columns.iter().enumerate() {
            let v: Value = row.get(i)?;
            params.push(param(v, *kind).with_context(|| format!("column {name}"))?);
        }
        if audit {
            params.push(Box::new(chain.clone()));
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        rt.block_on(to.execute(&statement, &refs))?;
    }
    Ok(())
}

/// A SQLite value as the parameter its PostgreSQL column takes (NULL stays NULL).
fn param(v: Value, kind: Kind) -> anyhow::Result<Box<dyn ToSql + Sync + Send>> {
    Ok(match (kind, v) {
        (Text | Json, Value::Null) => Box::new(None::<String>),
        (Text | Json, Value::Text(s)) => Box::new(Some(s)),
        (Int | Bool, Value::Null) => Box::new(None::<i64>),
        (Int | Bool, Value::Integer(n)) => Box::new(Some(n)),
        (Real, Value::Null) => Box::new(None::<f64>),
        (Real, Value::Real(x)) => Box::new(Some(x)),
        (Real, Value::Integer(n)) => Box::new(Some(n as f64)),
        (Blob, Value::Null) => Box::new(None::<Vec<u8>>),
        (Blob, Value::Blob(b)) => Box::new(Some(b)),
        // Never show the value itself: it may be a secret.
        (_, v) => anyhow::bail!("unexpected SQLite value of type {}", v.data_type()),
    })
}
