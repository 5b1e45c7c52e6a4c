//! `airlock:connector@0.2.0` (`wit/v0.2/connector.wit`), the newest contract version: its
//! bindings, its linker, its `host` imports (answered through
//! `crate::capabilities::host_imports`) and the conversions of its records into
//! [`crate::model`] types, which older versions reach by converting into this version's records.

use wasmtime::component::{HasSelf, Linker};

use crate::capabilities::host_imports::LogLevel;
use crate::model::{
    ActionInfo, ConnectorError, ConnectorInfo, Document, DocumentRef, HealthStatus, Metadata,
    SearchResult, StreamInfo, SyncPage,
};
use crate::runtime::state::State;

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

/// WASI, `wasi:http` and `airlock:connector/host@0.2.0`.
pub(super) fn linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<State>> {
    let mut linker = super::wasi_linker(engine)?;
    host::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;
    types::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;
    Ok(linker)
}

impl types::Host for State {}

impl host::Host for State {
    async fn log(&mut self, level: types::LogLevel, message: String) {
        let level = match level {
            types::LogLevel::Trace => LogLevel::Trace,
            types::LogLevel::Debug => LogLevel::Debug,
            types::LogLevel::Info => LogLevel::Info,
            types::LogLevel::Warn => LogLevel::Warn,
            types::LogLevel::Error => LogLevel::Error,
        };
        self.host_imports().log(level, &message);
    }

    async fn setting(&mut self, key: String) -> Option<String> {
        self.host_imports().setting(&key)
    }

    async fn secret(&mut self, name: String) -> Result<String, types::Error> {
        self.host_imports()
            .secret(&name)
            .map_err(types::Error::Forbidden)
    }

    async fn progress(&mut self, stream: String, done: u64, total: Option<u64>, message: String) {
        self.host_imports().progress(stream, done, total, message);
    }
}

impl From<types::Document> for Document {
    fn from(d: types::Document) -> Self {
        let metadata = Metadata::from_connector(d.metadata);
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

impl From<types::SyncPage> for SyncPage {
    fn from(p: types::SyncPage) -> Self {
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

impl From<types::SearchResult> for SearchResult {
    fn from(r: types::SearchResult) -> Self {
        SearchResult {
            hits: r.hits.into_iter().map(Into::into).collect(),
            next_cursor: r.next_cursor,
        }
    }
}

impl From<types::ConnectorInfo> for ConnectorInfo {
    fn from(i: types::ConnectorInfo) -> Self {
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

impl From<types::HealthStatus> for HealthStatus {
    fn from(h: types::HealthStatus) -> Self {
        HealthStatus {
            ok: h.ok,
            message: h.message,
        }
    }
}

impl From<types::Error> for ConnectorError {
    fn from(e: types::Error) -> Self {
        let (code, message, retry_after) = match e {
            types::Error::Unauthorized(m) => ("unauthorized", m, None),
            types::Error::Forbidden(m) => ("forbidden", m, None),
            types::Error::NotFound(m) => ("not-found", m, None),
            types::Error::RateLimited(s) => ("rate-limited", format!("retry after {s}s"), Some(s)),
            types::Error::Upstream(m) => ("upstream", m, None),
            types::Error::InvalidInput(m) => ("invalid-input", m, None),
            types::Error::Internal(m) => ("internal", m, None),
        };
        ConnectorError {
            code: code.into(),
            message,
            retry_after,
        }
    }
}
