//! One loaded connector: its component checked against the contract, an `InstancePre`, and the
//! invocation path (a fresh Store per call, memory limit, epoch deadline plus tokio timeout,
//! audit row per invocation).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::component::Component;
use wasmtime::{Store, UpdateDeadline};

use super::bindings::types::{Error as WitError, SearchRequest};
use super::bindings::{ConnectorWorld, ConnectorWorldPre};
use super::engine::Runtime;
use super::model::{self, ConnectorError};
use super::state::State;
use crate::capabilities::http::ConnectorGate;
use crate::capabilities::secrets::SecretValues;
use crate::config::{Grant, Limits};
use crate::scrub::Scrubber;
use crate::store::audit::{AuditEvent, AuditLog};

/// The contract package this host implements, and the versions it accepts.
pub const CONTRACT_PACKAGE: &str = "airlock:connector";
pub const CONTRACT_INTERFACE: &str = "airlock:connector/connector";
pub const CONTRACT_VERSION: &str = "0.1.0";

/// What every invocation of one connector shares.
pub struct ConnectorCtx {
    pub id: String,
    pub settings: BTreeMap<String, String>,
    pub gate: Arc<ConnectorGate>,
    pub audit: AuditLog,
    pub scrubber: Scrubber,
    pub grants: Vec<Grant>,
    pub secrets: SecretValues,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl ConnectorCtx {
    /// The value for `secret(name)`: only a vault secret that one of this connector's grants
    /// references with `reveal = true`.
    pub fn revealable(&self, name: &str) -> Result<String, String> {
        let mut referenced = false;
        for g in &self.grants {
            for r in g.auth.secret_refs() {
                if r.vault_name() == Some(name) {
                    referenced = true;
                    if g.reveal {
                        return self
                            .secrets
                            .get(r)
                            .map(str::to_string)
                            .ok_or_else(|| format!("secret `{name}` could not be resolved"));
                    }
                }
            }
        }
        Err(if referenced {
            format!("secret `{name}` is not revealable: its grant does not set reveal = true")
        } else {
            format!(
                "secret `{name}` is not referenced by any grant of connector `{}`",
                self.id
            )
        })
    }
}

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

impl Op {
    pub fn label(&self) -> String {
        match self {
            Op::Info => "info".into(),
            Op::Health => "health".into(),
            Op::Search { .. } => "search".into(),
            Op::Get { .. } => "get".into(),
            Op::CheckPermission { .. } => "check-permission".into(),
            Op::Sync { stream, .. } => format!("sync:{stream}"),
            Op::Action { name, .. } => format!("action:{name}"),
        }
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
    pre: ConnectorWorldPre<State>,
}

/// How the component got compiled (for `check` and the log).
#[derive(Debug, Clone, Serialize)]
pub struct CompileReport {
    pub millis: f64,
    pub from_cache: bool,
    pub size_bytes: usize,
}

type CallFuture<'a, R> =
    Pin<Box<dyn Future<Output = wasmtime::Result<Result<R, WitError>>> + Send + 'a>>;

impl LoadedConnector {
    /// Reads, compiles and checks a component; the error names the file and the reason.
    pub async fn load(
        runtime: &Runtime,
        path: &Path,
        limits: Limits,
        ctx: Arc<ConnectorCtx>,
    ) -> Result<LoadedConnector, String> {
        let shown = path.display();
        let (component, compile) = compile_component(runtime, path)?;
        let contract = check_contract(runtime, &component).map_err(|m| format!("{shown}: {m}"))?;
        let pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(|e| format!("{shown}: imports something Airlock does not provide: {e:#}"))?;
        let pre = ConnectorWorldPre::new(pre).map_err(|e| {
            format!("{shown}: exports do not match contract {CONTRACT_PACKAGE}@{CONTRACT_VERSION}: {e:#}")
        })?;
        let mut loaded = LoadedConnector {
            id: ctx.id.clone(),
            path: path.to_path_buf(),
            contract,
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
            pre,
        };
        let info = loaded
            .call_raw("info", |store, w| {
                Box::pin(async move {
                    w.airlock_connector_connector()
                        .call_info(store)
                        .await
                        .map(Ok)
                })
            })
            .await
            .map_err(|e| format!("{shown}: info() failed: {e}"))?;
        loaded.info = info.into();
        Ok(loaded)
    }

    /// Runs one operation and returns its result as JSON.
    pub async fn invoke(&self, op: Op) -> Result<serde_json::Value, InvokeError> {
        let mut v = self.invoke_unscrubbed(op).await?;
        // A connector allowed to `reveal` a secret, or one relaying an upstream's echo, must
        // still not put a secret value into a response.
        self.ctx.scrubber.scrub_json(&mut v);
        Ok(v)
    }

    async fn invoke_unscrubbed(&self, op: Op) -> Result<serde_json::Value, InvokeError> {
        let label = op.label();
        let to_json = |v: Result<serde_json::Value, serde_json::Error>| {
            v.map_err(|e| InvokeError::Trap {
                message: format!("result not serializable: {e}"),
            })
        };
        match op {
            Op::Info => {
                let r = self
                    .call_raw(&label, |s, w| {
                        Box::pin(async move {
                            w.airlock_connector_connector().call_info(s).await.map(Ok)
                        })
                    })
                    .await?;
                to_json(serde_json::to_value(model::ConnectorInfo::from(r)))
            }
            Op::Health => {
                let r = self
                    .call_raw(&label, |s, w| {
                        Box::pin(
                            async move { w.airlock_connector_connector().call_health(s).await },
                        )
                    })
                    .await?;
                to_json(serde_json::to_value(model::HealthStatus {
                    ok: r.ok,
                    message: r.message,
                }))
            }
            Op::Search {
                query,
                limit,
                cursor,
            } => {
                let req = SearchRequest {
                    query,
                    limit,
                    cursor,
                };
                let r = self
                    .call_raw(&label, move |s, w| {
                        Box::pin(async move {
                            w.airlock_connector_connector().call_search(s, &req).await
                        })
                    })
                    .await?;
                to_json(serde_json::to_value(model::SearchResult::from(r)))
            }
            Op::Get { id } => {
                let r = self
                    .call_raw(&label, move |s, w| {
                        Box::pin(
                            async move { w.airlock_connector_connector().call_get(s, &id).await },
                        )
                    })
                    .await?;
                to_json(serde_json::to_value(model::Document::from(r)))
            }
            Op::CheckPermission { principal, id } => {
                let r = self
                    .call_raw(&label, move |s, w| {
                        Box::pin(async move {
                            w.airlock_connector_connector()
                                .call_check_permission(s, &principal, &id)
                                .await
                        })
                    })
                    .await?;
                Ok(serde_json::json!({ "allowed": r }))
            }
            Op::Sync { stream, cursor } => {
                let page = self.sync_page(&stream, cursor).await?;
                to_json(serde_json::to_value(page))
            }
            Op::Action { name, input } => {
                let input = input.to_string();
                let r = self
                    .call_raw(&label, move |s, w| {
                        Box::pin(async move {
                            w.airlock_connector_connector()
                                .call_invoke(s, &name, &input)
                                .await
                        })
                    })
                    .await?;
                Ok(serde_json::from_str(&r).unwrap_or(serde_json::Value::String(r)))
            }
        }
    }

    /// The pre-linked component (benchmarks compare against a bare instantiate-and-call).
    pub fn instance_pre(&self) -> &ConnectorWorldPre<State> {
        &self.pre
    }

    /// One page of a stream (the sync loop's unit of work).
    pub async fn sync_page(
        &self,
        stream: &str,
        cursor: Option<String>,
    ) -> Result<model::SyncPage, InvokeError> {
        let stream_owned = stream.to_string();
        let r = self
            .call_raw(&format!("sync:{stream}"), move |s, w| {
                Box::pin(async move {
                    w.airlock_connector_connector()
                        .call_sync(s, &stream_owned, cursor.as_deref())
                        .await
                })
            })
            .await?;
        Ok(r.into())
    }

    /// Instantiates a fresh Store + instance, runs `f` under the deadline and memory limit, and
    /// audits the outcome.
    async fn call_raw<R: Send + 'static>(
        &self,
        label: &str,
        f: impl for<'a> FnOnce(&'a mut Store<State>, ConnectorWorld) -> CallFuture<'a, R> + Send,
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
        let writes_action: Option<Arc<str>> = label
            .strip_prefix("action:")
            .filter(|name| {
                self.info
                    .actions
                    .iter()
                    .any(|a| a.name == *name && a.writes)
            })
            .map(Arc::from);
        let state = State::new(
            self.ctx.clone(),
            invocation.clone(),
            call.principal.as_deref().map(Arc::from),
            self.limits.memory_bytes,
            writes_action,
            call.approved_writes,
            deadline,
        );
        let memory_hit = state.limiter.hit.clone();
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                // Yield so the tokio timeout and other tasks get a turn.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let pre = self.pre.clone();
        let run = async move {
            let w = pre.instantiate_async(&mut store).await?;
            f(&mut store, w).await
        };
        let outcome = tokio::time::timeout(timeout, run).await;
        let result = match outcome {
            Err(_) => Err(InvokeError::Timeout {
                secs: timeout.as_secs_f64(),
            }),
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(InvokeError::Connector(e.into())),
            Ok(Err(trap)) => Err(self.classify_trap(trap, &memory_hit, deadline)),
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
                op: label.to_string(),
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
        if let Err(e) = &result {
            ev.reason = format!("{label}: {e}");
            tracing::info!(connector = %self.id, invocation = %invocation, "{label} failed: {e}");
        }
        self.ctx.audit.record(ev);
        result
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

/// Reads and compiles a component (through the on-disk cache), with clear errors for files that
/// are not wasm or are core modules.
pub fn compile_component(
    runtime: &Runtime,
    path: &Path,
) -> Result<(Component, CompileReport), String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(format!(
            "{shown}: not a WebAssembly file (no \\0asm header); expected a component built for wasm32-wasip2"
        ));
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(format!(
            "{shown}: is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)"
        ));
    }
    let before = runtime.cache_stats();
    let started = Instant::now();
    let component = Component::new(&runtime.engine, &bytes)
        .map_err(|e| format!("{shown}: not a valid component: {e:#}"))?;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    let from_cache = match (before, runtime.cache_stats()) {
        (Some((h0, _)), Some((h1, _))) => h1 > h0,
        _ => false,
    };
    Ok((
        component,
        CompileReport {
            millis,
            from_cache,
            size_bytes: bytes.len(),
        },
    ))
}

/// Finds the contract export and checks its version: same major, and for 0.x the same minor.
pub fn check_contract(runtime: &Runtime, component: &Component) -> Result<String, String> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(&runtime.engine)
        .map(|(n, _)| n.to_string())
        .collect();
    let Some(name) = exports.iter().find(|n| {
        n.as_str() == CONTRACT_INTERFACE || n.starts_with(&format!("{CONTRACT_INTERFACE}@"))
    }) else {
        let list = if exports.is_empty() {
            "nothing".to_string()
        } else {
            exports.join(", ")
        };
        return Err(format!(
            "is a component of another world: it exports {list}, not {CONTRACT_INTERFACE}@{CONTRACT_VERSION}"
        ));
    };
    let version = name.split_once('@').map(|(_, v)| v).unwrap_or("");
    if !compatible(version) {
        return Err(format!(
            "was built against contract {CONTRACT_PACKAGE}@{version}, which this host does not support (it supports {CONTRACT_PACKAGE}@0.1.x)"
        ));
    }
    Ok(version.to_string())
}

fn compatible(version: &str) -> bool {
    let mut parts = version.split('.');
    matches!((parts.next(), parts.next()), (Some("0"), Some("1")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_versions() {
        assert!(compatible("0.1.0"));
        assert!(compatible("0.1.7"));
        assert!(!compatible("0.2.0"));
        assert!(!compatible("2.0.0"));
        assert!(!compatible(""));
    }

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
