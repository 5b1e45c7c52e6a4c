//! The per-invocation store data: an empty WASI context (no files, no sockets, no env), the
//! wasi:http context with this connector's gate as hooks, a memory limiter, and what the `host`
//! imports of this invocation see ([`HostImports`]; each contract version's file in
//! `contract/` implements its `host` interface through it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::shared::ConnectorCtx;
use crate::capabilities::host_imports::HostImports;
use crate::capabilities::http::InvocationHooks;

pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: InvocationHooks,
    pub(crate) limiter: MemoryLimiter,
    ctx: Arc<ConnectorCtx>,
    invocation: Arc<str>,
    /// Who asked for this invocation (audit rows name it).
    principal: Option<Arc<str>>,
    /// The stream this invocation syncs, if it is a `sync` call: the only stream it may report
    /// progress for.
    sync_stream: Option<Arc<str>>,
    /// When the current invocation must stop (read by the epoch callback).
    deadline: std::time::Instant,
}

impl State {
    pub fn new(
        ctx: Arc<ConnectorCtx>,
        invocation: Arc<str>,
        principal: Option<Arc<str>>,
        memory_bytes: usize,
        writes_action: Option<Arc<str>>,
        approved_writes: bool,
        deadline: std::time::Instant,
    ) -> State {
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        State {
            wasi,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks: ctx.gate.hooks(
                invocation.clone(),
                principal.clone(),
                writes_action,
                approved_writes,
                deadline,
            ),
            limiter: MemoryLimiter::new(memory_bytes),
            ctx,
            invocation,
            principal,
            sync_stream: None,
            deadline,
        }
    }

    /// Readies a kept instance's state for its next invocation (a sync run's next page): the
    /// invocation's own id, principal, deadline and gate hooks (a fresh denial budget); the
    /// memory-limit flag cleared. The guest's memory and resources stay.
    pub fn next_invocation(
        &mut self,
        invocation: Arc<str>,
        principal: Option<Arc<str>>,
        writes_action: Option<Arc<str>>,
        approved_writes: bool,
        deadline: std::time::Instant,
    ) {
        self.hooks = self.ctx.gate.hooks(
            invocation.clone(),
            principal.clone(),
            writes_action,
            approved_writes,
            deadline,
        );
        if self.sync_stream.is_some() {
            self.hooks.background();
        }
        self.invocation = invocation;
        self.principal = principal;
        self.deadline = deadline;
        self.limiter.hit.store(false, Ordering::Relaxed);
    }

    /// Whether the guest left resources in its table (a request, a response, a body, a stream,
    /// a pollable): what the next invocation on this instance must not inherit.
    pub fn holds_resources(&self) -> bool {
        !self.table.is_empty()
    }

    /// Whether this instance runs for `ctx`'s connector, syncing `stream`, for `principal`.
    pub fn runs_for(
        &self,
        ctx: &Arc<ConnectorCtx>,
        stream: Option<&str>,
        principal: Option<&str>,
    ) -> bool {
        Arc::ptr_eq(&self.ctx, ctx)
            && self.sync_stream.as_deref() == stream
            && self.principal.as_deref() == principal
    }

    /// Whether the guest must stop now: its deadline passed, or its denial budget is spent.
    pub fn must_stop(&self) -> bool {
        std::time::Instant::now() >= self.deadline || self.hooks.denials().stopped()
    }

    /// The invocation's denial budget, shared with its gate hooks.
    pub fn denials(&self) -> Arc<crate::capabilities::denials::DenialBudget> {
        self.hooks.denials()
    }

    /// Marks the invocation as a `sync` call of `stream` (progress reports are accepted for it).
    /// A sync's requests are background work at the grants' budgets.
    pub fn with_sync_stream(mut self, stream: Option<Arc<str>>) -> State {
        if stream.is_some() {
            self.hooks.background();
        }
        self.sync_stream = stream;
        self
    }

    /// The `host` imports' view of this invocation (every contract version answers through it).
    pub(crate) fn host_imports(&self) -> HostImports<'_> {
        HostImports {
            connector: &self.ctx.id,
            invocation: &self.invocation,
            principal: self.principal.as_deref(),
            sync_stream: self.sync_stream.as_deref(),
            settings: &self.ctx.settings,
            scrubber: &self.ctx.scrubber,
            audit: &self.ctx.audit,
            grants: &self.ctx.grants,
            secrets: &self.ctx.secrets,
            progress: &self.ctx.progress,
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Enforces the per-instance memory limit and remembers whether the guest hit it, so a trap
/// that follows can be reported as "memory limit exceeded" rather than a bare `unreachable`.
pub struct MemoryLimiter {
    limit: usize,
    pub(crate) hit: Arc<AtomicBool>,
}

impl MemoryLimiter {
    fn new(limit: usize) -> Self {
        MemoryLimiter {
            limit,
            hit: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
