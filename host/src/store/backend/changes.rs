//! The change feed's readers and their wake-ups on either backend (the feed's writes are part
//! of each page commit).

use std::time::Duration;

use super::Store;
use crate::store::changes::{self, Page};
use crate::store::documents::Readers;
use crate::store::pg;

/// Which changes a reader asks for, with owned parts (see [`changes::Follow`]).
#[derive(Debug, Clone, Default)]
pub struct ChangesQuery {
    /// Changes with a sequence above this one.
    pub after: i64,
    /// Only these connectors (the caller's tenant); None: every connector.
    pub within: Option<Vec<String>>,
    pub connector: Option<String>,
    pub kind: Option<String>,
    /// Most changes to return.
    pub limit: usize,
    /// Who reads (each change filtered by the document's ACL); None: the operator, everything.
    pub readers: Option<Readers>,
}

impl Store {
    /// The changes after `q.after` in commit order, or Err(first kept sequence) when changes
    /// the reader has not seen were pruned.
    pub async fn changes(&self, q: ChangesQuery) -> anyhow::Result<Result<Page, i64>> {
        let visible =
            move |c: &str, acl: &[String]| q.readers.as_ref().is_none_or(|r| r.allows(c, acl));
        match self {
            Store::Sqlite(db) => {
                db.read(move |conn| {
                    let f = changes::Follow {
                        after: q.after,
                        within: q.within.as_deref(),
                        connector: q.connector.as_deref(),
                        kind: q.kind.as_deref(),
                        limit: q.limit,
                        visible: &visible,
                    };
                    Ok(changes::read(conn, &f)?)
                })
                .await
            }
            Store::Postgres(p) => {
                let f = pg::changes::Follow {
                    after: q.after,
                    within: q.within.as_deref(),
                    connector: q.connector.as_deref(),
                    kind: q.kind.as_deref(),
                    limit: q.limit,
                    visible: &visible,
                };
                p.read_changes(&f).await
            }
        }
    }

    /// Waits until a page is committed, or `within` passes. SQLite: commits of this process
    /// wake it (others', such as the CLI's, are found by reading again after it). PostgreSQL:
    /// commits of every daemon on the database wake it (LISTEN/NOTIFY).
    pub async fn committed_within(&self, within: Duration) {
        match self {
            Store::Sqlite(db) => db.committed_within(within).await,
            Store::Postgres(p) => p.committed_within(within).await,
        }
    }
}
