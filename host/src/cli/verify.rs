//! `airlock verify`: check a component's signature and sha256 pin as `airlock serve` will.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::common::ConfigArg;

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    config: ConfigArg,
    file: PathBuf,
    /// A trusted public key: the `RW...` line or a minisign .pub file (repeatable).
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// The digest the file must have.
    #[arg(long)]
    sha256: Option<String>,
}

impl VerifyArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        // The config is optional when keys are given on the command line.
        let config = if self.keys.is_empty() || self.config.config.exists() {
            Some(self.config.load()?)
        } else {
            None
        };
        let v = crate::integrity_cli::verify(
            &self.file,
            &self.keys,
            self.sha256.as_deref(),
            config.as_ref(),
        )?;
        println!(
            "{}: signature OK (key {}), sha256 {}",
            self.file.display(),
            v.signer,
            v.sha256
        );
        Ok(ExitCode::SUCCESS)
    }
}
