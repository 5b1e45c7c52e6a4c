//! `airlock tokens`: create, list and revoke API tokens; creating and revoking are audited.

use std::process::ExitCode;

use crate::config::Config;
use crate::scrub::Scrubber;
use crate::store::audit;
use crate::store::backend::Store;
use crate::store::tokens::TokenInfo;
use anyhow::bail;
use clap::{Args, Subcommand};

use super::common::{ConfigArg, cli_user};

#[derive(Args)]
pub struct TokensArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(subcommand)]
    action: TokensCmd,
}

#[derive(Subcommand)]
enum TokensCmd {
    /// Create a token and print it once on stdout (it cannot be shown again; store it now).
    Create {
        /// The principal's name (matched against document ACLs).
        #[arg(long)]
        principal: String,
        /// The tenant whose connectors, documents and audit rows the token may reach.
        #[arg(long, default_value = crate::config::DEFAULT_TENANT)]
        tenant: String,
        /// Groups of the principal, comma-separated (matched against document ACLs).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// May trigger syncs and read the audit log (of its tenant).
        #[arg(long)]
        admin: bool,
        /// Give the token the `proxy` scope for these connectors (comma-separated or repeated):
        /// it may send its own requests through their grants at `/v1/proxy/CONNECTOR/...`.
        #[arg(long, value_delimiter = ',', value_name = "CONNECTOR")]
        proxy: Vec<String>,
    },
    /// List tokens: id, principal, tenant, groups, admin, created, revoked (never the token).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (`tok_...`), or every token of a principal by its name.
    Revoke {
        #[arg(value_name = "ID|PRINCIPAL")]
        target: String,
    },
}

impl TokensArgs {
    pub async fn run(self, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
        let config = self.config.load()?;
        // The daemons' store: the data directory's SQLite file or the shared PostgreSQL.
        let store = Store::open(&config.server.data_dir, config.store.url.as_deref()).await?;
        // Dropped at the end of the command, which flushes the rows.
        let writer =
            audit::AuditWriter::start_on(&store, &config.server.data_dir, scrubber, &config.audit)?;
        match self.action {
            TokensCmd::Create {
                principal,
                tenant,
                groups,
                admin,
                proxy,
            } => {
                let scope = Scope {
                    groups,
                    admin,
                    proxy,
                };
                create(&config, &store, &writer, &principal, &tenant, scope).await?
            }
            TokensCmd::List { json } => list(&store, json).await?,
            TokensCmd::Revoke { target } => revoke(&store, &writer, &target).await?,
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// What a new token may do beyond reading its tenant.
struct Scope {
    groups: Vec<String>,
    admin: bool,
    proxy: Vec<String>,
}

/// The non-blank entries of a comma-separated option, trimmed.
fn names(list: Vec<String>) -> Vec<String> {
    let list = list.into_iter().map(|g| g.trim().to_string());
    list.filter(|g| !g.is_empty()).collect()
}

async fn create(
    config: &Config,
    store: &Store,
    writer: &audit::AuditWriter,
    principal: &str,
    tenant: &str,
    scope: Scope,
) -> anyhow::Result<()> {
    let (groups, proxy, admin) = (names(scope.groups), names(scope.proxy), scope.admin);
    if !config.connectors.iter().any(|c| c.tenant == tenant) {
        eprintln!(
            "warning: no connector in {} belongs to tenant `{tenant}`",
            config.path.display()
        );
    }
    // A proxy scope for a connector the token could never reach is a mistake, not a no-op.
    for c in &proxy {
        match config.connectors.iter().find(|x| &x.id == c) {
            None => bail!(
                "--proxy {c}: no connector `{c}` in {}",
                config.path.display()
            ),
            Some(x) if x.tenant != tenant => bail!(
                "--proxy {c}: connector `{c}` belongs to tenant `{}`, not `{tenant}`",
                x.tenant
            ),
            Some(_) => {}
        }
    }
    let (info, token) = store
        .create_token(principal, tenant, &groups, admin, &proxy)
        .await?;
    token_audit(&writer.log(), "created", &info);
    eprintln!(
        "created {} for principal `{}` in tenant `{}`{}{}; the token is shown only now:",
        info.id,
        info.principal,
        info.tenant,
        if info.groups.is_empty() {
            String::new()
        } else {
            format!(", groups {}", info.groups.join(","))
        },
        if info.admin { ", admin" } else { "" },
    );
    if !info.proxy.is_empty() {
        eprintln!("proxy scope: {}", info.proxy.join(","));
    }
    println!("{token}");
    Ok(())
}

async fn list(store: &Store, json: bool) -> anyhow::Result<()> {
    let list = store.tokens().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.is_empty() {
        println!("no tokens; create one with `airlock tokens create --principal NAME`");
    } else {
        for t in list {
            println!(
                "{}\t{}\ttenant={}\tgroups={}\t{}\tproxy={}\tcreated {}{}",
                t.id,
                t.principal,
                t.tenant,
                t.groups.join(","),
                if t.admin { "admin" } else { "-" },
                t.proxy.join(","),
                t.created_at,
                t.revoked_at
                    .map(|r| format!("\trevoked {r}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

async fn revoke(store: &Store, writer: &audit::AuditWriter, target: &str) -> anyhow::Result<()> {
    let ids = store.revoke_tokens(target).await?;
    if ids.is_empty() {
        bail!("no live token has the id or principal `{target}`");
    }
    let all = store.tokens().await?;
    for id in ids {
        if let Some(info) = all.iter().find(|t| t.id == id) {
            token_audit(&writer.log(), "revoked", info);
        }
        println!("revoked {id}");
    }
    Ok(())
}

/// A `token` audit row, written by the CLI user: which token (id, principal, tenant, admin),
/// never its value.
fn token_audit(log: &audit::AuditLog, decision: &str, t: &TokenInfo) {
    log.record(audit::AuditEvent {
        // Tokens belong to no connector.
        connector: String::new(),
        invocation: t.id.clone(),
        event: "token".into(),
        decision: decision.into(),
        reason: format!(
            "token {} {decision} for principal `{}` in tenant `{}` (admin: {}, groups: [{}], proxy: [{}])",
            t.id,
            t.principal,
            t.tenant,
            t.admin,
            t.groups.join(","),
            t.proxy.join(",")
        ),
        principal: Some(cli_user()),
        ..Default::default()
    });
}
