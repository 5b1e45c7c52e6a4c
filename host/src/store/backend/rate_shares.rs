//! Shared rate budgets through the store: on PostgreSQL the daemons exchange who holds which
//! grant and which grants are paused; one SQLite file has one daemon, which holds every share.

use std::time::Duration;

use super::Store;
pub use crate::store::pg::rate_shares::ShareRound;

impl Store {
    /// One round of the share exchange (see [`crate::store::pg::PgStore::share_round`]); on
    /// SQLite this daemon is the only holder and nobody else pauses anything.
    pub async fn share_round(
        &self,
        owner: &str,
        keys: &[String],
        pauses: &[(String, Duration)],
        ttl: Duration,
    ) -> anyhow::Result<ShareRound> {
        match self {
            Store::Sqlite(_) => Ok(ShareRound {
                holders: keys.iter().map(|k| (k.clone(), 1)).collect(),
                paused: Default::default(),
            }),
            Store::Postgres(pg) => pg.share_round(owner, keys, pauses, ttl).await,
        }
    }

    /// Whether several daemons may share this store (and so the grants' rates).
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Gives this daemon's shares back at a clean shutdown.
    pub async fn leave_shares(&self, owner: &str) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(pg) => pg.leave_shares(owner).await,
        }
    }
}
