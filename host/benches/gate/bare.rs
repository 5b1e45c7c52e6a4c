//! The gate bench's baselines: a plain wasmtime embedding that shares nothing with Airlock
//! (its own engine, linker, store data and export lookup), so the ratio measures what Airlock
//! adds, not a copy of Airlock's own setup. It gives the guest what any embedder running a
//! `wasi:http` component gives it: WASI p2 with an empty context and `wasi:http` whose outgoing
//! requests either fail (the invocation baseline: `echo` makes none) or pass straight through
//! to a pooled client with one fixed header added (the pass-through baseline: the sandbox's own
//! cost, without grants, credentials, resilience, scrubbing or audit); every other import (the
//! contract's `host` interface) traps if called. The engine uses the same pooling allocator and epoch
//! interruption an embedder serving many short calls would choose, so instantiation is compared
//! like for like; and each memory slot reserves what the daemon's does by default (the memory
//! limit, not wasmtime's 4 GiB), so guest code checks its bounds here too: that cost is the
//! sandbox's, not the gate's.

use std::path::Path;
use std::sync::Arc;

use airlock::capabilities::net::UpstreamClient;
use http_body_util::{BodyExt, Full};

use anyhow::Context;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    Component, ComponentExportIndex, InstancePre, Linker, ResourceTable, Val,
};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks,
    WasiHttpView,
};

/// A wasm page: memory reservations are whole pages.
const WASM_PAGE: u64 = 64 * 1024;

/// A component ready to be instantiated afresh for every call of one action.
pub struct Bare {
    pre: InstancePre<Data>,
    invoke: ComponentExportIndex,
    outbound: Option<Arc<PassThrough>>,
}

impl Bare {
    /// Compiles `wasm` in an engine of its own whose memories may grow to `memory_limit` bytes
    /// (and reserve that much address space, as the daemon's do by default), and finds
    /// `<interface>#invoke`; its outgoing requests fail.
    pub fn load(wasm: &Path, interface: &str, memory_limit: usize) -> anyhow::Result<Bare> {
        let mut cfg = Config::new();
        cfg.wasm_component_model(true);
        cfg.epoch_interruption(true);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(64);
        pool.max_memory_size(memory_limit);
        cfg.memory_reservation((memory_limit as u64).div_ceil(WASM_PAGE).max(1) * WASM_PAGE);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&cfg)?;
        let component = Component::from_file(&engine, wasm)
            .map_err(|e| anyhow::anyhow!("compile {}: {e:#}", wasm.display()))?;
        let mut linker = Linker::<Data>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        stub_contract_imports(&mut linker, &component)?;
        let pre = linker.instantiate_pre(&component)?;
        let (_, api) = component
            .get_export(None, interface)
            .with_context(|| format!("no export {interface}"))?;
        let (_, invoke) = component
            .get_export(Some(&api), "invoke")
            .with_context(|| format!("no {interface}#invoke"))?;
        Ok(Bare {
            pre,
            invoke,
            outbound: None,
        })
    }

    /// Like [`Bare::load`], with outgoing requests sent as they are by `client` (plus `header`).
    pub fn passing_through(
        wasm: &Path,
        interface: &str,
        memory_limit: usize,
        client: UpstreamClient,
        header: (http::HeaderName, http::HeaderValue),
    ) -> anyhow::Result<Bare> {
        let mut bare = Bare::load(wasm, interface, memory_limit)?;
        bare.outbound = Some(Arc::new(PassThrough { client, header }));
        Ok(bare)
    }

    /// A fresh store and instance, one call of `invoke(action, input)`; errors unless the
    /// action answered `ok`.
    pub async fn invoke(&self, action: &str, input: &str) -> anyhow::Result<()> {
        self.invoke_text(action, input).await.map(drop)
    }

    /// Like [`Bare::invoke`], returning the action's answer (JSON text).
    pub async fn invoke_text(&self, action: &str, input: &str) -> anyhow::Result<String> {
        let data = Data {
            hooks: Outbound(self.outbound.clone()),
            ..Data::default()
        };
        let mut store = Store::new(self.pre.engine(), data);
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = self.pre.instantiate_async(&mut store).await?;
        let func = instance
            .get_func(&mut store, self.invoke)
            .context("invoke is not a function")?;
        let args = [Val::String(action.into()), Val::String(input.into())];
        let mut results = [Val::Bool(false)];
        func.call_async(&mut store, &args, &mut results).await?;
        match &results[0] {
            Val::Result(Ok(Some(answer))) => match answer.as_ref() {
                Val::String(text) => Ok(text.clone()),
                other => Ok(format!("{other:?}")),
            },
            Val::Result(Ok(None)) => Ok(String::new()),
            other => anyhow::bail!("{action} answered {other:?}"),
        }
    }
}

/// The contract's own imports (`airlock:connector/host`, types) as functions that trap: the
/// baseline runs only code that never calls them. (Wasmtime's `define_unknown_imports_as_traps`
/// would also shadow the WASI interfaces the component imports at a newer patch version.)
fn stub_contract_imports(linker: &mut Linker<Data>, component: &Component) -> anyhow::Result<()> {
    let engine = component.engine();
    for (name, item) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        if !name.starts_with("airlock:") {
            continue;
        }
        let mut stub = linker.instance(name)?;
        for (func, item) in instance.exports(engine) {
            if let ComponentItem::ComponentFunc(_) = item.ty {
                let called = format!("{name}#{func}");
                stub.func_new(func, move |_, _, _, _| {
                    Err(wasmtime::Error::msg(format!("{called} is not provided")))
                })?;
            }
        }
    }
    Ok(())
}

/// The store data: empty WASI and `wasi:http` contexts.
pub struct Data {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: Outbound,
    table: ResourceTable,
}

impl Default for Data {
    fn default() -> Self {
        Data {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            hooks: Outbound(None),
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for Data {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Data {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

/// Where outgoing requests go: nowhere (they fail), or straight through a pooled client.
pub struct Outbound(Option<Arc<PassThrough>>);

/// The least an embedder does to let a guest reach an upstream on a pooled client: buffer the
/// request, add the credential header, send, read the answer whole (as the gate does, so the
/// two differ only by what the gate decides and records).
pub struct PassThrough {
    client: UpstreamClient,
    header: (http::HeaderName, http::HeaderValue),
}

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let Some(out) = self.0.clone() else {
            return Box::new(std::future::ready(Err(HttpError::HttpRequestDenied)));
        };
        Box::new(async move {
            let (mut parts, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|_| HttpError::HttpRequestDenied)?
                .to_bytes();
            parts
                .headers
                .insert(out.header.0.clone(), out.header.1.clone());
            let req = http::Request::from_parts(parts, Full::new(body));
            let resp = out
                .client
                .request(req)
                .await
                .map_err(|_| HttpError::ConnectionRefused)?;
            let (parts, body) = resp.into_parts();
            let bytes = body
                .collect()
                .await
                .map_err(|_| HttpError::HttpResponseIncomplete)?
                .to_bytes();
            let body: WasiBody = Full::new(bytes)
                .map_err(|never: std::convert::Infallible| match never {})
                .boxed_unsync();
            let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((http::Response::from_parts(parts, body), io))
        })
    }
}
