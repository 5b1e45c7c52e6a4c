//! `airlock search`: the local store across every connector, optionally merged with live
//! answers.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::app::{Airlock, StartOptions};
use crate::runtime::context::CallContext;
use crate::scrub::Scrubber;

use super::common::{ConfigArg, cli_user, named_or_all};

#[derive(Args)]
pub struct SearchArgs {
    #[command(flatten)]
    config: ConfigArg,
    query: String,
    /// Only this connector.
    #[arg(long)]
    connector: Option<String>,
    /// Only this kind of document (e.g. page, ticket).
    #[arg(long)]
    kind: Option<String>,
    /// At most this many hits.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Also ask every connector live, in parallel, and merge the results.
    #[arg(long)]
    live: bool,
    /// Per-connector timeout of --live.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    live_timeout: Duration,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl SearchArgs {
    pub async fn run(self, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
        let config = self.config.load()?;
        let only = named_or_all(&config, self.connector.as_deref());
        let a = Airlock::start(
            config,
            scrubber.clone(),
            StartOptions {
                only: if self.live { Some(&only) } else { Some(&[]) },
                max_instances: 64,
                ..StartOptions::default()
            },
        )
        .await?;
        let req = crate::search::SearchRequest {
            query: self.query,
            connector: self.connector,
            kind: self.kind,
            limit: self.limit,
            live: self.live,
            live_timeout: self.live_timeout,
            scope: None,
            mode: Default::default(),
            vector: None,
            any_word: false,
        };
        let ctx = CallContext::requested().by(&cli_user());
        let r = crate::runtime::context::with(ctx, a.search(&req)).await?;
        a.flush();
        if self.json {
            println!("{}", scrubber.scrub(&serde_json::to_string_pretty(&r)?));
            return Ok(ExitCode::SUCCESS);
        }
        for h in &r.hits {
            println!(
                "{} {}/{}/{}  {}",
                h.source, h.connector, h.kind, h.id, h.title
            );
            let snippet = h.snippet.split_whitespace().collect::<Vec<_>>().join(" ");
            println!("    {}", scrubber.scrub(&snippet));
            if let Some(u) = &h.url {
                println!("    {u}");
            }
        }
        if r.hits.is_empty() {
            println!("no results");
        }
        for f in &r.failed {
            eprintln!(
                "partial results: {} failed: {}",
                f.connector,
                scrubber.scrub(&f.error)
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
