//! `airlock sign`: sign a component with a minisign key, or make a key pair.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::integrity_cli;

#[derive(Args)]
pub struct SignArgs {
    /// The secret key file (an encrypted one needs its password in AIRLOCK_SIGN_PASSWORD).
    #[arg(long, value_name = "KEY", required_unless_present = "generate_key")]
    key: Option<PathBuf>,
    /// Make a new key pair at KEY and KEY.pub, and print the public key for `[trust] keys`.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["key", "file"])]
    generate_key: Option<PathBuf>,
    /// The component to sign.
    #[arg(required_unless_present = "generate_key")]
    file: Option<PathBuf>,
}

impl SignArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if let Some(k) = self.generate_key {
            let line = integrity_cli::generate_key(&k)?;
            println!("[trust]\nkeys = [\"{line}\"]");
        } else if let (Some(k), Some(f)) = (self.key, self.file) {
            let out = integrity_cli::sign(&k, &f)?;
            eprintln!("signed {}: {}", f.display(), out.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}
