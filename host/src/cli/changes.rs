//! `airlock changes`: the change feed of the local store as JSON lines, optionally followed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use airlock::store::changes::{self, Follow};

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
        let conn = airlock::store::open(&config.server.data_dir)?;
        let mut after = self.after;
        // The operator's view of the store: every change, whatever its ACL.
        let everyone = |_: &str, _: &[String]| true;
        loop {
            let follow = Follow {
                after,
                within: None,
                connector: self.connector.as_deref(),
                kind: self.kind.as_deref(),
                limit: 1000,
                visible: &everyone,
            };
            let page = match changes::read(&conn, &follow)? {
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
            let more = page.next > after && page.changes.len() == follow.limit;
            after = page.next;
            if !more {
                if !self.follow {
                    return Ok(ExitCode::SUCCESS);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
