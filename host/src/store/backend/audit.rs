//! The audit log's read side on either backend: listing, the newest row of an invocation, and
//! verification. Rows are written by [`crate::store::audit::AuditWriter`], which takes the
//! [`Store`] to know where (`AuditWriter::start_on`).

use std::path::Path;

use super::Store;
use crate::scrub::Scrubber;
pub use crate::store::audit::AuditFilter;
use crate::store::audit::{self, AuditRow, AuditSettings, AuditWriter, Verification};
use crate::store::pg::audit::ChainWriter;

/// What `audit verify` found in the chains (signed checkpoints are checked apart, SQLite only).
#[derive(Debug)]
pub struct ChainsCheck {
    pub verification: Verification,
    /// How many chains were walked (1 on SQLite).
    pub chains: usize,
    /// Synced data whose `invoke` row is in no chain.
    pub unaudited: Vec<String>,
}

impl Store {
    /// The latest `limit` rows matching the filters, oldest first. SQLite orders by the one
    /// chain's sequence; PostgreSQL merges its chains by (ts, chain, seq).
    pub async fn audit_query(&self, q: AuditFilter) -> anyhow::Result<Vec<AuditRow>> {
        match self {
            Store::Sqlite(db) => db.read(move |conn| audit::query(conn, &q.as_query())).await,
            Store::Postgres(pg) => pg.audit_query(&q).await,
        }
    }

    /// The last `n` rows, oldest first, optionally of one connector (`airlock audit tail`).
    pub async fn audit_tail(
        &self,
        n: usize,
        connector: Option<&str>,
    ) -> anyhow::Result<Vec<AuditRow>> {
        match self {
            Store::Sqlite(db) => {
                let c = connector.map(str::to_string);
                db.read(move |conn| audit::tail(conn, n, c.as_deref()))
                    .await
            }
            Store::Postgres(pg) => {
                let q = AuditFilter {
                    connector: connector.map(str::to_string),
                    limit: n,
                    ..Default::default()
                };
                pg.audit_query(&q).await
            }
        }
    }

    /// The decision and reason of the newest row of `invocation` (see [`audit::latest_of`]).
    pub async fn audit_latest_of(
        &self,
        connector: &str,
        invocation: &str,
    ) -> anyhow::Result<Option<(String, String)>> {
        match self {
            Store::Sqlite(db) => {
                let (c, i) = (connector.to_string(), invocation.to_string());
                db.read(move |conn| audit::latest_of(conn, &c, &i)).await
            }
            Store::Postgres(pg) => pg.audit_latest_of(connector, invocation).await,
        }
    }

    /// Walks every chain and looks for synced data without audit rows.
    pub async fn audit_verify(&self) -> anyhow::Result<ChainsCheck> {
        match self {
            Store::Sqlite(db) => {
                db.read(|conn| {
                    Ok(ChainsCheck {
                        verification: audit::verify(conn)?,
                        chains: 1,
                        unaudited: audit::unaudited_data(conn)?,
                    })
                })
                .await
            }
            Store::Postgres(pg) => {
                let (verification, chains) = pg.audit_verify().await?;
                Ok(ChainsCheck {
                    verification,
                    chains,
                    unaudited: pg.audit_unaudited_data().await?,
                })
            }
        }
    }
}

impl AuditWriter {
    /// Starts the writer on the store's database: the data directory's SQLite file, or this
    /// process's own chain in PostgreSQL (see `store/pg/audit.rs`).
    pub fn start_on(
        store: &Store,
        data_dir: &Path,
        scrubber: Scrubber,
        settings: &AuditSettings,
    ) -> anyhow::Result<AuditWriter> {
        let chain = crate::store::leases::this_process();
        AuditWriter::start_chain(store, data_dir, scrubber, settings, &chain)
    }

    /// [`AuditWriter::start_on`] with a chosen chain id (PostgreSQL; ignored on SQLite, which
    /// holds one chain). Two writers must not share a chain id at once: they would serialise
    /// on its head, which is safe but slow.
    pub fn start_chain(
        store: &Store,
        data_dir: &Path,
        scrubber: Scrubber,
        settings: &AuditSettings,
        chain: &str,
    ) -> anyhow::Result<AuditWriter> {
        match store {
            Store::Sqlite(_) => AuditWriter::start_with(data_dir, scrubber, settings),
            Store::Postgres(pg) => {
                let sink = ChainWriter::new(pg, chain, settings.durability)?;
                // Its checkpoints are signed with the data directory's key and kept in the
                // database beside the chain (docs/security.md).
                AuditWriter::spawn(Box::new(sink), data_dir, scrubber, settings)
            }
        }
    }
}
