//! Host-owned incremental sync: the page loop (each page's upserts, deletes and next cursor are
//! committed in one SQLite transaction, so a crash anywhere resumes from the last committed
//! page), one run per stream at a time, and progress reports. [`Syncer`] is owned by
//! [`crate::app::Airlock`]; the schedule of `airlock serve` lives in [`crate::scheduler`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tracing::Instrument;

use crate::metrics::{Metrics, StreamLabels};
use crate::model::Stall;
use crate::runtime::connector::{InvokeError, LoadedConnector, RunInstance};
use crate::runtime::context::{self, CallContext};
use crate::store::audit::AuditLog;
use crate::store::backend::{PageCommit, Store};
use crate::store::leases::{Lease, LeaseLost};
use crate::store::sync_state;

/// How a run ended (errors are `Err`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum RunEnd {
    /// The stream is caught up.
    Done,
    /// The upstream asked to slow down; the run stopped cleanly and resumes after this many
    /// seconds. Not a failure.
    RateLimited { retry_after_secs: u32 },
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub connector: String,
    pub stream: String,
    pub pages: u64,
    pub upserts: u64,
    pub deletes: u64,
    pub seconds: f64,
    #[serde(flatten)]
    pub end: RunEnd,
}

/// Progress after each committed page.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    pub connector: &'a str,
    pub stream: &'a str,
    pub pages: u64,
    pub records: u64,
    pub elapsed: Duration,
}

impl Progress<'_> {
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-6)
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("a sync of {0}/{1} is already running")]
    AlreadyRunning(String, String),
    /// Another process (a daemon or `airlock sync` on the same store) holds the job's lease.
    #[error(
        "a sync of {connector}/{stream} is running in another process ({owner}); it holds the job's lease until it finishes or stops renewing it"
    )]
    RunningElsewhere {
        connector: String,
        stream: String,
        owner: String,
    },
    /// The lease was taken over mid-run (this process stalled past it): the run stopped
    /// without committing its page; the new owner resumes from the last committed cursor.
    #[error("{0}")]
    LeaseLost(#[from] crate::store::leases::LeaseLost),
    #[error("connector `{connector}` has no stream `{stream}` (it has: {available})")]
    UnknownStream {
        connector: String,
        stream: String,
        available: String,
    },
    #[error("{0}")]
    Invoke(#[from] InvokeError),
    #[error("connector broke the sync contract: {0}")]
    Contract(String),
    #[error("store: {0:#}")]
    Store(#[from] anyhow::Error),
}

/// One lock per (connector, stream), shared by the scheduler, the API and the CLI of this process.
#[derive(Default)]
pub struct SyncLocks {
    running: Mutex<HashMap<(String, String), Instant>>,
}

struct RunGuard<'a> {
    locks: &'a SyncLocks,
    key: (String, String),
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.locks.running.lock() {
            m.remove(&self.key);
        }
    }
}

impl SyncLocks {
    fn acquire(&self, connector: &str, stream: &str) -> Result<RunGuard<'_>, SyncError> {
        let key = (connector.to_string(), stream.to_string());
        let mut m = self
            .running
            .lock()
            .map_err(|_| SyncError::Store(anyhow::anyhow!("sync lock poisoned")))?;
        if m.contains_key(&key) {
            return Err(SyncError::AlreadyRunning(key.0, key.1));
        }
        m.insert(key.clone(), Instant::now());
        Ok(RunGuard { locks: self, key })
    }

    /// Whether a run of this stream is in progress.
    pub fn is_running(&self, connector: &str, stream: &str) -> bool {
        self.running
            .lock()
            .map(|m| m.contains_key(&(connector.to_string(), stream.to_string())))
            .unwrap_or(false)
    }
}

/// The streams of a connector (all of them when `only` is None).
pub fn streams_of(c: &LoadedConnector, only: Option<&str>) -> Result<Vec<String>, SyncError> {
    let all: Vec<String> = c.info.streams.iter().map(|s| s.name.clone()).collect();
    match only {
        None => Ok(all),
        Some(s) if all.iter().any(|x| x == s) => Ok(vec![s.to_string()]),
        Some(s) => Err(SyncError::UnknownStream {
            connector: c.id.clone(),
            stream: s.into(),
            available: if all.is_empty() {
                "none".into()
            } else {
                all.join(", ")
            },
        }),
    }
}

/// Runs the sync of every connector of one daemon: the store it commits to, the metrics it
/// counts in, and the lock that keeps one run per (connector, stream).
pub struct Syncer {
    store: Store,
    metrics: Arc<Metrics>,
    locks: SyncLocks,
    /// A page is committed only once the rows of the requests that fetched it are durable.
    audit: AuditLog,
    /// How long the change feed keeps its rows, and when this process last pruned it.
    changes_retention: Duration,
    last_prune: Mutex<Option<Instant>>,
    /// This process as the owner of sync job leases, and how long a lease lasts unrenewed.
    owner: String,
    lease_ttl: Duration,
}

/// How long a sync job's lease lasts without renewal: a run renews it every third of this
/// (and with every page commit); a process that dies loses its jobs after it (at once to a
/// process of the same machine, which can see the owner is gone).
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// How often a syncing process prunes the change feed (in a page's own transaction).
const PRUNE_EVERY: Duration = Duration::from_secs(600);

impl Syncer {
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        audit: AuditLog,
        changes_retention: Duration,
    ) -> Syncer {
        Syncer {
            store,
            metrics,
            locks: SyncLocks::default(),
            audit,
            changes_retention,
            last_prune: Mutex::new(None),
            owner: crate::store::leases::this_process(),
            lease_ttl: LEASE_TTL,
        }
    }

    /// The cut-off time (RFC 3339) when the change feed is due for pruning, at most every
    /// [`PRUNE_EVERY`] per process.
    fn prune_due(&self) -> Option<String> {
        let mut last = self.last_prune.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            return None;
        }
        *last = Some(Instant::now());
        let cut = SystemTime::now().checked_sub(self.changes_retention)?;
        Some(humantime::format_rfc3339_millis(cut).to_string())
    }

    /// Whether a run of this stream is in progress.
    pub fn is_running(&self, connector: &str, stream: &str) -> bool {
        self.locks.is_running(connector, stream)
    }

    /// How long until a rate-limited stream may run again (zero when it may run now).
    pub async fn resume_wait(&self, connector: &str, stream: &str) -> Duration {
        let resume = self
            .store
            .sync_state(connector, stream)
            .await
            .ok()
            .flatten()
            .and_then(|s| s.resume_after);
        resume
            .and_then(|r| humantime::parse_rfc3339(&r).ok())
            .and_then(|t| t.duration_since(SystemTime::now()).ok())
            .unwrap_or(Duration::ZERO)
    }
    /// Runs one stream until it is caught up, rate-limited or fails.
    pub async fn run_stream(
        &self,
        c: &LoadedConnector,
        stream: &str,
        full: bool,
        on_progress: impl FnMut(&Progress<'_>),
    ) -> Result<RunReport, SyncError> {
        streams_of(c, Some(stream))?;
        let _guard = self.locks.acquire(&c.id, stream)?;
        // One run per stream across every process sharing the store: the job's lease.
        let lease = match self
            .store
            .claim_lease(&c.id, stream, &self.owner, self.lease_ttl)
            .await?
        {
            Ok(lease) => lease,
            Err(owner) => {
                return Err(SyncError::RunningElsewhere {
                    connector: c.id.clone(),
                    stream: stream.into(),
                    owner,
                });
            }
        };
        // Stopped when the run ends, or when its future is dropped (a cancelled run): a lease
        // nobody renews expires, and this process takes its own stale lease back at once.
        let heartbeat = AbortOnDrop(tokio::spawn(heartbeat(
            self.store.clone(),
            lease.clone(),
            self.lease_ttl,
        )));
        // The status shows this run's `host.progress` reports, never the previous run's.
        c.ctx.progress.clear(stream);
        let result = self.page_loop(c, stream, full, &lease, on_progress).await;
        drop(heartbeat);
        if let Err(e) = self.store.release_lease(&lease).await {
            // It expires on its own.
            tracing::warn!(connector = %c.id, stream, "could not release the sync lease: {e:#}");
        }
        result
    }

    async fn page_loop(
        &self,
        c: &LoadedConnector,
        stream: &str,
        full: bool,
        lease: &Lease,
        mut on_progress: impl FnMut(&Progress<'_>),
    ) -> Result<RunReport, SyncError> {
        let connector = c.id.as_str();
        let store = self.store.clone();
        if full {
            store.reset_cursor(connector, stream).await?;
        }
        let mut cursor = store
            .sync_state(connector, stream)
            .await?
            .and_then(|s| s.cursor);
        let started = Instant::now();
        let mut report = RunReport {
            connector: connector.into(),
            stream: stream.into(),
            pages: 0,
            upserts: 0,
            deletes: 0,
            seconds: 0.0,
            end: RunEnd::Done,
        };
        let mut pending: Option<Pending> = None;
        let mut first_page = true;
        // The run's pages share an instance while they end well (see `sync_page_in`).
        let mut instance = RunInstance::default();
        // Signed: OpenTelemetry has integers only as i64 (a u64 would be exported as text).
        let mut page_no: i64 = 0;
        loop {
            // The previous page's commit (if any) runs while this page is fetched. The page's
            // invocation id is chosen here: what it commits names the call whose audit rows
            // fetched it, for `audit verify` to check.
            let invocation = ulid::Ulid::new().to_string();
            let call = CallContext {
                invocation: Some(invocation.clone()),
                ..context::current()
            };
            page_no += 1;
            // The page's fetch (its invocation) and its commit share one span.
            let span = tracing::info_span!(
                "sync_page",
                connector,
                stream,
                page = page_no,
                invocation = %invocation,
            );
            let page = c.sync_page_in(&mut instance, stream, cursor.clone());
            let fetched = context::with(call, page).instrument(span.clone()).await;
            if fetched.is_err() {
                settle(&mut pending, &mut report, started, &mut on_progress).await?;
            }
            let page = match fetched {
                Ok(p) => p,
                Err(InvokeError::Connector(e)) if e.code == "rate-limited" => {
                    let secs = e.retry_after.unwrap_or(60).max(1);
                    let resume = humantime::format_rfc3339_seconds(
                        SystemTime::now() + Duration::from_secs(secs.into()),
                    )
                    .to_string();
                    store
                        .record_rate_limited(connector, stream, &resume)
                        .await?;
                    span.in_scope(|| {
                        tracing::info!(
                            connector,
                            stream,
                            "rate-limited; the run stops and resumes in {secs}s"
                        )
                    });
                    report.end = RunEnd::RateLimited {
                        retry_after_secs: secs,
                    };
                    report.seconds = started.elapsed().as_secs_f64();
                    return Ok(report);
                }
                Err(e) => {
                    store
                        .record_sync_error(connector, stream, &e.to_string())
                        .await?;
                    return Err(e.into());
                }
            };
            if let Some(stall) = page.stall(|c| cursor.as_deref() == Some(c)) {
                settle(&mut pending, &mut report, started, &mut on_progress).await?;
                let msg = match stall {
                Stall::NoCursor => "page is not done but has no next cursor".to_string(),
                Stall::RepeatedCursor => {
                    "page is not done but repeats the cursor it was given (the run would never end)"
                        .to_string()
                }
            };
                store.record_sync_error(connector, stream, &msg).await?;
                return Err(SyncError::Contract(msg));
            }
            let (ups, dels) = page.counts();
            let done = page.done();
            let next = page.next_cursor().map(str::to_string);
            // Commits stay strictly in order: page N+1 is committed only after page N.
            settle(&mut pending, &mut report, started, &mut on_progress).await?;
            self.metrics
                .sync_records
                .get_or_create(&StreamLabels {
                    connector: connector.to_string(),
                    stream: stream.to_string(),
                })
                .inc_by(ups + dels);
            self.metrics
                .last_hour
                .sync_page(connector, stream, ups + dels);
            let counts = sync_state::PageCounts {
                upserts: ups as i64,
                deletes: dels as i64,
                first: std::mem::take(&mut first_page),
            };
            // A page run again after a crash on the kept instance was fetched by its retry.
            let invocation = instance.retried_as().map_or(invocation, str::to_string);
            let audit = self.audit.clone();
            let commit_to = store.clone();
            let (connector_id, stream_name) = (connector.to_string(), stream.to_string());
            let prune_before = self.prune_due();
            let (lease, lease_ttl) = (lease.clone(), self.lease_ttl);
            let commit = tokio::spawn(
                async move {
                    // The page becomes the model's (scrubbed) here, off the invoking thread,
                    // while the next page is fetched. Write-ahead: the rows of the requests
                    // behind this page first, so a crash never keeps a page whose requests
                    // have no audit row.
                    let span = tracing::Span::current();
                    let page = tokio::task::spawn_blocking(move || {
                        let page = span.in_scope(|| page.into_page());
                        audit.flush_durable().map(|()| page)
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("page conversion or audit flush: {e}"))??;
                    let commit = PageCommit {
                        connector: connector_id,
                        stream: stream_name,
                        invocation: Some(invocation),
                        upserts: page.upserts,
                        deletes: page.deletes,
                        next_cursor: page.next_cursor,
                        counts,
                        done: page.done,
                        prune_before,
                        lease: Some(lease),
                        lease_ttl,
                    };
                    commit_to.commit_page(commit).await?;
                    commit_to.notify_committed();
                    tracing::debug!(upserts = ups, deletes = dels, "page committed");
                    Ok(())
                }
                .instrument(span),
            );
            pending = Some(Pending { commit, ups, dels });
            cursor = next;
            if done {
                settle(&mut pending, &mut report, started, &mut on_progress).await?;
                report.seconds = started.elapsed().as_secs_f64();
                return Ok(report);
            }
        }
    }
}

/// Renews a run's lease every third of its time while pages are fetched (a page may take longer
/// than a commit interval). A lost lease is noticed by the next commit's fencing check.
async fn heartbeat(store: Store, lease: Lease, ttl: Duration) {
    let mut tick = tokio::time::interval(ttl / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        match store.renew_lease(&lease, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    connector = %lease.connector,
                    stream = %lease.stream,
                    "the sync job's lease was taken over; this run stops at its next commit"
                );
                return;
            }
            Err(e) => tracing::warn!(
                connector = %lease.connector,
                stream = %lease.stream,
                "could not renew the sync job's lease: {e:#}"
            ),
        }
    }
}

/// A spawned task that ends with its owner.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A page commit running while the next page is fetched.
struct Pending {
    commit: tokio::task::JoinHandle<anyhow::Result<()>>,
    ups: u64,
    dels: u64,
}

/// Waits for the in-flight commit, if any, and reports progress once it is durable.
async fn settle(
    pending: &mut Option<Pending>,
    report: &mut RunReport,
    started: Instant,
    on_progress: &mut impl FnMut(&Progress<'_>),
) -> Result<(), SyncError> {
    let Some(p) = pending.take() else {
        return Ok(());
    };
    let committed = p
        .commit
        .await
        .map_err(|e| SyncError::Store(anyhow::anyhow!("commit task failed: {e}")))?;
    committed.map_err(|e| match e.downcast::<LeaseLost>() {
        Ok(lost) => SyncError::LeaseLost(lost),
        Err(e) => SyncError::Store(e),
    })?;
    report.pages += 1;
    report.upserts += p.ups;
    report.deletes += p.dels;
    on_progress(&Progress {
        connector: &report.connector,
        stream: &report.stream,
        pages: report.pages,
        records: report.upserts + report.deletes,
        elapsed: started.elapsed(),
    });
    Ok(())
}
