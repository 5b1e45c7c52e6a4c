//! `airlock new`: generate a project from a template (today: a connector crate).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct NewArgs {
    #[command(subcommand)]
    what: NewCmd,
}

#[derive(Subcommand)]
enum NewCmd {
    /// Generate a connector crate: Cargo.toml (depends on airlock-sdk by path), src/lib.rs with
    /// a synced stream with a cursor, search, get and a writing action, unit tests that pass
    /// natively, a README and an example config. Never overwrites: fails if the directory exists.
    ///
    /// Then: `cd NAME && cargo test --release && cargo build --release --target wasm32-wasip2`.
    Connector {
        /// Connector name: lowercase letters, digits and hyphens (e.g. `acme-wiki`).
        name: String,
        /// Directory to create (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The `sdk` directory of an Airlock checkout to depend on (default: the one this
        /// binary was built from).
        #[arg(long, env = "AIRLOCK_SDK_PATH")]
        sdk_path: Option<PathBuf>,
    },
}

impl NewArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self.what {
            NewCmd::Connector {
                name,
                dir,
                sdk_path,
            } => {
                let g = crate::scaffold::new_connector(&name, dir.as_deref(), sdk_path.as_deref())?;
                println!("created connector `{name}` in {}", g.dir.display());
                for f in &g.files {
                    println!("  {}", f.display());
                }
                println!("  (airlock-sdk from {})", g.sdk_dependency);
                println!("next:");
                println!("  cd {}", g.dir.display());
                println!("  cargo test --release");
                println!("  cargo build --release --target wasm32-wasip2");
                println!(
                    "  airlock check target/wasm32-wasip2/release/{}",
                    g.wasm_name
                );
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
