//! `airlock serve`: the daemon, serving the HTTP API until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use crate::app::{Airlock, StartOptions};
use crate::scrub::Scrubber;

use super::common::ConfigArg;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Listen address (overrides `server.listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

impl ServeArgs {
    pub async fn run(self, scrubber: Scrubber) -> anyhow::Result<ExitCode> {
        let config = self.config.load()?;
        let addr = self.listen.unwrap_or(config.server.listen);
        let path = config.path.clone();
        // Before the daemon starts, so its first invocations are exported too. Settings are
        // read once: a reload does not change where spans go.
        let exporting =
            crate::telemetry::start(&config.telemetry, &config.outbound, scrubber.clone())
                .context("cannot start the span export")?;
        if let Some(e) = &exporting {
            tracing::info!(
                "spans are exported over OTLP/HTTP to {} as service `{}`",
                e.traces_url,
                config.telemetry.service_name
            );
        }
        let a = Arc::new(Airlock::start(config, scrubber, StartOptions::default()).await?);
        let ready = a.statuses().iter().filter(|s| s.status == "ready").count();
        let listener = crate::server::listen(addr, a.config().server.listen_backlog)
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        tracing::info!(
            "airlock serving {} connector(s) ({} ready) from {} on http://{local}",
            a.slots().len(),
            ready,
            path.display()
        );
        a.spawn_ann_upkeep();
        crate::scheduler::spawn_scheduler(a.clone());
        crate::reload::spawn(a.clone());
        crate::webhooks::start(a.clone()).await?;
        crate::subscriptions::start(a.clone());
        // The address really listened on (`--listen` overrides the config) decides whether
        // `/metrics` may stay open.
        let app = crate::server::router(a.clone())
            .layer(axum::Extension(crate::api::auth::Listening(local)));
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        tracing::info!("shutting down");
        // The other daemons on a shared store take this one's share of each grant's rate now,
        // not when its rows expire.
        a.leave_shares().await;
        // A clean stop anchors the newest rows with a signed checkpoint.
        a.flush_and_checkpoint();
        // The last spans are sent (or given up on) before the process ends; off the async
        // workers, which carry the exporter's requests.
        if let Some(e) = exporting {
            let _ = tokio::task::spawn_blocking(move || e.shutdown()).await;
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Resolves at Ctrl-C, or at SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
