//! Listener startup, shutdown, request counting and the rate-limit knob, shared by every fake.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Requests a fake received on its upstream routes (control routes under `/_fake/` are not counted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub total: u64,
    /// Keyed by URL path without the query string.
    pub by_path: BTreeMap<String, u64>,
}

/// Per-fake bookkeeping that is the same for every upstream: counters, fault knobs, shutdown signal.
pub struct Core {
    counts: Mutex<RequestCounts>,
    faults: crate::faults::Faults,
    rate_limit_every: AtomicU64,
    seen: AtomicU64,
    stop: watch::Sender<bool>,
}

impl Core {
    pub fn new(rate_limit_every: Option<u64>) -> Self {
        Core {
            counts: Mutex::default(),
            faults: crate::faults::Faults::default(),
            rate_limit_every: AtomicU64::new(rate_limit_every.unwrap_or(0)),
            seen: AtomicU64::new(0),
            stop: watch::channel(false).0,
        }
    }
    fn lock(&self) -> MutexGuard<'_, RequestCounts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Counts one upstream request and says whether the rate-limit knob wants it answered with 429.
    pub fn record(&self, path: &str) -> bool {
        self.count(path);
        let every = self.rate_limit_every.load(Ordering::Relaxed);
        every > 0 && (self.seen.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(every)
    }
    /// Counts one upstream request without consulting the rate-limit knob.
    pub fn count(&self, path: &str) {
        let mut c = self.lock();
        c.total += 1;
        *c.by_path.entry(path.to_owned()).or_default() += 1;
    }
    pub fn faults(&self) -> &crate::faults::Faults {
        &self.faults
    }
    pub fn counts(&self) -> RequestCounts {
        self.lock().clone()
    }
    pub fn reset_counts(&self) {
        *self.lock() = RequestCounts::default();
    }
    /// `Some(n)`: every n-th upstream request gets 429. `None` or `Some(0)`: off.
    pub fn set_rate_limit_every(&self, n: Option<u64>) {
        self.rate_limit_every
            .store(n.unwrap_or(0), Ordering::Relaxed);
        self.seen.store(0, Ordering::Relaxed);
    }
    pub fn rate_limit_every(&self) -> Option<u64> {
        Some(self.rate_limit_every.load(Ordering::Relaxed)).filter(|n| *n > 0)
    }
    /// Asks the server to stop accepting connections and close the open ones.
    pub fn request_shutdown(&self) {
        self.stop.send_replace(true);
    }
}

/// Implemented by each fake's shared state so [`RunningFake`] can reach the common bookkeeping.
pub trait FakeState: Send + Sync + 'static {
    fn core(&self) -> &Core;
}

/// A fake serving on a local port. Fake-specific methods (ground truth, mutations) live in the fake's
/// module as `impl RunningFake<ThatFake>`. Dropping it shuts the server down.
pub struct RunningFake<S: FakeState = crate::confluence::Confluence> {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    pub state: Arc<S>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl<S: FakeState> RunningFake<S> {
    /// Upstream requests received so far (total and per path).
    pub fn requests(&self) -> RequestCounts {
        self.state.core().counts()
    }
    pub fn requests_to(&self, path: &str) -> u64 {
        self.requests().by_path.get(path).copied().unwrap_or(0)
    }
    pub fn reset_requests(&self) {
        self.state.core().reset_counts()
    }
    pub fn set_rate_limit_every(&self, n: Option<u64>) {
        self.state.core().set_rate_limit_every(n)
    }
    /// Replaces the fault plan (see [`crate::faults`]); `FaultPlan::default()` turns faults off.
    pub fn set_faults(&self, plan: crate::faults::FaultPlan) {
        self.state.core().faults().set(plan)
    }
    /// Faults injected since the plan was set.
    pub fn faults_injected(&self) -> crate::faults::FaultReport {
        self.state.core().faults().report()
    }
    /// `base_url` + `path_and_query`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base_url, path_and_query)
    }
    /// Resolves once shutdown was requested (by [`Self::shutdown`], drop, or `POST /_fake/shutdown`).
    pub async fn stopped(&self) {
        let _ = self.state.core().stop.subscribe().wait_for(|s| *s).await;
    }
    /// Stops serving and waits until the listener is closed: later connections are refused.
    /// State (truth, counters) stays readable.
    pub async fn shutdown(&self) {
        self.state.core().request_shutdown();
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

/// Object-safe view of any [`RunningFake`], so one process can hold fakes of different kinds.
pub trait ServingFake: Send + Sync {
    fn base_url(&self) -> &str;
    /// Resolves once shutdown was requested.
    fn stopped(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// Stops serving and waits until the listener is closed.
    fn shutdown(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl<S: FakeState> ServingFake for RunningFake<S> {
    fn base_url(&self) -> &str {
        &self.base_url
    }
    fn stopped(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(RunningFake::stopped(self))
    }
    fn shutdown(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(RunningFake::shutdown(self))
    }
}

impl<S: FakeState> Drop for RunningFake<S> {
    fn drop(&mut self) {
        self.state.core().request_shutdown();
    }
}

/// Binds `listen` (port 0 picks a free port) and returns the listener with its base URL.
pub async fn bind(listen: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr, String)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let host = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok((
        listener,
        addr,
        format!("http://{}", SocketAddr::new(host, addr.port())),
    ))
}

/// Serves `router` on `listener` until [`Core::request_shutdown`] is called.
pub fn start<S: FakeState>(
    listener: TcpListener,
    base_url: String,
    state: Arc<S>,
    router: Router,
) -> RunningFake<S> {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut stop = state.core().stop.subscribe();
    let router = with_faults(router, state.clone());
    let task = tokio::spawn(async move {
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(signal)
            .await
        {
            eprintln!("fake server error: {e}");
        }
    });
    RunningFake {
        addr,
        base_url,
        state,
        task: tokio::sync::Mutex::new(Some(task)),
    }
}

/// Adds the fault middleware and its control route (`GET`/`POST /_fake/faults`, see
/// [`crate::control::fault_routes`]).
fn with_faults<S: FakeState>(router: Router, state: Arc<S>) -> Router {
    router
        .merge(crate::control::fault_routes::<S>().with_state(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::faults::inject::<S>,
        ))
}
