//! The sync schedule of `airlock serve`: one task per scheduled (connector, stream). A due run
//! waits for a slot (`crate::fair_slots`: capped on the node and per tenant, tenants served in
//! turn). A rate-limited stream waits until its resume time; a failed run waits for the next
//! interval.
//! A task ends by itself once a reload replaces or removes its connector.

use std::sync::Arc;

use crate::app::Airlock;
use crate::runtime::context::{self, CallContext};
use crate::sync::{RunEnd, SyncError};

/// Schedules every configured connector that has a `[connector.sync]` schedule.
pub fn spawn_scheduler(a: Arc<Airlock>) {
    let ids: Vec<String> = a.config().connectors.iter().map(|c| c.id.clone()).collect();
    spawn_scheduler_for(a, &ids);
}

/// Schedules the given connectors (after a reload: the added and reloaded ones), so schedules
/// never double up.
pub fn spawn_scheduler_for(a: Arc<Airlock>, ids: &[String]) {
    let config = a.config();
    for c in config.connectors.iter().filter(|c| ids.contains(&c.id)) {
        let Some(schedule) = c.sync.clone() else {
            continue;
        };
        let Some(generation) = a.generation(&c.id) else {
            continue;
        };
        let streams = match a.streams_of(&c.id, None) {
            Ok(all) => match &schedule.streams {
                Some(only) => only.iter().filter(|s| all.contains(s)).cloned().collect(),
                None => all,
            },
            Err(e) => {
                tracing::warn!(connector = %c.id, "not scheduling sync: {e}");
                continue;
            }
        };
        for stream in streams {
            let task = StreamTask {
                a: a.clone(),
                id: c.id.clone(),
                stream,
                generation,
                interval: schedule.interval,
            };
            tokio::spawn(task.run());
        }
    }
}

/// One scheduled stream of one loaded version of a connector.
struct StreamTask {
    a: Arc<Airlock>,
    id: String,
    stream: String,
    generation: u64,
    interval: std::time::Duration,
}

impl StreamTask {
    /// Whether the connector version this task was scheduled for is still the loaded one.
    fn current(&self) -> bool {
        self.a.generation(&self.id) == Some(self.generation)
    }

    async fn run(self) {
        loop {
            let wait = self.a.syncer.resume_wait(&self.id, &self.stream).await;
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            if !self.current() {
                return;
            }
            // A slot first: the node's and the tenant's caps, tenants served in turn.
            let tenant = self
                .a
                .config()
                .tenant_of(&self.id)
                .unwrap_or_default()
                .to_string();
            let slot = self.a.sync_slots.acquire(&tenant).await;
            if !self.current() {
                return;
            }
            let ctx = CallContext::trusted().by("daemon:scheduler");
            let run = self.a.sync_stream(&self.id, &self.stream, false, |_| {});
            let (id, stream) = (&self.id, &self.stream);
            let outcome = context::with(ctx, run).await;
            drop(slot);
            match outcome {
                Ok(r) => {
                    tracing::info!(connector = %id, stream = %stream, "sync run: {} pages, {} upserts, {} deletes in {:.1}s ({:?})", r.pages, r.upserts, r.deletes, r.seconds, r.end);
                    if matches!(r.end, RunEnd::RateLimited { .. }) {
                        continue; // resume_wait sleeps until the upstream allows it
                    }
                }
                Err(SyncError::AlreadyRunning(..)) => {}
                // Another process runs it (a daemon sharing the store, or `airlock sync`).
                Err(e @ SyncError::RunningElsewhere { .. }) => {
                    tracing::debug!(connector = %id, stream = %stream, "{e}")
                }
                Err(e) => {
                    tracing::warn!(connector = %id, stream = %stream, "sync run failed: {e}")
                }
            }
            tokio::time::sleep(self.interval).await;
            if !self.current() {
                return;
            }
        }
    }
}
