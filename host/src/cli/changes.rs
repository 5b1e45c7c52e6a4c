//! `airlock changes`: the change feed of the store (the data directory's, or `[store] url`'s) as
//! JSON lines, optionally followed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::store::backend::Store;
use crate::store::backend::changes::ChangesQuery;

use super::common::ConfigArg;

#[derive(Args)]
pub struct ChangesArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Changes with a sequence above this one (the last `seq` you saw); 0 from the start.
    #[arg(long, default_value_t = 0)]
    after: i64,
    /// Only this connector.
    #[arg(long)]
    connector: Option<String>,
    /// Only this document kind.
    #[arg(long)]
    kind: Option<String>,
    /// Keep reading: wait for new changes (checked every second) until interrupted.
    #[arg(long)]
    follow: bool,
}

impl ChangesArgs {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let config = self.config.load()?;
        let store = Store::open(&config.server.data_dir, config.store.url.as_deref()).await?;
        let mut after = self.after;
        const LIMIT: usize = 1000;
        loop {
            // The operator's view of the store: every change, whatever its ACL.
            let follow = ChangesQuery {
                after,
                connector: self.connector.clone(),
                kind: self.kind.clone(),
                limit: LIMIT,
                ..Default::default()
            };
            let page = match store.changes(follow).await? {
                Ok(page) => page,
                Err(first) => anyhow::bail!(
                    "changes after {after} are no longer kept (the feed starts at {first}; see \
                     [changes] retention): read the current documents, then follow with \
                     --after {}",
                    first - 1
                ),
            };
            for c in &page.changes {
                println!("{}", serde_json::to_string(c)?);
            }
            let more = page.next > after && page.changes.len() == LIMIT;
            after = page.next;
            if !more {
                if !self.follow {
                    return Ok(ExitCode::SUCCESS);
                }
                // On PostgreSQL any daemon's commit wakes this at once.
                store.committed_within(Duration::from_secs(1)).await;
            }
        }
    }
}
