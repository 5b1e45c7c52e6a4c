//! `airlock check`: load a .wasm file in a throwaway host and report its contract version,
//! streams and actions.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use crate::app::{Airlock, StartOptions};
use crate::config::Config;
use crate::runtime::connector::{self, LoadedConnector};
use crate::scrub::Scrubber;

#[derive(Args)]
pub struct CheckArgs {
    file: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl CheckArgs {
    pub async fn run(self, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
        let (scratch, host, loaded) = load(&self.file, scrubber).await?;
        let code = self.report(loaded);
        // The host's store and audit writer write on their way out (a clean stop signs the
        // chain's head): they close before their directory goes, or it would be made again.
        drop(host);
        let _ = std::fs::remove_dir_all(&scratch);
        code
    }

    fn report(&self, loaded: Result<Arc<LoadedConnector>, String>) -> anyhow::Result<ExitCode> {
        let c = match loaded {
            Ok(c) => c,
            Err(e) => {
                let e = e.replace(
                    "connector is not available: connector `check` failed to load: ",
                    "",
                );
                if self.json {
                    println!("{}", serde_json::json!({ "ok": false, "error": e }));
                } else {
                    eprintln!("error: {e}");
                }
                return Ok(ExitCode::FAILURE);
            }
        };
        if self.json {
            print_json(&self.file, &c)?;
        } else {
            print_text(&self.file, &c);
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Loads `file` as the only connector of a throwaway host: no grants, audit and cache in a
/// temporary directory. With that directory and the host, the connector or why it did not load.
async fn load(
    file: &Path,
    scrubber: Scrubber,
) -> anyhow::Result<(PathBuf, Airlock, Result<Arc<LoadedConnector>, String>)> {
    let tmp = tempdir()?;
    let text = format!(
        "[server]\ndata_dir = \"data\"\n[[connector]]\nid = \"check\"\ncomponent = {:?}\n",
        std::fs::canonicalize(file)
            .unwrap_or_else(|_| file.to_path_buf())
            .display()
            .to_string()
    );
    let options = StartOptions {
        only: None,
        max_instances: 4,
        ..StartOptions::default()
    };
    let started = match Config::parse(&text, &tmp.join("check.toml")) {
        Ok(config) => Airlock::start(config, scrubber, options).await,
        Err(e) => Err(e.into()),
    };
    let a = match started {
        Ok(a) => a,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let result = match a.connector("check") {
        Ok(c) => Ok(c.clone()),
        Err(e) => Err(e.to_string()),
    };
    Ok((tmp, a, result))
}

fn print_json(file: &Path, c: &LoadedConnector) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "ok": true,
            "file": file.display().to_string(),
            "contract": format!("{}@{}", connector::CONTRACT_PACKAGE, c.contract),
            "info": c.info,
            "compile": c.compile,
        }))?
    );
    Ok(())
}

fn print_text(file: &Path, c: &LoadedConnector) {
    let i = &c.info;
    println!("{}: ok", file.display());
    println!(
        "  contract   {}@{}",
        connector::CONTRACT_PACKAGE,
        c.contract
    );
    println!("  connector  {} {} — {}", i.name, i.version, i.description);
    println!(
        "  size       {} KiB, compiled in {:.0} ms",
        c.compile.size_bytes / 1024,
        c.compile.millis
    );
    let streams: Vec<String> = i.streams.iter().map(|s| s.name.clone()).collect();
    println!("  streams    {}", listed(&streams));
    let actions: Vec<String> = i
        .actions
        .iter()
        .map(|a| {
            if a.writes {
                format!("{} (writes)", a.name)
            } else {
                a.name.clone()
            }
        })
        .collect();
    println!("  actions    {}", listed(&actions));
}

/// Names joined with `, `, or `(none)`.
fn listed(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let p = std::env::temp_dir().join(format!("airlock-check-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&p)?;
    Ok(p)
}
