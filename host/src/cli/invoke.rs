//! `airlock invoke`: one operation on a connector or route, asked for as the CLI user; a write
//! waits for approval.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;

use crate::app::{Airlock, StartOptions};
use crate::approvals::Requested;
use crate::config::Config;
use crate::runtime::connector::{InvokeError, Op};
use crate::scrub::Scrubber;

use super::common::{ConfigArg, cli_user, replay_from};

#[derive(Args)]
pub struct InvokeArgs {
    #[command(flatten)]
    config: ConfigArg,
    connector: String,
    op: String,
    input: Option<String>,
    /// Answer the connector's upstream requests from this cassette (`airlock record`)
    /// instead of the network; grants still apply, no secret is needed.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
}

impl InvokeArgs {
    pub async fn run(self, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
        let config = self.config.load()?;
        let config_path = self.config.config.clone();
        let connector = self.connector;
        let only = connectors_of(&config, &connector)?;
        let input: serde_json::Value = match self.input.as_deref() {
            None => serde_json::json!({}),
            Some(s) => serde_json::from_str(s).context("INPUT is not valid JSON")?,
        };
        let op = Op::parse(&self.op, input)?;
        let cassettes = match &self.replay {
            Some(file) => replay_from(&only, file)?,
            None => Default::default(),
        };
        let a = Airlock::start(
            config,
            scrubber.clone(),
            StartOptions {
                only: Some(&only),
                max_instances: 16,
                cassettes,
            },
        )
        .await?;
        let tenant = a
            .config()
            .tenant_of(&connector)
            .unwrap_or(crate::config::DEFAULT_TENANT)
            .to_string();
        let result = crate::approvals::request(&a, &cli_user(), &tenant, &connector, op).await;
        a.leave_shares().await;
        a.flush();
        print_result(result, &scrubber, &config_path)
    }
}

/// The connectors to load for `name`: the connector itself, or every connector of the route.
fn connectors_of(config: &Config, name: &str) -> anyhow::Result<Vec<String>> {
    Ok(match (config.connector(name), config.route(name)) {
        (Some(_), _) => vec![name.to_string()],
        (None, Some(r)) => r.connectors.clone(),
        (None, None) => bail!(
            "{}: no connector or route `{name}` is configured (have: {})",
            config.path.display(),
            config
                .connectors
                .iter()
                .map(|c| c.id.as_str())
                .chain(config.routes.iter().map(|r| r.name.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// Prints the result, or the pending approval (exit 10: nothing ran yet); an invocation error
/// exits 1.
fn print_result(
    result: Result<Requested, InvokeError>,
    scrubber: &Scrubber,
    config: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    match result {
        Ok(Requested::Done(v)) => {
            println!("{}", scrubber.scrub(&serde_json::to_string_pretty(&v)?));
            Ok(ExitCode::SUCCESS)
        }
        Ok(Requested::Pending(ap)) => {
            eprintln!(
                "`{}` writes: approval {} is pending; run `airlock approvals --config {} approve {}` (or deny) to decide",
                ap.action,
                ap.id,
                config.display(),
                ap.id
            );
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "approval": ap }))?
            );
            Ok(super::exit::pending_approval())
        }
        Err(e) => {
            eprintln!("error: {}", scrubber.scrub(&e.to_string()));
            Ok(super::exit::FAILED)
        }
    }
}
