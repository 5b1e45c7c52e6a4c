//! `airlock audit`: show the latest audit rows, and verify the hash chain and its signed
//! checkpoints (the exit code says the most serious finding).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use rusqlite::Connection;

use std::sync::Arc;

use crate::config::Config;
use crate::store::audit;
use crate::store::backend::Store;
use crate::store::pg::PgStore;

use super::common::ConfigArg;

#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(subcommand)]
    action: AuditCmd,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Show the latest rows.
    Tail {
        /// How many rows.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Only rows of this connector.
        #[arg(long)]
        connector: Option<String>,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain and its signed checkpoints. Exit codes: 0 intact, 3 chain broken
    /// (a row edited, inserted or deleted inside it), 4 truncated (rows cut from the tail), 5
    /// rewritten (a row differs from a signed checkpoint or --expect, or a checkpoint is forged),
    /// 6 checkpoint missing, 7 unaudited data (a synced page in the store whose requests have
    /// no audit row). The most serious finding decides the code.
    Verify {
        /// A head kept elsewhere (`SEQ:HASH`, e.g. from the checkpoint log line): the log must
        /// still hold row SEQ with this hash. On PostgreSQL name the writer's chain too:
        /// `CHAIN:SEQ:HASH` (the log line's `chain`).
        #[arg(long, value_name = "[CHAIN:]SEQ:HASH", value_parser = audit::parse_expected)]
        expect: Option<audit::ExpectedHead>,
        /// The checkpoint public key (hex, as in audit-signing.pub) kept elsewhere; without
        /// it the data directory's own key is trusted. On PostgreSQL it may be given once per
        /// daemon key.
        #[arg(long, value_name = "HEX")]
        public_key: Vec<String>,
    },
}

impl AuditArgs {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let config = self.config.load()?;
        if let Some(url) = config.store.url.as_deref() {
            // The daemons' shared PostgreSQL store: every writer's chain.
            let store = Store::Postgres(Arc::new(PgStore::open(url).await?));
            return match self.action {
                AuditCmd::Tail {
                    lines,
                    connector,
                    json,
                } => {
                    print_rows(&store.audit_tail(lines, connector.as_deref()).await?, json)?;
                    Ok(ExitCode::SUCCESS)
                }
                AuditCmd::Verify { expect, public_key } => {
                    verify_chains(&config, &store, expect, &public_key).await
                }
            };
        }
        let conn = crate::store::open(&config.server.data_dir)?;
        match self.action {
            AuditCmd::Tail {
                lines,
                connector,
                json,
            } => {
                tail(&conn, lines, connector.as_deref(), json)?;
                Ok(ExitCode::SUCCESS)
            }
            AuditCmd::Verify { expect, public_key } => verify(&config, &conn, expect, &public_key),
        }
    }
}

fn tail(
    conn: &Connection,
    lines: usize,
    connector: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    print_rows(&audit::tail(conn, lines, connector)?, json)
}

fn print_rows(rows: &[audit::AuditRow], json: bool) -> anyhow::Result<()> {
    for r in rows {
        if json {
            println!("{}", serde_json::to_string(&r)?);
            continue;
        }
        let e = &r.event;
        let target = match (&e.method, &e.host, &e.path) {
            (Some(m), Some(h), Some(p)) => format!(
                " {m} {}://{h}{}{p}",
                e.scheme.as_deref().unwrap_or("?"),
                e.port.map(|p| format!(":{p}")).unwrap_or_default()
            ),
            _ => String::new(),
        };
        let status = e.status.map(|s| format!(" -> {s}")).unwrap_or_default();
        let latency = e
            .latency_ms
            .map(|l| format!(" {l:.1}ms"))
            .unwrap_or_default();
        let bytes = e.bytes.map(|b| format!(" {b}B")).unwrap_or_default();
        let by = e
            .principal
            .as_deref()
            .map(|p| format!("  [by {p}]"))
            .unwrap_or_default();
        // On PostgreSQL a row is numbered within its writer's chain.
        let seq = match &r.chain {
            Some(chain) => format!("{chain}#{}", r.seq),
            None => r.seq.to_string(),
        };
        println!(
            "{seq:>6} {} {:<12} {:<7} {:<5}{target}{status}{latency}{bytes}  {}{by}",
            r.ts, e.connector, e.event, e.decision, e.reason
        );
    }
    Ok(())
}

fn verify(
    config: &Config,
    conn: &Connection,
    expect: Option<audit::ExpectedHead>,
    public_key: &[String],
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        public_key.len() <= 1,
        "the SQLite store has one chain signed by one key: give --public-key once"
    );
    let expect = match expect {
        Some(audit::ExpectedHead { chain: Some(_), .. }) => {
            anyhow::bail!("the SQLite store has one chain: --expect takes SEQ:HASH without a chain")
        }
        Some(e) => Some((e.seq, e.hash)),
        None => None,
    };
    let pinned = public_key
        .first()
        .map(|k| crate::store::checkpoint::parse_public_key(k))
        .transpose()
        .context("--public-key")?;
    let v = audit::verify(conn)?;
    let anchor = audit::check_anchor(
        conn,
        &config.server.data_dir,
        pinned,
        expect.as_ref().map(|(s, h)| (*s, h.as_str())),
    )?;
    let mut problems: Vec<(audit::Tamper, String)> = v
        .problems
        .iter()
        .map(|p| (audit::Tamper::ChainBroken, p.clone()))
        .collect();
    problems.extend(anchor.problems.iter().cloned());
    let unaudited = audit::unaudited_data(conn)?;
    problems.extend(
        unaudited
            .iter()
            .map(|p| (audit::Tamper::Unaudited, p.clone())),
    );
    report(problems, v.rows, &anchor)
}

/// `audit verify` on PostgreSQL: every writer's chain on its own, each against its signed
/// checkpoints (kept in the database) and `--expect`, and synced data without audit rows.
async fn verify_chains(
    config: &Config,
    store: &Store,
    expect: Option<audit::ExpectedHead>,
    public_key: &[String],
) -> anyhow::Result<ExitCode> {
    let Store::Postgres(pg) = store else {
        anyhow::bail!("not a PostgreSQL store");
    };
    let expect: Vec<(String, i64, String)> = match expect {
        Some(audit::ExpectedHead {
            chain: Some(chain),
            seq,
            hash,
        }) => vec![(chain, seq, hash)],
        Some(_) => anyhow::bail!(
            "the PostgreSQL store holds one chain per writer: --expect takes CHAIN:SEQ:HASH \
             (the checkpoint log line's chain, seq and hash)"
        ),
        None => Vec::new(),
    };
    let keys = if public_key.is_empty() {
        crate::store::checkpoint::local_public_key(&config.server.data_dir)?
            .into_iter()
            .collect()
    } else {
        public_key
            .iter()
            .map(|k| crate::store::checkpoint::parse_public_key(k))
            .collect::<anyhow::Result<Vec<_>>>()
            .context("--public-key")?
    };
    let check = store.audit_verify().await?;
    let anchor = pg.audit_check_anchors(&keys, &expect).await?;
    let mut problems: Vec<(audit::Tamper, String)> = check
        .verification
        .problems
        .iter()
        .map(|p| (audit::Tamper::ChainBroken, p.clone()))
        .collect();
    problems.extend(anchor.problems.iter().cloned());
    problems.extend(
        check
            .unaudited
            .iter()
            .map(|p| (audit::Tamper::Unaudited, p.clone())),
    );
    if problems.is_empty() {
        println!(
            "audit log intact: {} rows verified in {} chain(s) (PostgreSQL; each writer's chain \
             on its own)",
            check.verification.rows, check.chains
        );
        println!(
            "anchored: {} valid checkpoint(s); {} row(s) written since their chain's newest",
            anchor.valid_checkpoints, anchor.unanchored_rows
        );
        return Ok(ExitCode::SUCCESS);
    }
    report(problems, check.verification.rows, &anchor)
}

/// Prints what verification found; the exit code is the most serious finding's.
fn report(
    problems: Vec<(audit::Tamper, String)>,
    rows: u64,
    anchor: &audit::AnchorCheck,
) -> anyhow::Result<ExitCode> {
    if problems.is_empty() {
        println!("audit log intact: {rows} rows verified");
        if let Some(cp) = &anchor.newest {
            println!(
                "anchored: {} valid checkpoint(s); the newest signs row {} ({}) at {}; {} row(s) since",
                anchor.valid_checkpoints, cp.seq, cp.hash, cp.time, anchor.unanchored_rows
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    for (kind, p) in &problems {
        let tag = match kind {
            audit::Tamper::ChainBroken => "TAMPERED",
            audit::Tamper::Truncated => "TRUNCATED",
            audit::Tamper::Rewritten => "REWRITTEN",
            audit::Tamper::CheckpointMissing => "UNANCHORED",
            audit::Tamper::Unaudited => "UNAUDITED",
        };
        println!("{tag}: {p}");
    }
    eprintln!(
        "audit log verification FAILED: {} problem(s) in {} rows",
        problems.len(),
        rows
    );
    let worst = problems
        .iter()
        .map(|(k, _)| *k)
        .max()
        .unwrap_or(audit::Tamper::ChainBroken);
    Ok(ExitCode::from(worst.exit_code()))
}
