//! `airlock oauth`: the sign-ins of Airlock's own OAuth authorization server (`[oauth]
//! authorization_server = "self"`): list them, and end one or all of a person's (an MCP client
//! signed in with it then gets 401 at its next request and must sign in again). Ending one is
//! audited (`oauth-revoked`, by the CLI user). Never prints a token.

use std::process::ExitCode;

use crate::store::audit;
use crate::store::backend::Store;
use crate::store::oauth_grants::GrantInfo;
use anyhow::bail;
use clap::{Args, Subcommand};

use super::common::{ConfigArg, cli_user};

#[derive(Args)]
pub struct OAuthArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(subcommand)]
    action: OAuthCmd,
}

#[derive(Subcommand)]
enum OAuthCmd {
    /// List sign-ins (grants): id, client, person, tenant, scopes, created, and why one ended.
    /// Live ones only unless --all.
    Grants {
        /// Also list ended sign-ins (revoked, replayed, or their API token revoked).
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// End a sign-in by its grant id (`grt_...` as `oauth grants` lists it), or every live
    /// sign-in of a person by their principal name. Its refresh token stops working at once,
    /// and so do its access tokens (each request checks the grant).
    Revoke {
        #[arg(value_name = "GRANT|PRINCIPAL")]
        target: String,
    },
}

impl OAuthArgs {
    pub async fn run(self, scrubber: crate::scrub::Scrubber) -> anyhow::Result<ExitCode> {
        let config = self.config.load()?;
        let store = Store::open(&config.server.data_dir, config.store.url.as_deref()).await?;
        if config.oauth.as_ref().is_none_or(|o| o.own.is_none()) {
            eprintln!(
                "note: {} does not make Airlock an OAuth authorization server ([oauth] \
                 authorization_server = \"self\"); listing what the store holds",
                config.path.display()
            );
        }
        match self.action {
            OAuthCmd::Grants { all, json } => {
                let list: Vec<GrantInfo> = store
                    .oauth_grants()
                    .await?
                    .into_iter()
                    .filter(|g| all || live(g))
                    .collect();
                print_grants(&list, json, all)?;
            }
            OAuthCmd::Revoke { target } => {
                let writer = audit::AuditWriter::start_on(
                    &store,
                    &config.server.data_dir,
                    scrubber,
                    &config.audit,
                )?;
                let ended = revoke(&store, &target).await?;
                for g in &ended {
                    record(&writer.log(), g);
                    println!("revoked {} ({} for {})", g.id, g.client_id, who(g));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn live(g: &GrantInfo) -> bool {
    g.revoked_at.is_none() && !g.api_token_revoked
}

fn who(g: &GrantInfo) -> &str {
    g.principal.as_deref().unwrap_or("an unknown API token")
}

fn print_grants(list: &[GrantInfo], json: bool, all: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!(
            "no {}sign-ins; a person signs in when an MCP client connects to /mcp",
            if all { "" } else { "live " }
        );
        return Ok(());
    }
    for g in list {
        let ended = match (&g.revoked_at, g.api_token_revoked) {
            (Some(at), _) => format!(
                "\tended {at}: {}",
                g.revoked_why.as_deref().unwrap_or("revoked")
            ),
            (None, true) => "\tended: its API token is revoked".to_string(),
            (None, false) => String::new(),
        };
        println!(
            "{}\t{}{}\t{}\ttenant={}\tscopes={}\tcreated {}{ended}",
            g.id,
            g.client_id,
            g.client_name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            who(g),
            g.tenant.as_deref().unwrap_or("-"),
            g.scopes.join(" "),
            g.created_at,
        );
    }
    Ok(())
}

/// Ends the grant `target`, or every live grant of the principal `target`.
async fn revoke(store: &Store, target: &str) -> anyhow::Result<Vec<GrantInfo>> {
    let all = store.oauth_grants().await?;
    let chosen: Vec<GrantInfo> = match all.iter().find(|g| g.id == target) {
        Some(g) if !live(g) => bail!("sign-in {target} has ended already"),
        Some(g) => vec![g.clone()],
        None => all
            .into_iter()
            .filter(|g| live(g) && g.principal.as_deref() == Some(target))
            .collect(),
    };
    if chosen.is_empty() {
        bail!(
            "no live sign-in has the grant id or principal `{target}` (see `airlock oauth grants`)"
        );
    }
    let mut ended = Vec::new();
    let why = format!("revoked by {} with the CLI", cli_user());
    for g in chosen {
        if store.revoke_oauth_grant(&g.id, &why).await? {
            ended.push(g);
        }
    }
    Ok(ended)
}

/// An `oauth-revoked` audit row like the revocation endpoint writes, by the CLI user.
fn record(log: &audit::AuditLog, g: &GrantInfo) {
    log.record(audit::AuditEvent {
        connector: "airlock".into(),
        invocation: ulid::Ulid::new().to_string(),
        event: "oauth-revoked".into(),
        decision: "allow".into(),
        reason: format!(
            "sign-in {} of client {} for {} ended with the CLI",
            g.id,
            g.client_id,
            who(g)
        ),
        principal: Some(cli_user()),
        ..Default::default()
    });
}
