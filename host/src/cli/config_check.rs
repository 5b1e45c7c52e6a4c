//! `airlock config check`: everything `airlock serve` would refuse or fail to load, reported at
//! once (like `nginx -t`): the file parses, every secret it references is in the vault (names
//! only; no value is printed), every component loads. Exit 0 when all is well, 1 otherwise.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::app::{Airlock, StartOptions};
use crate::config::Config;
use crate::scrub::Scrubber;

use super::common::ConfigArg;

#[derive(Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    action: ConfigCmd,
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Parse the file, resolve its secret references and load every component, as `serve`
    /// would; print one line per finding and exit 1 if anything would fail.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
}

impl ConfigArgs {
    pub async fn run(self, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
        let ConfigCmd::Check { config } = self.action;
        let path = config.config.display().to_string();
        let parsed = match Config::load(&config.config) {
            Ok(c) => c,
            Err(e) => {
                println!("FAIL config {path}: {e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        println!(
            "ok   config {path}: {} connector(s), {} grant(s), {} route(s)",
            parsed.connectors.len(),
            parsed.grants.len(),
            parsed.routes.len()
        );
        // Loading is what `serve` does: secrets are looked up by name (a missing one fails
        // its connector, naming it), components are read, verified and compiled.
        let a = Airlock::start(parsed, scrubber.clone(), StartOptions::default()).await?;
        let mut failed = 0;
        for s in a.statuses() {
            match (s.status, &s.error, &s.info) {
                ("ready", _, Some(info)) => println!(
                    "ok   connector {}: {} {} (contract {}), {} stream(s), {} action(s)",
                    s.id,
                    info.name,
                    info.version,
                    s.contract.as_deref().unwrap_or("?"),
                    info.streams.len(),
                    info.actions.len()
                ),
                (_, error, _) => {
                    failed += 1;
                    let why = error.as_deref().unwrap_or("did not load");
                    println!("FAIL connector {}: {}", s.id, scrubber.scrub(why));
                }
            }
        }
        a.flush();
        if failed > 0 {
            eprintln!("config check FAILED: {failed} connector(s) would not load");
            return Ok(ExitCode::FAILURE);
        }
        println!("config check passed");
        Ok(ExitCode::SUCCESS)
    }
}
