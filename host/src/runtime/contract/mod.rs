//! The `airlock:connector` contract as the rest of the host sees it, whatever version a component
//! was built against: the supported versions ([`ContractVersion`]), one linker per version
//! ([`Linkers`]), and a linked component and its instances ([`ContractPre`],
//! [`ContractInstance`]) whose calls answer in [`crate::model`] types.
//!
//! Each version lives in one file (`v0_1.rs`, `v0_2.rs`): its `bindgen!`, its linker, its `host`
//! imports and the conversions of its records. The newest ([`latest`]) converts into the model and
//! answers the `host` imports through `crate::capabilities::host_imports`; every older one
//! converts its records into the newest's and forwards its imports to the newest's, so behaviour
//! lives once. Adding a version adds a file here and its cases below.

use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use crate::model::{self, ConnectorError};
use crate::runtime::state::State;

pub mod v0_1;
pub mod v0_2;

/// The newest contract version: what the SDK targets, and what older versions convert into.
pub use v0_2 as latest;

/// The contract package this host implements, and the versions it accepts.
pub const CONTRACT_PACKAGE: &str = "airlock:connector";
pub const CONTRACT_INTERFACE: &str = "airlock:connector/connector";
/// The newest contract version this host implements (what the SDK targets).
pub const CONTRACT_VERSION: &str = "0.2.0";
/// Every minor version this host loads, oldest first, for error messages.
pub const SUPPORTED_CONTRACTS: &str = "airlock:connector@0.1.x and airlock:connector@0.2.x";

/// A contract minor version this host speaks. Minor versions only add items, so each newer one
/// can do everything an older one can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractVersion {
    /// `airlock:connector@0.1.x`: the original contract.
    V0_1,
    /// `airlock:connector@0.2.x`: adds `host.progress`.
    V0_2,
}

impl ContractVersion {
    /// The version a component declares (the `@version` of its `connector` export), if this
    /// host supports it: same major, and (for 0.x, where the minor is the breaking part) a minor
    /// this host has bindings for.
    pub fn of(version: &str) -> Option<ContractVersion> {
        let mut parts = version.split('.');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("0"), Some("1"), Some(patch), None) if patch.parse::<u32>().is_ok() => {
                Some(ContractVersion::V0_1)
            }
            (Some("0"), Some("2"), Some(patch), None) if patch.parse::<u32>().is_ok() => {
                Some(ContractVersion::V0_2)
            }
            _ => None,
        }
    }

    /// Whether components of this version can report sync progress (`host.progress`).
    pub fn has_progress(self) -> bool {
        self >= ContractVersion::V0_2
    }
}

impl PartialOrd for ContractVersion {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ContractVersion {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

/// One linker per version, each with only its own `host` interface, so a component that mixes
/// versions (imports host@0.1.0 but exports connector@0.2.0) fails to link instead of running
/// against a host it was not built for.
pub struct Linkers {
    /// Contract 0.1.x: WASI, `wasi:http` and `airlock:connector/host@0.1.0`.
    v0_1: Linker<State>,
    /// Contract 0.2.x: the same plus `airlock:connector/host@0.2.0`.
    v0_2: Linker<State>,
}

impl Linkers {
    pub fn new(engine: &wasmtime::Engine) -> anyhow::Result<Linkers> {
        Ok(Linkers {
            v0_1: v0_1::linker(engine)?,
            v0_2: v0_2::linker(engine)?,
        })
    }

    fn of(&self, version: ContractVersion) -> &Linker<State> {
        match version {
            ContractVersion::V0_1 => &self.v0_1,
            ContractVersion::V0_2 => &self.v0_2,
        }
    }
}

/// wasi:cli/clocks/random/io etc. for the guest's std; sockets and filesystem stay empty because
/// the WasiCtx grants nothing. All network access is wasi:http. Each version's linker starts
/// from this.
fn wasi_linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<State>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    Ok(linker)
}

/// A component linked against its own contract version's bindings. Everything above the runtime
/// (sync, search, API, conformance, MCP) only sees `LoadedConnector` and `model` types.
#[derive(Clone)]
pub enum ContractPre {
    V0_1(v0_1::ConnectorWorldPre<State>),
    V0_2(v0_2::ConnectorWorldPre<State>),
}

/// One live instance, of any supported version.
pub enum ContractInstance {
    V0_1(v0_1::ConnectorWorld),
    V0_2(v0_2::ConnectorWorld),
}

impl ContractPre {
    /// Links `component` with the linker of `version` and checks its exports against that
    /// version's `connector` interface.
    pub(crate) fn new(
        linkers: &Linkers,
        component: &Component,
        version: ContractVersion,
    ) -> Result<ContractPre, String> {
        let pre = linkers
            .of(version)
            .instantiate_pre(component)
            .map_err(|e| format!("imports something Airlock does not provide: {e:#}"))?;
        let mismatch = |e: wasmtime::Error| format!("exports do not match the contract: {e:#}");
        Ok(match version {
            ContractVersion::V0_1 => {
                ContractPre::V0_1(v0_1::ConnectorWorldPre::new(pre).map_err(mismatch)?)
            }
            ContractVersion::V0_2 => {
                ContractPre::V0_2(v0_2::ConnectorWorldPre::new(pre).map_err(mismatch)?)
            }
        })
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        match self {
            ContractPre::V0_1(p) => p.engine(),
            ContractPre::V0_2(p) => p.engine(),
        }
    }

    pub async fn instantiate_async(
        &self,
        store: &mut Store<State>,
    ) -> wasmtime::Result<ContractInstance> {
        Ok(match self {
            ContractPre::V0_1(p) => ContractInstance::V0_1(p.instantiate_async(store).await?),
            ContractPre::V0_2(p) => ContractInstance::V0_2(p.instantiate_async(store).await?),
        })
    }
}

/// A call's outcome: a trap (outer) or the connector's own answer (inner).
pub(crate) type CallResult<R> = wasmtime::Result<Result<R, ConnectorError>>;

/// Runs `$body` with `$w` bound to the instance's generated world (and `$v`, if given, naming its
/// version's module). The body is the same for every version: each version's records convert into `model`
/// types (`From` impls in its file), so callers never see a version's generated types; only a
/// sync page stays in the newest version's records until the sync loop converts it.
macro_rules! on_instance {
    ($instance:expr, |$w:ident| $body:expr) => {
        match $instance {
            ContractInstance::V0_1($w) => $body,
            ContractInstance::V0_2($w) => $body,
        }
    };
    ($instance:expr, |$w:ident, $v:ident| $body:expr) => {
        match $instance {
            ContractInstance::V0_1($w) => {
                use v0_1 as $v;
                $body
            }
            ContractInstance::V0_2($w) => {
                use v0_2 as $v;
                $body
            }
        }
    };
}

/// Answers of an export that returns `result<T, error>`, in `model` types.
macro_rules! answer {
    ($call:expr) => {
        $call.await.map(|r| r.map(Into::into).map_err(Into::into))
    };
}

impl ContractInstance {
    /// `connector.info`.
    pub(crate) async fn info(
        &self,
        s: &mut Store<State>,
    ) -> wasmtime::Result<model::ConnectorInfo> {
        on_instance!(self, |w| w
            .airlock_connector_connector()
            .call_info(s)
            .await
            .map(Into::into))
    }

    /// `connector.health`.
    pub(crate) async fn health(&self, s: &mut Store<State>) -> CallResult<model::HealthStatus> {
        on_instance!(self, |w| answer!(
            w.airlock_connector_connector().call_health(s)
        ))
    }

    /// `connector.search`.
    pub(crate) async fn search(
        &self,
        s: &mut Store<State>,
        query: String,
        limit: u32,
        cursor: Option<String>,
    ) -> CallResult<model::SearchResult> {
        on_instance!(self, |w, v| {
            let req = v::types::SearchRequest {
                query,
                limit,
                cursor,
            };
            answer!(w.airlock_connector_connector().call_search(s, &req))
        })
    }

    /// `connector.get`.
    pub(crate) async fn get(&self, s: &mut Store<State>, id: &str) -> CallResult<model::Document> {
        on_instance!(self, |w| answer!(
            w.airlock_connector_connector().call_get(s, id)
        ))
    }

    /// `connector.check-permission`.
    pub(crate) async fn check_permission(
        &self,
        s: &mut Store<State>,
        principal: &str,
        id: &str,
    ) -> CallResult<bool> {
        on_instance!(self, |w| answer!(
            w.airlock_connector_connector()
                .call_check_permission(s, principal, id)
        ))
    }

    /// `connector.sync`, in the newest version's records: a page becomes a
    /// [`model::SyncPage`] later, off the invoking thread (see
    /// `crate::runtime::fetched_page::FetchedPage`).
    pub(crate) async fn sync(
        &self,
        s: &mut Store<State>,
        stream: &str,
        cursor: Option<&str>,
    ) -> CallResult<latest::types::SyncPage> {
        on_instance!(self, |w| answer!(
            w.airlock_connector_connector().call_sync(s, stream, cursor)
        ))
    }

    /// `connector.invoke`.
    pub(crate) async fn invoke(
        &self,
        s: &mut Store<State>,
        action: &str,
        input: &str,
    ) -> CallResult<String> {
        on_instance!(self, |w| answer!(
            w.airlock_connector_connector()
                .call_invoke(s, action, input)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_minor_loads_and_unknown_versions_are_refused() {
        use ContractVersion::*;
        assert_eq!(ContractVersion::of("0.1.0"), Some(V0_1));
        assert_eq!(ContractVersion::of("0.1.7"), Some(V0_1));
        assert_eq!(ContractVersion::of("0.2.0"), Some(V0_2));
        assert_eq!(ContractVersion::of("0.2.3"), Some(V0_2));
        for unknown in [
            "0.3.0",
            "0.9.0",
            "1.0.0",
            "2.0.0",
            "",
            "0.2",
            "0.2.x",
            "0.2.0-rc1",
        ] {
            assert_eq!(ContractVersion::of(unknown), None, "{unknown}");
        }
        assert!(V0_2.has_progress() && !V0_1.has_progress());
    }
}
