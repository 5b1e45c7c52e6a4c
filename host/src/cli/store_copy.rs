//! `airlock store copy --from sqlite://DATA_DIR --to postgres://…`: the move of an installation
//! from its SQLite data directory to PostgreSQL, checked before and after (counts per area and
//! both audit logs verified). The rows move in `crate::store::pg::copy`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use crate::store::Db;
use crate::store::backend::Store;
use crate::store::checkpoint::CheckpointSigner;
use crate::store::pg::PgStore;
use crate::store::pg::copy::{self, Counts};

use super::common::ConfigArg;

#[derive(Args)]
pub struct CopyArgs {
    /// The SQLite store: `sqlite://DATA_DIR` (or a path to its `airlock.db`); by default the
    /// config's `[server] data_dir`. It is opened like a daemon opens it (migrated if older).
    #[arg(long, value_name = "sqlite://PATH")]
    from: Option<String>,
    /// The PostgreSQL store: `postgres://…` (a password in it is never printed); by default
    /// `--url` / `AIRLOCK_STORE_URL` / the config's `[store] url`. It is migrated, and must hold
    /// no data: the copy refuses a target with rows, naming what it holds.
    #[arg(long, value_name = "postgres://URL")]
    to: Option<String>,
}

impl CopyArgs {
    pub async fn run(self, config: &ConfigArg, url: Option<&str>) -> anyhow::Result<ExitCode> {
        let data_dir = match &self.from {
            Some(from) => data_dir_of(from)?,
            None => config.load()?.server.data_dir,
        };
        let to = match self.to.as_deref().or(url) {
            Some(u) => crate::config::store::parse_url("--to", u).map_err(anyhow::Error::msg)?,
            None => config.load()?.store.url,
        };
        let Some(to) = to else {
            anyhow::bail!(
                "no PostgreSQL store to copy to: give --to postgres://… (or [store] url in the config)"
            );
        };
        anyhow::ensure!(
            crate::store::db_path(&data_dir).is_file(),
            "no SQLite store at {} (expected {})",
            data_dir.display(),
            crate::store::db_path(&data_dir).display()
        );
        let db = Arc::new(Db::open(&data_dir)?);
        let pg = Arc::new(PgStore::connect(&to)?);
        pg.migrate().await?;
        let source = Store::Sqlite(db.clone());
        let target = Store::Postgres(pg.clone());
        println!("copying {} -> {}", source.describe(), target.describe());

        let held: Vec<String> = copy::pg_counts(&pg)
            .await?
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(area, n)| format!("{n} {area}"))
            .collect();
        if !held.is_empty() {
            eprintln!(
                "refused: {} already holds data ({}); copy into an empty database (nothing was written)",
                pg.shown(),
                held.join(", ")
            );
            return Ok(ExitCode::FAILURE);
        }

        let before = db.read(copy::sqlite_counts).await?;
        let checked = source.audit_verify().await?;
        if !checked.verification.problems.is_empty() {
            eprintln!(
                "refused: the SQLite audit log does not verify (nothing was written):\n  {}",
                checked.verification.problems.join("\n  ")
            );
            return Ok(ExitCode::FAILURE);
        }
        // Its signed checkpoints too: the copy signs the head it carries over, so it must not
        // vouch for a log its own checkpoints say was cut or rewritten.
        let anchors = {
            let dir = data_dir.clone();
            db.read(move |conn| crate::store::audit::check_anchor(conn, &dir, None, None))
                .await?
        };
        if !anchors.problems.is_empty() {
            let found: Vec<&str> = anchors.problems.iter().map(|(_, p)| p.as_str()).collect();
            eprintln!(
                "refused: the SQLite audit log does not verify against its signed checkpoints \
                 (nothing was written):\n  {}",
                found.join("\n  ")
            );
            return Ok(ExitCode::FAILURE);
        }
        println!(
            "sqlite audit log: {} rows verified, {} valid checkpoint(s)",
            checked.verification.rows, anchors.valid_checkpoints
        );
        let signer = CheckpointSigner::open(&data_dir, crate::store::checkpoint::Sink::None)?;

        let chain = copy::import_chain(db.path());
        let rt = tokio::runtime::Handle::current();
        let (pg2, chain2) = (pg.clone(), chain.clone());
        db.run(move |conn| copy::copy_all(conn, &pg2, &chain2, &signer, &rt))
            .await
            .context("the copy failed; the PostgreSQL store was left as it was")?;

        let after = copy::pg_counts(&pg).await?;
        let mut ok = print_counts(&before, &after);
        let check = target.audit_verify().await?;
        let keys: Vec<_> = crate::store::checkpoint::local_public_key(&data_dir)?
            .into_iter()
            .collect();
        let anchored = pg.audit_check_anchors(&keys, &[]).await?;
        if check.verification.problems.is_empty()
            && anchored.problems.is_empty()
            && check.verification.rows == checked.verification.rows
        {
            println!(
                "postgres audit log: {} rows verified (chain {chain}), its head signed",
                check.verification.rows
            );
        } else {
            ok = false;
            eprintln!(
                "the PostgreSQL audit log does not verify after the copy ({} rows, {} before):\n  {}",
                check.verification.rows,
                checked.verification.rows,
                check
                    .verification
                    .problems
                    .iter()
                    .chain(anchored.problems.iter().map(|(_, p)| p))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n  ")
            );
        }
        if ok {
            println!(
                "copied: point the daemons at {} ([store] url) with the same vault master key",
                pg.shown()
            );
            Ok(ExitCode::SUCCESS)
        } else {
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `sqlite://DIR`, `sqlite:///abs/DIR`, a bare path, or a path to the `airlock.db` file in it.
fn data_dir_of(from: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(from.strip_prefix("sqlite://").unwrap_or(from));
    anyhow::ensure!(
        !from.starts_with("postgres"),
        "--from takes the SQLite store (sqlite://DATA_DIR), not a PostgreSQL URL"
    );
    if path.is_file() {
        let dir = path.parent().unwrap_or(Path::new("."));
        anyhow::ensure!(
            crate::store::db_path(dir) == path,
            "{} is not a data directory's airlock.db: give the data directory",
            path.display()
        );
        return Ok(dir.to_path_buf());
    }
    Ok(path.to_path_buf())
}

/// Prints the counts per area side by side; false when any differs.
fn print_counts(before: &Counts, after: &Counts) -> bool {
    let mut same = true;
    println!("{:<24}{:>10}{:>10}", "area", "sqlite", "postgres");
    for ((area, b), (_, a)) in before.iter().zip(after) {
        let mark = if a == b { "" } else { "  DIFFERS" };
        same &= a == b;
        println!("{area:<24}{b:>10}{a:>10}{mark}");
    }
    same
}
