//! `airlock record`: the arguments of a recording; the plan and its run live in the library
//! (`crate::record`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::record::RecordPlan;
use crate::runtime::context::CallContext;
use crate::scrub::Scrubber;

use super::common::{ConfigArg, cli_user};

#[derive(Args)]
pub struct RecordArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The connector to record.
    #[arg(long)]
    connector: String,
    /// The cassette file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Sync only this stream (repeatable; default: every stream).
    #[arg(long = "stream", value_name = "S")]
    streams: Vec<String>,
    /// Record no sync.
    #[arg(long)]
    no_sync: bool,
    /// Run this action, for real (writes included) (repeatable).
    #[arg(long = "invoke", value_name = "ACTION")]
    invokes: Vec<String>,
    /// JSON input of the --invoke at the same position (default `{}`).
    #[arg(long = "input", value_name = "JSON")]
    inputs: Vec<String>,
    /// Run a live search for this query (repeatable).
    #[arg(long = "search", value_name = "Q")]
    searches: Vec<String>,
    /// Fetch this record with `get` (repeatable).
    #[arg(long = "get", value_name = "ID")]
    gets: Vec<String>,
    /// Pages per stream before the sync gives up.
    #[arg(long, default_value_t = 1000)]
    max_pages: usize,
}

impl RecordArgs {
    pub async fn run(self, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
        let config = self.config.load()?;
        let plan = RecordPlan {
            connector: self.connector,
            out: self.out,
            streams: self.streams,
            no_sync: self.no_sync,
            invokes: self.invokes,
            inputs: self.inputs,
            searches: self.searches,
            gets: self.gets,
            max_pages: self.max_pages,
        };
        // The operator recording their own connector: trusted, writes included.
        let recorded = crate::runtime::context::with(
            CallContext::trusted().by(&cli_user()),
            crate::record::run(config, &plan, scrubber, &mut |line: &str| {
                eprintln!("{line}")
            }),
        )
        .await?;
        println!(
            "recorded {} exchanges to {}",
            recorded.exchanges,
            plan.out.display()
        );
        Ok(if recorded.sync_failures == 0 {
            ExitCode::SUCCESS
        } else {
            eprintln!("the sync did not finish: the cassette covers only what ran");
            super::exit::FAILED
        })
    }
}
