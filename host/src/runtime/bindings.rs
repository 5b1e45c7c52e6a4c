//! Host-side bindings of the `airlock:connector` contract, one module per supported minor
//! version: `v0_1` from the frozen `wit/connector.wit` (0.1.0) and `v0_2` from
//! `wit/v0.2/connector.wit` (0.2.0). Each version's types are distinct Rust types, so the rest of
//! the host never touches them: `connector.rs` converts results into `model` types and
//! dispatches through `ContractPre`/`ContractInstance`.

/// `airlock:connector@0.1.0`.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "airlock:connector/connector-world@0.1.0",
        imports: { default: async },
        exports: { default: async },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
        require_store_data_send: true,
    });

    pub use self::airlock::connector::{host, types};
}

/// `airlock:connector@0.2.0` (0.1.0 plus `host.progress`).
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2",
        world: "airlock:connector/connector-world@0.2.0",
        imports: { default: async },
        exports: { default: async },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
        require_store_data_send: true,
    });

    pub use self::airlock::connector::{host, types};
}
