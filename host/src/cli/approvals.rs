//! `airlock approvals`: list pending writes, approve one (it then runs once) or deny it.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::app::{Airlock, StartOptions};
use crate::approvals::{self, Approval};
use crate::config::Config;
use crate::scrub::Scrubber;
use crate::store::backend::Store;

use super::common::{ConfigArg, cli_user};

#[derive(Args)]
pub struct ApprovalsArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(subcommand)]
    action: ApprovalsCmd,
}

#[derive(Subcommand)]
enum ApprovalsCmd {
    /// List approvals, newest first: id, status, connector, action, who asked.
    List {
        /// Only this status: pending, denied, approved (running), executed, failed.
        #[arg(long)]
        status: Option<String>,
        /// Print JSON (with inputs and results).
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending write action and run it once; prints the result.
    Approve { id: String },
    /// Deny a pending write action; it never runs.
    Deny { id: String },
}

impl ApprovalsArgs {
    pub async fn run(self, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
        let config = self.config.load()?;
        match self.action {
            ApprovalsCmd::List { status, json } => {
                list(&config, status.as_deref(), json, &scrubber).await
            }
            ApprovalsCmd::Approve { id } => approve(config, &id, scrubber).await,
            ApprovalsCmd::Deny { id } => deny(config, &id, scrubber).await,
        }
    }
}

async fn list(
    config: &Config,
    status: Option<&str>,
    json: bool,
    scrubber: &Scrubber,
) -> anyhow::Result<ExitCode> {
    let list = store(config).await?.approvals(None, status).await?;
    if json {
        println!("{}", scrubber.scrub(&serde_json::to_string_pretty(&list)?));
    } else if list.is_empty() {
        println!("no approvals");
    } else {
        for ap in list {
            println!(
                "{}\t{}\t{}\t{}\tasked by {} at {}",
                ap.id, ap.status, ap.connector, ap.action, ap.requested_by, ap.created_at
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Approves and runs it once, with only its connector (or its route's) loaded; exit 1 unless
/// it executed.
async fn approve(config: Config, id: &str, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
    let ap = find(&config, id).await?;
    let only: Vec<String> = match config.route(&ap.connector) {
        Some(r) => r.connectors.clone(),
        None => vec![ap.connector.clone()],
    };
    let a = Airlock::start(
        config,
        scrubber.clone(),
        StartOptions {
            only: Some(&only),
            max_instances: 4,
            ..StartOptions::default()
        },
    )
    .await?;
    let r = approvals::approve(&a, id, &cli_user()).await;
    a.leave_shares().await;
    a.flush();
    let ap = r?;
    show(&ap, &scrubber)?;
    Ok(if ap.status == "executed" {
        ExitCode::SUCCESS
    } else {
        super::exit::FAILED
    })
}

async fn deny(config: Config, id: &str, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
    find(&config, id).await?;
    let a = Airlock::start(
        config,
        scrubber.clone(),
        StartOptions {
            only: Some(&[]),
            max_instances: 1,
            ..StartOptions::default()
        },
    )
    .await?;
    let r = approvals::deny(&a, id, &cli_user()).await;
    a.flush();
    show(&r?, &scrubber)?;
    Ok(ExitCode::SUCCESS)
}

/// The approval `id`, or an error naming it.
async fn find(config: &Config, id: &str) -> anyhow::Result<Approval> {
    let found = store(config).await?.approval(id).await?;
    found.ok_or_else(|| anyhow::anyhow!("no approval `{id}`"))
}

/// The configured store (`[store] url`, else the data directory's file).
async fn store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.server.data_dir, config.store.url.as_deref()).await
}

fn show(ap: &Approval, scrubber: &Scrubber) -> anyhow::Result<()> {
    println!(
        "{}",
        scrubber.scrub(&serde_json::to_string_pretty(
            &serde_json::json!({ "approval": ap })
        )?)
    );
    Ok(())
}
