//! Host-side bindings of the `airlock:connector` contract, one module per supported minor
//! version: `v0_1` from the frozen `wit/connector.wit` (0.1.0) and `v0_2` from
//! `wit/v0.2/connector.wit` (0.2.0). Each version's types are distinct Rust types, so the rest of
//! the host never touches them: the conversions below turn results into [`crate::model`] types,
//! and `connector.rs` dispatches through `ContractPre`/`ContractInstance`.

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

/// The same conversions for every supported contract version: their records are identical in
/// shape (minor versions only add items) but each version's bindings are distinct Rust types.
macro_rules! from_wit {
    ($version:ident) => {
        const _: () = {
            use crate::model::*;
            use crate::runtime::bindings::$version::types as wit;

            impl From<wit::Document> for Document {
                fn from(d: wit::Document) -> Self {
                    let metadata = serde_json::from_str(&d.metadata)
                        .unwrap_or(serde_json::Value::String(d.metadata));
                    Document {
                        id: d.id,
                        kind: d.kind,
                        title: d.title,
                        body: d.body,
                        url: d.url,
                        updated_at: d.updated_at,
                        metadata,
                        acl: d.acl,
                    }
                }
            }

            impl From<wit::SyncPage> for SyncPage {
                fn from(p: wit::SyncPage) -> Self {
                    SyncPage {
                        upserts: p.upserts.into_iter().map(Into::into).collect(),
                        deletes: p
                            .deletes
                            .into_iter()
                            .map(|r| DocumentRef {
                                kind: r.kind,
                                id: r.id,
                            })
                            .collect(),
                        next_cursor: p.next_cursor,
                        done: p.done,
                    }
                }
            }

            impl From<wit::SearchResult> for SearchResult {
                fn from(r: wit::SearchResult) -> Self {
                    SearchResult {
                        hits: r.hits.into_iter().map(Into::into).collect(),
                        next_cursor: r.next_cursor,
                    }
                }
            }

            impl From<wit::ConnectorInfo> for ConnectorInfo {
                fn from(i: wit::ConnectorInfo) -> Self {
                    ConnectorInfo {
                        name: i.name,
                        version: i.version,
                        description: i.description,
                        streams: i
                            .streams
                            .into_iter()
                            .map(|s| StreamInfo {
                                name: s.name,
                                description: s.description,
                            })
                            .collect(),
                        actions: i
                            .actions
                            .into_iter()
                            .map(|a| ActionInfo {
                                input_schema: serde_json::from_str(&a.input_schema)
                                    .unwrap_or(serde_json::Value::String(a.input_schema)),
                                name: a.name,
                                description: a.description,
                                writes: a.writes,
                            })
                            .collect(),
                    }
                }
            }

            impl From<wit::HealthStatus> for HealthStatus {
                fn from(h: wit::HealthStatus) -> Self {
                    HealthStatus {
                        ok: h.ok,
                        message: h.message,
                    }
                }
            }

            impl From<wit::Error> for ConnectorError {
                fn from(e: wit::Error) -> Self {
                    let (code, message, retry_after) = match e {
                        wit::Error::Unauthorized(m) => ("unauthorized", m, None),
                        wit::Error::Forbidden(m) => ("forbidden", m, None),
                        wit::Error::NotFound(m) => ("not-found", m, None),
                        wit::Error::RateLimited(s) => {
                            ("rate-limited", format!("retry after {s}s"), Some(s))
                        }
                        wit::Error::Upstream(m) => ("upstream", m, None),
                        wit::Error::InvalidInput(m) => ("invalid-input", m, None),
                        wit::Error::Internal(m) => ("internal", m, None),
                    };
                    ConnectorError {
                        code: code.into(),
                        message,
                        retry_after,
                    }
                }
            }
        };
    };
}

from_wit!(v0_1);
from_wit!(v0_2);
