//! `airlock:connector@0.1.0` (the frozen `wit/connector.wit`): its bindings, its linker, and how
//! it reaches the newest version's code. Its `host` imports forward to the newest version's, and
//! its records convert into the newest version's records and from there into [`crate::model`]
//! types, so nothing here decides anything: 0.1.0 only lacks what later versions added.

use wasmtime::component::{HasSelf, Linker};

use super::latest;
use crate::model::{ConnectorError, ConnectorInfo, Document, HealthStatus, SearchResult};
use crate::runtime::state::State;

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

/// WASI, `wasi:http` and `airlock:connector/host@0.1.0`.
pub(super) fn linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<State>> {
    let mut linker = super::wasi_linker(engine)?;
    host::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;
    types::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;
    Ok(linker)
}

impl types::Host for State {}

/// `log`, `setting` and `secret`, answered by the newest version's `host`.
impl host::Host for State {
    async fn log(&mut self, level: types::LogLevel, message: String) {
        latest::host::Host::log(self, level.into(), message).await
    }

    async fn setting(&mut self, key: String) -> Option<String> {
        latest::host::Host::setting(self, key).await
    }

    async fn secret(&mut self, name: String) -> Result<String, types::Error> {
        latest::host::Host::secret(self, name)
            .await
            .map_err(Into::into)
    }
}

impl From<types::LogLevel> for latest::types::LogLevel {
    fn from(l: types::LogLevel) -> Self {
        use latest::types::LogLevel as L;
        match l {
            types::LogLevel::Trace => L::Trace,
            types::LogLevel::Debug => L::Debug,
            types::LogLevel::Info => L::Info,
            types::LogLevel::Warn => L::Warn,
            types::LogLevel::Error => L::Error,
        }
    }
}

impl From<latest::types::Error> for types::Error {
    fn from(e: latest::types::Error) -> Self {
        use latest::types::Error as E;
        match e {
            E::Unauthorized(m) => types::Error::Unauthorized(m),
            E::Forbidden(m) => types::Error::Forbidden(m),
            E::NotFound(m) => types::Error::NotFound(m),
            E::RateLimited(s) => types::Error::RateLimited(s),
            E::Upstream(m) => types::Error::Upstream(m),
            E::InvalidInput(m) => types::Error::InvalidInput(m),
            E::Internal(m) => types::Error::Internal(m),
        }
    }
}

impl From<types::Error> for latest::types::Error {
    fn from(e: types::Error) -> Self {
        use latest::types::Error as E;
        match e {
            types::Error::Unauthorized(m) => E::Unauthorized(m),
            types::Error::Forbidden(m) => E::Forbidden(m),
            types::Error::NotFound(m) => E::NotFound(m),
            types::Error::RateLimited(s) => E::RateLimited(s),
            types::Error::Upstream(m) => E::Upstream(m),
            types::Error::InvalidInput(m) => E::InvalidInput(m),
            types::Error::Internal(m) => E::Internal(m),
        }
    }
}

impl From<types::Document> for latest::types::Document {
    fn from(d: types::Document) -> Self {
        latest::types::Document {
            id: d.id,
            kind: d.kind,
            title: d.title,
            body: d.body,
            url: d.url,
            updated_at: d.updated_at,
            metadata: d.metadata,
            acl: d.acl,
        }
    }
}

impl From<types::DocumentRef> for latest::types::DocumentRef {
    fn from(r: types::DocumentRef) -> Self {
        latest::types::DocumentRef {
            kind: r.kind,
            id: r.id,
        }
    }
}

impl From<types::SyncPage> for latest::types::SyncPage {
    fn from(p: types::SyncPage) -> Self {
        latest::types::SyncPage {
            upserts: p.upserts.into_iter().map(Into::into).collect(),
            deletes: p.deletes.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor,
            done: p.done,
        }
    }
}

impl From<types::SearchResult> for latest::types::SearchResult {
    fn from(r: types::SearchResult) -> Self {
        latest::types::SearchResult {
            hits: r.hits.into_iter().map(Into::into).collect(),
            next_cursor: r.next_cursor,
        }
    }
}

impl From<types::StreamInfo> for latest::types::StreamInfo {
    fn from(s: types::StreamInfo) -> Self {
        latest::types::StreamInfo {
            name: s.name,
            description: s.description,
        }
    }
}

impl From<types::ActionInfo> for latest::types::ActionInfo {
    fn from(a: types::ActionInfo) -> Self {
        latest::types::ActionInfo {
            name: a.name,
            description: a.description,
            input_schema: a.input_schema,
            writes: a.writes,
        }
    }
}

impl From<types::ConnectorInfo> for latest::types::ConnectorInfo {
    fn from(i: types::ConnectorInfo) -> Self {
        latest::types::ConnectorInfo {
            name: i.name,
            version: i.version,
            description: i.description,
            streams: i.streams.into_iter().map(Into::into).collect(),
            actions: i.actions.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<types::HealthStatus> for latest::types::HealthStatus {
    fn from(h: types::HealthStatus) -> Self {
        latest::types::HealthStatus {
            ok: h.ok,
            message: h.message,
        }
    }
}

/// What a 0.1.0 export answers, into the model through the newest version's conversions.
macro_rules! through_latest {
    ($($wit:ident => $model:ident),* $(,)?) => {
        $(
            impl From<types::$wit> for $model {
                fn from(v: types::$wit) -> Self {
                    latest::types::$wit::from(v).into()
                }
            }
        )*
    };
}

through_latest!(
    ConnectorInfo => ConnectorInfo,
    HealthStatus => HealthStatus,
    SearchResult => SearchResult,
    Document => Document,
    Error => ConnectorError,
);
