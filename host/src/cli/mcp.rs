//! `airlock mcp`: MCP on stdin/stdout for one token's principal, and where that token comes from.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;

use crate::scrub::Scrubber;

use super::common::ConfigArg;

#[derive(Args)]
pub struct McpArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// A file holding the API token (`airlock tokens create`), or give the token in the
    /// AIRLOCK_TOKEN environment variable; the tools see what it sees on REST. Never on the
    /// command line, where every local user can read it in the process list.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Removed: refused with a pointer to AIRLOCK_TOKEN and --token-file.
    #[arg(long, hide = true)]
    token: Option<String>,
}

impl McpArgs {
    pub async fn run(self, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
        let token = mcp_token(self.token_file.as_deref(), self.token.is_some())?;
        let config = self.config.load()?;
        crate::mcp::serve_stdio(config, token, scrubber).await?;
        Ok(ExitCode::SUCCESS)
    }
}

/// The token of `airlock mcp`: from `--token-file` or AIRLOCK_TOKEN, never from argv.
fn mcp_token(file: Option<&Path>, on_argv: bool) -> anyhow::Result<String> {
    if on_argv {
        bail!(
            "--token is no longer accepted: a token on the command line is visible to every local user; put it in AIRLOCK_TOKEN or in a file given with --token-file"
        );
    }
    let token = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the token file {}", f.display()))?,
        None => std::env::var("AIRLOCK_TOKEN").unwrap_or_default(),
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        bail!(
            "no token: set AIRLOCK_TOKEN or give --token-file FILE (make a token with `airlock tokens create`)"
        );
    }
    Ok(token)
}
