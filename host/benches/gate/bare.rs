//! The invocation bench's baseline: a plain wasmtime embedding that shares nothing with Airlock
//! (its own engine, linker, store data and export lookup), so the ratio measures what Airlock
//! adds, not a copy of Airlock's own setup. It gives the guest what any embedder running a
//! `wasi:http` component gives it: WASI p2 with an empty context and `wasi:http` whose outgoing
//! requests fail (the measured `echo` action makes none); every other import (the contract's
//! `host` interface) traps if called. The engine uses the same pooling allocator and epoch
//! interruption an embedder serving many short calls would choose, so instantiation is compared
//! like for like.

use std::path::Path;

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

/// A component ready to be instantiated afresh for every call of one action.
pub struct Bare {
    pre: InstancePre<Data>,
    invoke: ComponentExportIndex,
}

impl Bare {
    /// Compiles `wasm` in an engine of its own and finds `<interface>#invoke`.
    pub fn load(wasm: &Path, interface: &str) -> anyhow::Result<Bare> {
        let mut cfg = Config::new();
        cfg.wasm_component_model(true);
        cfg.epoch_interruption(true);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(64);
        pool.max_memory_size(64 << 20);
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
        Ok(Bare { pre, invoke })
    }

    /// A fresh store and instance, one call of `invoke(action, input)`; errors unless the
    /// action answered `ok`.
    pub async fn invoke(&self, action: &str, input: &str) -> anyhow::Result<()> {
        let mut store = Store::new(self.pre.engine(), Data::default());
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = self.pre.instantiate_async(&mut store).await?;
        let func = instance
            .get_func(&mut store, self.invoke)
            .context("invoke is not a function")?;
        let args = [Val::String(action.into()), Val::String(input.into())];
        let mut results = [Val::Bool(false)];
        func.call_async(&mut store, &args, &mut results).await?;
        match &results[0] {
            Val::Result(Ok(_)) => Ok(()),
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
    hooks: NoOutbound,
    table: ResourceTable,
}

impl Default for Data {
    fn default() -> Self {
        Data {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            hooks: NoOutbound,
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

/// Outgoing requests fail: the baseline's guest has no network.
pub struct NoOutbound;

impl WasiHttpHooks for NoOutbound {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        Box::new(std::future::ready(Err(HttpError::HttpRequestDenied)))
    }
}
