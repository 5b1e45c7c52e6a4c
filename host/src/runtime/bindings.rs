//! Host-side bindings of the `airlock:connector` contract (generated from `wit/`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "airlock:connector/connector-world",
    imports: { default: async },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
    require_store_data_send: true,
});

pub use self::airlock::connector::types;
