//! `airlock secrets`: set, list and remove secrets of the encrypted vault (values from stdin).

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use crate::scrub::MIN_SECRET_LEN;
use crate::store::backend::Store;
use crate::store::vault::Vault;

use super::common::ConfigArg;

#[derive(Args)]
pub struct SecretsArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(subcommand)]
    action: SecretsCmd,
}

#[derive(Subcommand)]
enum SecretsCmd {
    /// Store a secret; the value is read from stdin (e.g. `printf %s "$TOKEN" | airlock secrets set NAME`).
    Set { name: String },
    /// List secret names (never values).
    List,
    /// Remove a secret.
    Rm { name: String },
}

impl SecretsArgs {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let config = self.config.load()?;
        let dir = &config.server.data_dir;
        // The daemons' store: the data directory's SQLite file or the shared PostgreSQL.
        let store = Store::open(dir, config.store.url.as_deref()).await?;
        match self.action {
            SecretsCmd::Set { name } => {
                crate::store::vault::validate_name(&name).map_err(anyhow::Error::msg)?;
                let vault = Vault::open(dir)?;
                let value = read_value(&name)?;
                store.set_secret(&vault, &name, &value).await?;
                println!("stored secret `{name}` in {}", store.describe());
            }
            SecretsCmd::List => {
                for (name, updated) in store.secret_names().await? {
                    println!("{name}\t{updated}");
                }
            }
            SecretsCmd::Rm { name } => {
                if store.remove_secret(&name).await? {
                    println!("removed secret `{name}`");
                } else {
                    bail!("no secret named `{name}`");
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The value of secret `name` from stdin, without its final line break; refused when too short
/// to be a credential.
fn read_value(name: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        eprintln!(
            "Enter the value for `{name}` and press Ctrl-D (it is read from stdin, not echoed to logs):"
        );
    }
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .context("cannot read the value from stdin")?;
    let value = value.trim_end_matches(['\r', '\n']);
    if value.len() < MIN_SECRET_LEN {
        bail!("the value is too short to be a credential (at least {MIN_SECRET_LEN} characters)");
    }
    Ok(value.to_string())
}
