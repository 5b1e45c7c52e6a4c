//! One loaded connector: its component checked against the contract, an `InstancePre`, and the
//! invocation path (a fresh Store per call, or a sync run's kept one; memory limit, epoch
//! deadline plus tokio timeout, audit row per invocation).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde::Serialize;
use tracing::Instrument;
use wasmtime::{Store, UpdateDeadline};

pub use super::contract::{
    CONTRACT_INTERFACE, CONTRACT_PACKAGE, CONTRACT_VERSION, ContractInstance, ContractPre,
    ContractVersion, SUPPORTED_CONTRACTS,
};
use super::contract::{CallResult, latest};
use super::engine::Runtime;
pub use super::fetched_page::FetchedPage;
pub use super::linked::CompileReport;
use super::linked::Linked;
use super::scrub_results::scrub_document;
use super::shared::ConnectorCtx;
use super::state::State;
use crate::config::Limits;
use crate::integrity::Integrity;
use crate::model::{self, ConnectorError};
use crate::store::audit::AuditEvent;

/// A failed invocation.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum InvokeError {
    /// The connector returned one of the contract's errors.
    #[error("{}: {}", .0.code, .0.message)]
    Connector(ConnectorError),
    #[error("invocation exceeded its {secs}s deadline and was stopped")]
    Timeout { secs: f64 },
    #[error("connector exceeded its memory limit of {mib} MiB and was stopped")]
    MemoryLimit { mib: usize },
    #[error("connector crashed: {message}")]
    Trap { message: String },
    #[error("connector is not available: {message}")]
    Unavailable { message: String },
    #[error("invalid input: {message}")]
    BadInput { message: String },
    #[error("connector made more than {limit} denied requests and was stopped")]
    DenialBudget { limit: u32 },
}

impl InvokeError {
    pub fn code(&self) -> &str {
        match self {
            InvokeError::Connector(e) => &e.code,
            InvokeError::Timeout { .. } => "timeout",
            InvokeError::MemoryLimit { .. } => "memory-limit",
            InvokeError::Trap { .. } => "trap",
            InvokeError::Unavailable { .. } => "unavailable",
            InvokeError::BadInput { .. } => "bad-input",
            InvokeError::DenialBudget { .. } => "denial-budget",
        }
    }
}

/// An operation of the contract, with its input.
#[derive(Debug, Clone)]
pub enum Op {
    Info,
    Health,
    Search {
        query: String,
        limit: u32,
        cursor: Option<String>,
    },
    Get {
        id: String,
    },
    CheckPermission {
        principal: String,
        id: String,
    },
    Sync {
        stream: String,
        cursor: Option<String>,
    },
    Action {
        name: String,
        input: serde_json::Value,
    },
}

/// Which export a call runs: what the invocation path decides by (a write action's grants, a
/// sync's stream, the metric and audit label), kept typed rather than parsed back from a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    Info,
    Health,
    Search,
    Get,
    CheckPermission,
    Sync(String),
    Action(String),
}

impl Export {
    /// `info`, `sync:STREAM`, `action:NAME`, ...: the audit reason and the op label.
    pub fn label(&self) -> String {
        match self {
            Export::Info => "info".into(),
            Export::Health => "health".into(),
            Export::Search => "search".into(),
            Export::Get => "get".into(),
            Export::CheckPermission => "check-permission".into(),
            Export::Sync(stream) => format!("sync:{stream}"),
            Export::Action(name) => format!("action:{name}"),
        }
    }
}

impl Op {
    /// The export this operation calls.
    pub fn export(&self) -> Export {
        match self {
            Op::Info => Export::Info,
            Op::Health => Export::Health,
            Op::Search { .. } => Export::Search,
            Op::Get { .. } => Export::Get,
            Op::CheckPermission { .. } => Export::CheckPermission,
            Op::Sync { stream, .. } => Export::Sync(stream.clone()),
            Op::Action { name, .. } => Export::Action(name.clone()),
        }
    }

    pub fn label(&self) -> String {
        self.export().label()
    }

    /// Builds an op from its name and JSON input (CLI and API share this).
    pub fn parse(op: &str, input: serde_json::Value) -> Result<Op, InvokeError> {
        let bad = |m: String| InvokeError::BadInput { message: m };
        let str_field = |k: &str| -> Result<String, InvokeError> {
            input
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| bad(format!("`{op}` needs a string field `{k}`")))
        };
        let opt_str = |k: &str| input.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Ok(match op {
            "info" => Op::Info,
            "health" => Op::Health,
            "search" => Op::Search {
                query: str_field("query")?,
                limit: match input.get("limit") {
                    None | Some(serde_json::Value::Null) => 20,
                    Some(v) => v
                        .as_u64()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or_else(|| bad("`limit` must be an integer 1..=1000".into()))?
                        as u32,
                },
                cursor: opt_str("cursor"),
            },
            "get" => Op::Get {
                id: str_field("id")?,
            },
            "check-permission" => Op::CheckPermission {
                principal: str_field("principal")?,
                id: str_field("id")?,
            },
            "sync" => Op::Sync {
                stream: str_field("stream")?,
                cursor: opt_str("cursor"),
            },
            name => {
                let name = name.strip_prefix("action:").unwrap_or(name);
                if name.is_empty() {
                    return Err(bad("empty action name".into()));
                }
                Op::Action {
                    name: name.to_string(),
                    input,
                }
            }
        })
    }
}

/// A connector whose component passed every load check.
pub struct LoadedConnector {
    pub id: String,
    pub path: PathBuf,
    pub contract: String,
    pub info: model::ConnectorInfo,
    pub limits: Limits,
    pub ctx: Arc<ConnectorCtx>,
    pub compile: CompileReport,
    /// The contract minor version the component was built against (picks its bindings).
    pub version: ContractVersion,
    /// The compiled, linked component (shared with every connector running the same bytes).
    linked: Arc<Linked>,
    /// The actions' input schemas, compiled on first use (not per call).
    inputs: std::sync::OnceLock<super::input::InputSchemas>,
}

type CallFuture<'a, R> = Pin<Box<dyn Future<Output = CallResult<R>> + Send + 'a>>;

impl LoadedConnector {
    /// Reads, compiles and checks a component; the error names the file and the reason.
    pub async fn load(
        runtime: &Runtime,
        path: &Path,
        limits: Limits,
        ctx: Arc<ConnectorCtx>,
        integrity: &Integrity,
    ) -> Result<LoadedConnector, String> {
        let shown = path.display();
        // The integrity checks run on the bytes that are compiled (or whose compiled code is
        // shared), before anything else looks at them.
        let file = runtime.components.read(path)?;
        integrity.check_digested(path, &file.bytes, &file.sha256)?;
        let (linked, compile) = runtime.components.link(
            &runtime.engine,
            &runtime.linkers,
            runtime.cache(),
            path,
            &file,
        )?;
        let mut loaded = LoadedConnector {
            id: ctx.id.clone(),
            path: path.to_path_buf(),
            contract: linked.contract.clone(),
            info: model::ConnectorInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                streams: vec![],
                actions: vec![],
            },
            limits,
            ctx,
            compile,
            version: linked.version,
            linked,
            inputs: std::sync::OnceLock::new(),
        };
        let info = loaded
            .call_raw(Export::Info, |store, w| {
                Box::pin(async move { w.info(store).await.map(Ok) })
            })
            .await
            .map_err(|e| format!("{shown}: info() failed: {e}"))?;
        loaded.info = info;
        Ok(loaded)
    }

    /// Action `name`'s input against the schema the connector declares for it (see
    /// [`super::input`]); the schemas are compiled once per loaded connector.
    pub fn check_input(&self, name: &str, input: &serde_json::Value) -> Result<(), InvokeError> {
        self.inputs
            .get_or_init(|| super::input::InputSchemas::of(&self.info))
            .check(name, input)
            .map_err(InvokeError::Connector)
    }

    /// Runs one operation and returns its result as JSON: the API, MCP and CLI edge over the
    /// typed calls below (which the host's own code uses).
    pub async fn invoke(&self, op: Op) -> Result<serde_json::Value, InvokeError> {
        let v = match op {
            Op::Info => to_json(self.call_info().await?),
            Op::Health => to_json(self.health().await?),
            Op::Search {
                query,
                limit,
                cursor,
            } => to_json(self.search(query, limit, cursor).await?),
            Op::Get { id } => to_json(self.get(id).await?),
            Op::CheckPermission { principal, id } => {
                let allowed = self.check_permission(principal, id).await?;
                Ok(serde_json::json!({ "allowed": allowed }))
            }
            Op::Sync { stream, cursor } => to_json(self.sync_page(&stream, cursor).await?),
            Op::Action { name, input } => return self.action(name, input).await,
        };
        let mut v = v?;
        // The typed calls scrubbed every string they return; the JSON edge checks once more,
        // so no future field can slip through unscrubbed.
        self.ctx.scrubber.scrub_json(&mut v);
        Ok(v)
    }

    /// `info()`, called afresh (the loaded connector keeps the answer it gave at load in
    /// [`LoadedConnector::info`]).
    pub async fn call_info(&self) -> Result<model::ConnectorInfo, InvokeError> {
        let info = self
            .call_raw(Export::Info, |s, w| {
                Box::pin(async move { w.info(s).await.map(Ok) })
            })
            .await?;
        let mut v = to_json(info)?;
        self.ctx.scrubber.scrub_json(&mut v);
        serde_json::from_value(v).map_err(|e| InvokeError::Trap {
            message: format!("info not readable after scrubbing: {e}"),
        })
    }

    /// `health()`.
    pub async fn health(&self) -> Result<model::HealthStatus, InvokeError> {
        let mut status: model::HealthStatus = self
            .call_raw(Export::Health, |s, w| {
                Box::pin(async move { w.health(s).await })
            })
            .await?;
        self.ctx.scrubber.scrub_in_place(&mut status.message);
        Ok(status)
    }

    /// Live `search()` upstream; at most `limit` hits are the connector's promise (callers
    /// check it).
    pub async fn search(
        &self,
        query: String,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<model::SearchResult, InvokeError> {
        let mut result: model::SearchResult = self
            .call_raw(Export::Search, move |s, w| {
                Box::pin(async move { w.search(s, query, limit, cursor).await })
            })
            .await?;
        let scrubber = &self.ctx.scrubber;
        result.hits.iter_mut().for_each(|d| {
            scrub_document(scrubber, d);
        });
        if let Some(c) = &mut result.next_cursor {
            scrubber.scrub_in_place(c);
        }
        Ok(result)
    }

    /// `get(id)`: one record.
    pub async fn get(&self, id: String) -> Result<model::Document, InvokeError> {
        let mut doc: model::Document = self
            .call_raw(Export::Get, move |s, w| {
                Box::pin(async move { w.get(s, &id).await })
            })
            .await?;
        scrub_document(&self.ctx.scrubber, &mut doc);
        Ok(doc)
    }

    /// `check-permission(principal, id)`: whether the upstream lets `principal` read `id`.
    pub async fn check_permission(
        &self,
        principal: String,
        id: String,
    ) -> Result<bool, InvokeError> {
        self.call_raw(Export::CheckPermission, move |s, w| {
            Box::pin(async move { w.check_permission(s, &principal, &id).await })
        })
        .await
    }

    /// Runs action `name`: its answer is JSON by contract (a string that is not JSON comes
    /// back as a JSON string).
    pub async fn action(
        &self,
        name: String,
        input: serde_json::Value,
    ) -> Result<serde_json::Value, InvokeError> {
        let input = input.to_string();
        let r: String = self
            .call_raw(Export::Action(name.clone()), move |s, w| {
                Box::pin(async move { w.invoke(s, &name, &input).await })
            })
            .await?;
        let mut v = serde_json::from_str(&r).unwrap_or(serde_json::Value::String(r));
        self.ctx.scrubber.scrub_json(&mut v);
        Ok(v)
    }

    /// One page of a stream (the sync loop's unit of work), on a fresh instance.
    pub async fn sync_page(
        &self,
        stream: &str,
        cursor: Option<String>,
    ) -> Result<model::SyncPage, InvokeError> {
        self.sync_page_in(&mut RunInstance::default(), stream, cursor)
            .await
            .map(FetchedPage::into_page)
    }

    /// One page of a sync run, on the run's instance: the instance the previous page ended on
    /// when it ended well, else a fresh one. A page is still one invocation (its own id,
    /// deadline, denial budget and audit row); what it keeps is the guest's memory, so a page
    /// does not pay for instantiating and for first touching the memory its previous page used
    /// (~1 ms of a 1,000-record page). Any failed page drops the instance, and so does a page
    /// that leaves a `wasi:http` or `wasi:io` resource behind (a request it never waited for
    /// would otherwise run on, and be audited, after its page ended). A page that crashes or
    /// runs out of memory on a kept instance is run again, once, as a new invocation (its own
    /// id: [`RunInstance::retried_as`]) on a fresh instance, and the rest of the run keeps no
    /// instance: a heap grown by earlier pages, or state a connector should not have kept, is
    /// no reason for a run to fail that fresh instances would finish. The retry sends the
    /// page's requests again, as the next run would after a failed page.
    ///
    /// The page is not yet in the model, nor scrubbed but for its cursor:
    /// [`FetchedPage::into_page`] does both, where the caller chooses.
    pub async fn sync_page_in(
        &self,
        run: &mut RunInstance,
        stream: &str,
        cursor: Option<String>,
    ) -> Result<FetchedPage, InvokeError> {
        run.retried_as = None;
        let reused = run.kept.is_some();
        let page = |cursor| sync_call(stream.to_string(), cursor);
        let export = || Export::Sync(stream.to_string());
        let keep = (!run.fresh_only).then_some(&mut run.kept);
        let first = self.call_on(keep, export(), page(cursor.clone())).await;
        let page = match first {
            Err(InvokeError::Trap { .. } | InvokeError::MemoryLimit { .. }) if reused => {
                run.fresh_only = true;
                run.kept = None;
                let retry = ulid::Ulid::new().to_string();
                let call = super::context::CallContext {
                    invocation: Some(retry.clone()),
                    ..super::context::current()
                };
                let again = self.call_on(None, export(), page(cursor));
                let page = super::context::with(call, again).await?;
                run.retried_as = Some(retry);
                page
            }
            other => other?,
        };
        // Pages are stored, then served by search and get: a connector that may `reveal` a
        // secret (or relays an upstream's echo) must not get it into the store, so the page
        // carries the scrubber its records pass in `FetchedPage::into_page`.
        Ok(FetchedPage::new(page, &self.ctx.scrubber, &self.id, stream))
    }

    /// Instantiates a fresh Store + instance, runs `f` under the deadline and memory limit, and
    /// audits the outcome.
    async fn call_raw<R: Send + 'static>(
        &self,
        export: Export,
        f: impl for<'a> FnOnce(&'a mut Store<State>, &'a ContractInstance) -> CallFuture<'a, R> + Send,
    ) -> Result<R, InvokeError> {
        self.call_on(None, export, f).await
    }

    /// [`LoadedConnector::call_raw`] on `kept`'s instance when it holds one (else a fresh one);
    /// with `kept`, an invocation that ends well leaves its instance there for the next.
    async fn call_on<R: Send + 'static>(
        &self,
        mut kept: Option<&mut Option<Kept>>,
        export: Export,
        f: impl for<'a> FnOnce(&'a mut Store<State>, &'a ContractInstance) -> CallFuture<'a, R> + Send,
    ) -> Result<R, InvokeError> {
        let call = super::context::current();
        let invocation: Arc<str> = call
            .invocation
            .clone()
            .unwrap_or_else(|| ulid::Ulid::new().to_string())
            .into();
        let started = Instant::now();
        let timeout = self.limits.timeout;
        let deadline = started + timeout;
        // An action marked `writes` may only write through grants that allow writes.
        let writes_action: Option<Arc<str>> = match &export {
            Export::Action(name)
                if self
                    .info
                    .actions
                    .iter()
                    .any(|a| &a.name == name && a.writes) =>
            {
                Some(Arc::from(name.as_str()))
            }
            _ => None,
        };
        let sync_stream: Option<Arc<str>> = match &export {
            Export::Sync(stream) => Some(Arc::from(stream.as_str())),
            _ => None,
        };
        let label = export.label();
        // Every log line of the invocation (the gate's requests included) carries its id.
        let span = tracing::info_span!(
            "invocation",
            connector = %self.id,
            op = %label,
            invocation = %invocation,
            principal = call.principal.as_deref().unwrap_or(super::context::UNKNOWN_PRINCIPAL),
        );
        let principal: Option<Arc<str>> = call.principal.as_deref().map(Arc::from);
        // Only this connector's instance, kept for the same stream and principal, is reused.
        let mine = |k: &Kept| {
            let state = k.store.data();
            state.runs_for(&self.ctx, sync_stream.as_deref(), principal.as_deref())
        };
        let reusable = kept.as_mut().and_then(|k| k.take()).filter(|k| {
            let ok = mine(k);
            debug_assert!(
                ok,
                "a kept instance offered to another connector, stream or principal"
            );
            ok
        });
        let (mut store, instance) = match reusable {
            Some(Kept {
                mut store,
                instance,
            }) => {
                let approved = call.approved_writes;
                let state = store.data_mut();
                state.next_invocation(
                    invocation.clone(),
                    principal,
                    writes_action,
                    approved,
                    deadline,
                );
                (store, Some(instance))
            }
            None => {
                let state = State::new(
                    self.ctx.clone(),
                    invocation.clone(),
                    principal,
                    self.limits.memory_bytes,
                    writes_action,
                    call.approved_writes,
                    deadline,
                )
                .with_sync_stream(sync_stream);
                let mut store = Store::new(self.linked.pre.engine(), state);
                store.limiter(|s| &mut s.limiter);
                store.epoch_deadline_callback(|ctx| {
                    // A spent denial budget stops the guest like its deadline does.
                    if ctx.data().must_stop() {
                        Ok(UpdateDeadline::Interrupt)
                    } else {
                        // Yield so the tokio timeout and other tasks get a turn.
                        Ok(UpdateDeadline::Yield(1))
                    }
                });
                (store, None)
            }
        };
        store.set_epoch_deadline(1);
        let memory_hit = store.data().limiter.hit.clone();
        let denials = store.data().denials();
        let pre = self.linked.pre.clone();
        // The store comes back with the answer, to be kept when the invocation ends well; a
        // trap, a timeout or a panic drops it with the future.
        let run = async move {
            let instance = match instance {
                Some(i) => i,
                None => pre.instantiate_async(&mut store).await?,
            };
            let answer = f(&mut store, &instance).await?;
            Ok::<_, wasmtime::Error>((answer, Kept { store, instance }))
        };
        // A panic in the host (a bug reached through the guest's imports) ends this invocation
        // with an error and its audit row, not the task that serves it.
        let run = std::panic::AssertUnwindSafe(run).catch_unwind();
        let outcome = tokio::time::timeout(timeout, run.instrument(span.clone())).await;
        let result = match outcome {
            Err(_) => Err(InvokeError::Timeout {
                secs: timeout.as_secs_f64(),
            }),
            Ok(Err(panic)) => Err(InvokeError::Trap {
                message: format!(
                    "internal error in the host: {}",
                    crate::capabilities::http::panic_text(&*panic)
                ),
            }),
            Ok(Ok(Ok((Ok(v), live)))) => {
                // A resource the guest left behind (a request it never waited for, a stream)
                // would live on into the next invocation: such an instance is not kept.
                if let Some(k) = kept.as_mut()
                    && !live.store.data().holds_resources()
                {
                    **k = Some(live);
                }
                Ok(v)
            }
            Ok(Ok(Ok((Err(e), _)))) => Err(InvokeError::Connector(e)),
            Ok(Ok(Err(trap))) => Err(self.classify_trap(trap, &memory_hit, deadline)),
        };
        // However the guest ended, a spent denial budget is the reason: one summary row for
        // every denial that was not audited on its own.
        let result = if denials.stopped() {
            if let Some(k) = kept {
                *k = None;
            }
            self.denials_spent(&invocation, call.principal.clone(), &denials);
            Err(InvokeError::DenialBudget {
                limit: denials.limit(),
            })
        } else {
            result
        };
        let mut ev = AuditEvent {
            connector: self.id.clone(),
            invocation: invocation.to_string(),
            event: "invoke".into(),
            decision: if result.is_ok() { "ok" } else { "error" }.into(),
            reason: label.to_string(),
            latency_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
            principal: call.principal.clone(),
            ..Default::default()
        };
        let result = result.map_err(|e| self.scrub_error(e));
        let m = &self.ctx.metrics;
        m.invocations
            .get_or_create(&crate::metrics::InvokeLabels {
                connector: self.id.clone(),
                op: self.metric_op(&export),
                outcome: match &result {
                    Ok(_) => "ok".into(),
                    Err(e) => e.code().to_string(),
                },
            })
            .inc();
        m.invocation_seconds
            .get_or_create(&crate::metrics::ConnectorLabel {
                connector: self.id.clone(),
            })
            .observe(started.elapsed().as_secs_f64());
        span.in_scope(|| match &result {
            Err(e) => {
                ev.reason = format!("{label}: {e}");
                tracing::info!(ms = ev.latency_ms, "{label} failed: {e}");
            }
            Ok(_) => tracing::debug!(ms = ev.latency_ms, "{label} finished"),
        });
        self.ctx.audit.record(ev);
        result
    }

    /// The summary row of an invocation stopped by its denial budget.
    fn denials_spent(
        &self,
        invocation: &str,
        principal: Option<String>,
        denials: &crate::capabilities::denials::DenialBudget,
    ) {
        self.ctx
            .metrics
            .denial_budget_stops
            .get_or_create(&crate::metrics::ConnectorLabel {
                connector: self.id.clone(),
            })
            .inc();
        self.ctx.audit.record(AuditEvent {
            connector: self.id.clone(),
            invocation: invocation.to_string(),
            event: "http".into(),
            decision: "deny".into(),
            reason: format!(
                "denial budget of {} spent: invocation stopped; {} further requests were refused without a row each",
                denials.limit(),
                denials.suppressed()
            ),
            principal,
            ..Default::default()
        });
    }

    /// The op as a metric label: streams and actions the connector declares by name, any other
    /// name a caller sent folded into `undeclared` (callers must not mint label values).
    fn metric_op(&self, export: &Export) -> String {
        match export {
            Export::Action(name) if !self.info.actions.iter().any(|a| &a.name == name) => {
                "action:undeclared".into()
            }
            Export::Sync(name) if !self.info.streams.iter().any(|s| &s.name == name) => {
                "sync:undeclared".into()
            }
            other => other.label(),
        }
    }

    fn classify_trap(
        &self,
        trap: wasmtime::Error,
        memory_hit: &std::sync::atomic::AtomicBool,
        deadline: Instant,
    ) -> InvokeError {
        if memory_hit.load(Ordering::Relaxed) {
            return InvokeError::MemoryLimit {
                mib: self.limits.memory_bytes >> 20,
            };
        }
        if let Some(wasmtime::Trap::Interrupt) = trap.downcast_ref::<wasmtime::Trap>()
            && Instant::now() + Duration::from_millis(50) >= deadline
        {
            return InvokeError::Timeout {
                secs: self.limits.timeout.as_secs_f64(),
            };
        }
        InvokeError::Trap {
            message: format!("{trap:#}"),
        }
    }

    /// Connector errors can echo upstream text; scrub it like everything else.
    fn scrub_error(&self, e: InvokeError) -> InvokeError {
        let s = &self.ctx.scrubber;
        match e {
            InvokeError::Connector(mut c) => {
                c.message = s.scrub(&c.message);
                InvokeError::Connector(c)
            }
            InvokeError::Trap { message } => InvokeError::Trap {
                message: s.scrub(&message),
            },
            other => other,
        }
    }
}

/// The `sync` export's call for `call_on`.
fn sync_call(
    stream: String,
    cursor: Option<String>,
) -> impl for<'a> FnOnce(
    &'a mut Store<State>,
    &'a ContractInstance,
) -> CallFuture<'a, latest::types::SyncPage>
+ Send {
    move |s, w| Box::pin(async move { w.sync(s, &stream, cursor.as_deref()).await })
}

/// A live instance with its store, kept between invocations.
struct Kept {
    store: Store<State>,
    instance: ContractInstance,
}

/// A sync run's instance, kept from one page to the next (see [`LoadedConnector::sync_page_in`]);
/// dropped with the run.
#[derive(Default)]
pub struct RunInstance {
    kept: Option<Kept>,
    /// Set once a page crashed on a kept instance: the rest of the run keeps none.
    fresh_only: bool,
    /// The invocation id of the last page's retry, when it was run again.
    retried_as: Option<String>,
}

impl RunInstance {
    /// The invocation id under which the last page was fetched, when its first invocation
    /// crashed on the kept instance and it was run again (the page's audit rows, and so its
    /// commit, name that id).
    pub fn retried_as(&self) -> Option<&str> {
        self.retried_as.as_deref()
    }
}

fn to_json(v: impl serde::Serialize) -> Result<serde_json::Value, InvokeError> {
    serde_json::to_value(v).map_err(|e| InvokeError::Trap {
        message: format!("result not serializable: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_parse_validates_input() {
        assert!(matches!(
            Op::parse("get", serde_json::json!({})),
            Err(InvokeError::BadInput { .. })
        ));
        assert!(matches!(
            Op::parse("search", serde_json::json!({"query": "x", "limit": 0})),
            Err(InvokeError::BadInput { .. })
        ));
        match Op::parse("fetch", serde_json::json!({"url": "u"})).unwrap() {
            Op::Action { name, .. } => assert_eq!(name, "fetch"),
            other => panic!("{other:?}"),
        }
    }
}
