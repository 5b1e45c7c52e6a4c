//! `airlock sync`: sync streams into the local store with progress, or show every stream's
//! sync status (`--status`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;

use crate::app::{Airlock, StartOptions};
use crate::cassette::Cassettes;
use crate::config::Config;
use crate::runtime::context::CallContext;
use crate::scrub::Scrubber;

use super::common::{ConfigArg, cli_user, named_or_all, replay_from};

#[derive(Args)]
pub struct SyncArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Only this connector.
    connector: Option<String>,
    /// Only this stream.
    #[arg(long)]
    stream: Option<String>,
    /// Start from the beginning instead of the stored cursor.
    #[arg(long)]
    full: bool,
    /// Show the sync status of every stream instead of syncing.
    #[arg(long)]
    status: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Answer the upstream requests from this cassette instead of the network.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
}

impl SyncArgs {
    pub async fn run(self, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
        let config = self.config.load()?;
        if self.status {
            return sync_status(&config, self.json).await;
        }
        let cassettes = match &self.replay {
            Some(file) => replay_from(&named_or_all(&config, self.connector.as_deref()), file)?,
            None => Default::default(),
        };
        self.sync(config, cassettes, scrubber).await
    }

    async fn sync(
        self,
        config: Config,
        cassettes: Cassettes,
        scrubber: Scrubber,
    ) -> anyhow::Result<ExitCode> {
        if let Some(c) = &self.connector
            && config.connector(c).is_none()
        {
            bail!(
                "{}: no connector `{c}` is configured",
                config.path.display()
            );
        }
        let ids = named_or_all(&config, self.connector.as_deref());
        let a = Airlock::start(
            config,
            scrubber.clone(),
            StartOptions {
                only: Some(&ids),
                max_instances: 16,
                cassettes,
            },
        )
        .await?;
        let tty = std::io::stderr().is_terminal();
        let mut failures = 0;
        let ran = async {
            for id in &ids {
                let streams = match a.streams_of(id, self.stream.as_deref()) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("error: {}", scrubber.scrub(&e.to_string()));
                        failures += 1;
                        continue;
                    }
                };
                for s in streams {
                    if !self.sync_stream(&a, id, &s, tty, &scrubber).await? {
                        failures += 1;
                    }
                }
            }
            anyhow::Ok(())
        }
        .await;
        // Also after an error: the shares go back and the audit rows are kept.
        a.leave_shares().await;
        a.flush();
        ran?;
        Ok(if failures == 0 {
            ExitCode::SUCCESS
        } else {
            super::exit::FAILED
        })
    }

    /// Runs one stream with progress on stderr and prints its outcome; false when it failed.
    async fn sync_stream(
        &self,
        a: &Airlock,
        id: &str,
        s: &str,
        tty: bool,
        scrubber: &Scrubber,
    ) -> anyhow::Result<bool> {
        let bar = tty.then(spinner);
        let mut last_line = Instant::now();
        let run = a.sync_stream(id, s, self.full, |p| {
            let msg = format!(
                "{}/{}: {} pages, {} records, {:.0} records/s",
                p.connector,
                p.stream,
                p.pages,
                p.records,
                p.records_per_sec()
            );
            match &bar {
                Some(pb) => pb.set_message(msg),
                // Plain lines when not on a terminal, at most one a second.
                None if last_line.elapsed().as_secs_f64() >= 1.0 => {
                    eprintln!("{msg}");
                    last_line = Instant::now();
                }
                None => {}
            }
        });
        let ctx = CallContext::trusted().by(&cli_user());
        let result = crate::runtime::context::with(ctx, run).await;
        if let Some(pb) = bar {
            pb.finish_and_clear();
        }
        match result {
            Ok(r) if self.json => println!("{}", serde_json::to_string(&r)?),
            Ok(r) => {
                let end = match r.end {
                    crate::sync::RunEnd::Done => "caught up".to_string(),
                    crate::sync::RunEnd::RateLimited { retry_after_secs } => {
                        format!("rate-limited, resume in {retry_after_secs}s")
                    }
                };
                println!(
                    "{id}/{s}: {} pages, {} upserts, {} deletes in {:.1}s ({:.0} records/s), {end}",
                    r.pages,
                    r.upserts,
                    r.deletes,
                    r.seconds,
                    (r.upserts + r.deletes) as f64 / r.seconds.max(1e-6)
                );
            }
            Err(e) => {
                eprintln!("error: {id}/{s}: {}", scrubber.scrub(&e.to_string()));
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The progress spinner of a stream on a terminal.
fn spinner() -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

async fn sync_status(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let store =
        crate::store::backend::Store::open(&config.server.data_dir, config.store.url.as_deref())
            .await?;
    let states = store.sync_states().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&states)?);
        return Ok(ExitCode::SUCCESS);
    }
    if states.is_empty() {
        println!("no stream has been synced yet");
    }
    for s in states {
        println!(
            "{}/{}: {} records stored (last run: {} upserts, {} deletes), last success {}, cursor age {}{}{}",
            s.connector,
            s.stream,
            s.records,
            s.last_run_upserts,
            s.last_run_deletes,
            s.last_success_at.as_deref().unwrap_or("never"),
            age(s.cursor_updated_at.as_deref()),
            s.last_error
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default(),
            s.resume_after
                .map(|r| format!(", rate-limited until {r}"))
                .unwrap_or_default(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// How long ago an RFC 3339 time was, to the second; `-` when unknown.
fn age(ts: Option<&str>) -> String {
    ts.and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .map(|d| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string())
        .unwrap_or_else(|| "-".into())
}
