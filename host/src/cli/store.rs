//! `airlock store`: which database holds the store, its schema version and sync job leases
//! (`status`), applying migrations explicitly (`migrate`, idempotent), and moving a SQLite
//! installation into PostgreSQL (`copy`, see `store_copy.rs`).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::store::backend::Store;
use crate::store::pg::PgStore;

use super::common::ConfigArg;
use super::store_copy::CopyArgs;

#[derive(Args)]
pub struct StoreArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The store instead of the config's `[store] url`: a postgres:// URL (a password in it is
    /// never printed).
    #[arg(long, env = "AIRLOCK_STORE_URL", value_name = "URL", global = true)]
    url: Option<String>,
    #[command(subcommand)]
    action: StoreCmd,
}

#[derive(Subcommand)]
enum StoreCmd {
    /// Apply pending schema migrations and print the version now in place. Safe to repeat and
    /// to run while daemons are up: daemons starting together migrate once.
    Migrate,
    /// Print which database holds the store, its schema version and the sync job leases.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy a SQLite installation (its data directory) into an empty PostgreSQL store, with
    /// nothing lost: documents, sync state (cursors), API tokens (as hashes: they keep
    /// working), the vault (sealed: the same master key opens it), approvals, the audit log (as
    /// one chain `sqlite-import:<file>`, verified after the copy), the change feed, webhook
    /// cursors and deliveries, push subscriptions and OAuth grants.
    ///
    /// Stop the daemon that uses the SQLite store first. Counts per area are printed before
    /// and after; the exit status is non-zero when a count differs, when either audit log
    /// fails verification, or when the target already holds data (nothing is written then).
    /// The copy is one transaction: on any failure the target is left as it was.
    Copy(CopyArgs),
}

impl StoreArgs {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        if let StoreCmd::Copy(args) = self.action {
            return args.run(&self.config, self.url.as_deref()).await;
        }
        let url = match &self.url {
            Some(u) => crate::config::store::parse_url("--url", u).map_err(anyhow::Error::msg)?,
            None => self.config.load()?.store.url,
        };
        match (self.action, url) {
            (StoreCmd::Migrate, Some(url)) => {
                let pg = PgStore::connect(&url)?;
                let before = pg.version().await?;
                let now = pg.migrate().await?;
                println!(
                    "postgres {}: schema version {now}{}",
                    pg.shown(),
                    if before == now {
                        " (already current)".to_string()
                    } else {
                        format!(" (was {before})")
                    }
                );
            }
            (StoreCmd::Migrate, None) => {
                let config = self.config.load()?;
                // Opening the SQLite store migrates it.
                let db = crate::store::Db::open(&config.server.data_dir)?;
                println!(
                    "sqlite {}: schema version {}",
                    db.path().display(),
                    crate::store::schema_version()
                );
            }
            (StoreCmd::Copy(_), _) => unreachable!("handled above"),
            (StoreCmd::Status { json }, url) => {
                let store = match url {
                    Some(url) => Store::Postgres(std::sync::Arc::new(PgStore::open(&url).await?)),
                    None => {
                        let config = self.config.load()?;
                        Store::Sqlite(std::sync::Arc::new(crate::store::Db::open(
                            &config.server.data_dir,
                        )?))
                    }
                };
                store.ping().await?;
                let leases = store.leases().await?;
                if json {
                    let v = serde_json::json!({
                        "store": store.describe(),
                        "leases": leases,
                    });
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    println!("{}: reachable, schema current", store.describe());
                    for l in leases {
                        println!(
                            "{}/{}\t{}\tfence {}{}",
                            l.connector,
                            l.stream,
                            l.owner.as_deref().unwrap_or("(free)"),
                            l.fence,
                            if l.owner.is_some() && l.expired {
                                "\texpired"
                            } else {
                                ""
                            }
                        );
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
