//! The per-invocation store data: an empty WASI context (no files, no sockets, no env), the
//! wasi:http context with this connector's gate as hooks, a memory limiter, and the `host`
//! import of every supported contract version (`log`, `setting`, `secret`; since 0.2.0
//! `progress`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::{v0_1, v0_2};
use super::progress::{PROGRESS_MESSAGE_MAX, ReportedProgress};
use super::shared::ConnectorCtx;
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
    /// Who asked for this invocation (audit rows name it).
    principal: Option<Arc<str>>,
    /// The stream this invocation syncs, if it is a `sync` call: the only stream it may report
    /// progress for.
    sync_stream: Option<Arc<str>>,
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
        }
    }

    /// The invocation's denial budget, shared with its gate hooks.
    pub fn denials(&self) -> Arc<crate::capabilities::denials::DenialBudget> {
        self.hooks.denials()
    }

    /// Marks the invocation as a `sync` call of `stream` (progress reports are accepted for it).
    pub fn with_sync_stream(mut self, stream: Option<Arc<str>>) -> State {
        self.sync_stream = stream;
        self
    }

    /// Cuts `message` to `max` bytes at a char boundary, marking the cut.
    fn cap(message: &mut String, max: usize) {
        if message.len() > max {
            let mut cut = max;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
    }

    /// `host.secret`: the value, or why it is refused (as the `forbidden` message).
    fn reveal(&mut self, name: &str) -> Result<String, String> {
        let answer = self.ctx.revealable(name);
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
                Err(reason)
            }
        }
    }

    /// `host.progress` (0.2.0): records the report on the connector's board and logs it when
    /// the stream's log interval allows.
    fn record_progress(&mut self, stream: String, done: u64, total: Option<u64>, message: String) {
        let id = &self.ctx.id;
        let inv = &*self.invocation;
        if self.sync_stream.as_deref() != Some(stream.as_str()) {
            // Outside a sync call, or another stream's name: the board stays bounded by the
            // connector's own streams and a status never shows a report nobody is running.
            // Trace level: a connector repeating a wrong report must not flood a debug log.
            tracing::trace!(connector = %id, invocation = %inv, "progress for `{}` ignored: not the stream this call syncs", crate::untrusted_text::log_line(&self.ctx.scrubber.scrub(&stream)));
            return;
        }
        // Cut before scrubbing so a huge message costs nothing per report, with slack so a
        // secret straddling the first cut lies past the final one anyway.
        let mut message = message;
        Self::cap(&mut message, PROGRESS_MESSAGE_MAX * 4);
        let mut message = self.ctx.scrubber.scrub(&message);
        Self::cap(&mut message, PROGRESS_MESSAGE_MAX);
        let report = ReportedProgress {
            done,
            total,
            message,
            at: crate::store::now_rfc3339(),
        };
        if let Some(quiet) = self.ctx.progress.report(&stream, report.clone()) {
            let total = total.map_or_else(|| "?".to_string(), |t| t.to_string());
            let quiet = if quiet > 0 {
                format!(" ({quiet} reports since the last line not logged)")
            } else {
                String::new()
            };
            let stream = crate::untrusted_text::log_line(&stream);
            let message = crate::untrusted_text::log_line(&report.message);
            tracing::info!(connector = %id, invocation = %inv, stream = %stream, "sync progress {done}/{total}: {message}{quiet}");
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

/// `log`, `setting` and `secret`: the same in every contract version, only the generated types
/// differ.
macro_rules! host_0_1_items {
    ($v:ident) => {
        async fn log(&mut self, level: $v::types::LogLevel, message: String) {
            use $v::types::LogLevel;
            // Guests could flood the log; cap each line. Controls are escaped so one call is
            // one line: no forged log line, no terminal escape sequence.
            let mut message = self.ctx.scrubber.scrub(&message);
            State::cap(&mut message, 4096);
            let message = crate::untrusted_text::log_line(&message);
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

        async fn secret(&mut self, name: String) -> Result<String, $v::types::Error> {
            self.reveal(&name).map_err($v::types::Error::Forbidden)
        }
    };
}

impl v0_1::types::Host for State {}

impl v0_1::host::Host for State {
    host_0_1_items!(v0_1);
}

impl v0_2::types::Host for State {}

impl v0_2::host::Host for State {
    host_0_1_items!(v0_2);

    async fn progress(&mut self, stream: String, done: u64, total: Option<u64>, message: String) {
        self.record_progress(stream, done, total, message);
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
