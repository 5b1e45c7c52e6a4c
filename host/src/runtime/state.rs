//! The per-invocation store data: an empty WASI context (no files, no sockets, no env), the
//! wasi:http context with this connector's gate as hooks, a memory limiter, and the `host`
//! import (`log`, `setting`, `secret`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::airlock::connector::host;
use super::bindings::types::{Error as WitError, LogLevel};
use super::connector::ConnectorCtx;
use crate::capabilities::http::InvocationHooks;
use crate::store::audit::AuditEvent;

pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    hooks: InvocationHooks,
    pub(crate) limiter: MemoryLimiter,
    ctx: Arc<ConnectorCtx>,
    invocation: Arc<str>,
    principal: Option<Arc<str>>,
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

impl super::bindings::airlock::connector::types::Host for State {}

impl host::Host for State {
    async fn log(&mut self, level: LogLevel, message: String) {
        // Guests could flood the log; cap each line.
        let mut message = self.ctx.scrubber.scrub(&message);
        if message.len() > 4096 {
            let mut cut = 4096;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let id = &self.ctx.id;
        let inv = &*self.invocation;
        match level {
            LogLevel::Trace => tracing::trace!(connector = %id, invocation = %inv, "{message}"),
            LogLevel::Debug => tracing::debug!(connector = %id, invocation = %inv, "{message}"),
            LogLevel::Info => tracing::info!(connector = %id, invocation = %inv, "{message}"),
            LogLevel::Warn => tracing::warn!(connector = %id, invocation = %inv, "{message}"),
            LogLevel::Error => tracing::error!(connector = %id, invocation = %inv, "{message}"),
        }
    }

    async fn setting(&mut self, key: String) -> Option<String> {
        self.ctx.settings.get(&key).cloned()
    }

    async fn secret(&mut self, name: String) -> Result<String, WitError> {
        let answer = self.ctx.revealable(&name);
        let mut ev = AuditEvent {
            connector: self.ctx.id.clone(),
            invocation: self.invocation.to_string(),
            event: "secret".into(),
            principal: self.principal.as_deref().map(str::to_string),
            ..Default::default()
        };
        match answer {
            Ok(value) => {
                ev.decision = "allow".into();
                ev.reason = format!("secret `{name}` revealed (grant has reveal = true)");
                self.ctx.audit.record(ev);
                Ok(value)
            }
            Err(reason) => {
                ev.decision = "deny".into();
                ev.reason = reason.clone();
                self.ctx.audit.record(ev);
                tracing::warn!(connector = %self.ctx.id, "secret() denied: {reason}");
                Err(WitError::Forbidden(reason))
            }
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
