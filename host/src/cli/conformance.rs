//! `airlock conformance`: run a connector component against the contract rules the host relies
//! on, optionally replaying or recording its upstream exchanges.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::cassette::{CassetteMode, Recorder};
use crate::config::Config;
use crate::conformance::{Options, Status};
use crate::record::learn_all_secrets;
use crate::runtime::context::CallContext;
use crate::scrub::Scrubber;

use super::common::{ConfigArg, cli_user, named_or_all, replay_from};

#[derive(Args)]
pub struct ConformanceArgs {
    /// The connector component (.wasm, built for wasm32-wasip2).
    file: PathBuf,
    #[command(flatten)]
    config: ConfigArg,
    /// The connector of the config to test as (needed when it configures several).
    #[arg(long)]
    connector: Option<String>,
    /// Pages per stream before sync.terminates gives up.
    #[arg(long, default_value_t = 1000)]
    max_pages: usize,
    /// Wait out a `rate-limited` answer up to this long, then retry the page.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    max_rate_limit_wait: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Answer the connector's upstream requests from this cassette instead of the network
    /// (record one with --record).
    #[arg(long, value_name = "FILE", conflicts_with = "record")]
    replay: Option<PathBuf>,
    /// Record every upstream exchange of the run to this cassette (secrets removed), so
    /// `--replay FILE` repeats the run offline.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
}

impl ConformanceArgs {
    pub async fn run(self, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
        let config = self.config.load()?;
        let mut opts = Options {
            max_pages: self.max_pages,
            max_rate_limit_wait: self.max_rate_limit_wait,
            cassettes: Default::default(),
        };
        // The cassette goes on the connector under test, or on every one when the kit is
        // left to pick (only the one it tests is loaded).
        let ids = named_or_all(&config, self.connector.as_deref());
        if let Some(f) = &self.replay {
            opts.cassettes = replay_from(&ids, f)?;
        }
        let recorder = match &self.record {
            Some(_) => {
                learn_all_secrets(&config, &scrubber)?;
                let rec = Arc::new(Recorder::new(scrubber.clone()));
                opts.cassettes =
                    crate::cassette::for_each(&ids, &CassetteMode::Record(rec.clone()));
                Some(rec)
            }
            None => None,
        };
        // The operator's own check: named in the audit, no writes (a context is required).
        let (code, tested) = crate::runtime::context::with(
            CallContext::requested().by(&cli_user()),
            check(
                config,
                &self.file,
                self.connector.as_deref(),
                &opts,
                self.json,
                scrubber.clone(),
            ),
        )
        .await?;
        if let (Some(out), Some(rec)) = (self.record, recorder) {
            let n = rec.save(&out, &tested).map_err(anyhow::Error::msg)?;
            eprintln!("recorded {n} exchanges to {}", out.display());
        }
        Ok(code)
    }
}

/// Runs the rules and prints the report; exit 1 if any failed. Also returns the connector
/// tested.
async fn check(
    config: Config,
    file: &Path,
    connector: Option<&str>,
    opts: &Options,
    json: bool,
    scrubber: Scrubber,
) -> anyhow::Result<(ExitCode, String)> {
    let report = crate::conformance::run(config, file, connector, scrubber.clone(), opts).await?;
    if json {
        println!(
            "{}",
            scrubber.scrub(&serde_json::to_string_pretty(&report)?)
        );
    } else {
        println!(
            "conformance of {} as connector `{}`",
            report.file, report.connector
        );
        for o in &report.outcomes {
            println!("{}", scrubber.scrub(&o.to_string()));
        }
        let failed = report.failures().count();
        let skipped = report
            .outcomes
            .iter()
            .filter(|o| o.status == Status::Skip)
            .count();
        println!(
            "{} rule(s): {} passed, {failed} failed, {skipped} skipped",
            report.outcomes.len(),
            report.outcomes.len() - failed - skipped
        );
    }
    let code = if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    Ok((code, report.connector))
}
