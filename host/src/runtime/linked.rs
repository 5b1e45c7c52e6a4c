//! Components compiled once per content, not once per connector. An MSP's thousand tenants run
//! the same seven components: each connector still reads its own file and passes its own
//! integrity checks (digest pin, signature) on the bytes that were compiled, but every connector
//! whose file has the same SHA-256 shares one compiled [`Component`] and one linked
//! [`ContractPre`], so the machine code is in memory once.
//!
//! File reads are memoised by the file's identity (device, inode, size, modification and change
//! times): a start with 7,000 connectors reads and hashes seven files, not 7,000. A file that
//! changes gets a new stamp, so the next load reads it again; the code that runs is always the
//! code of the digest that was checked, because sharing is keyed by that digest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use serde::Serialize;
use wasmtime::component::Component;
use wasmtime::{Cache, Engine};

use super::contract::Linkers;
use super::contract::{
    CONTRACT_INTERFACE, CONTRACT_PACKAGE, ContractPre, ContractVersion, SUPPORTED_CONTRACTS,
};

/// The bytes of a component file and their SHA-256 (lower-case hex).
pub struct ComponentFile {
    pub bytes: Arc<[u8]>,
    pub sha256: String,
}

/// A component compiled, checked against the contract and linked: what connectors share.
pub struct Linked {
    pub file: Arc<ComponentFile>,
    pub component: Component,
    pub pre: ContractPre,
    /// The contract version the component declares (`0.2.0`).
    pub contract: String,
    pub version: ContractVersion,
    pub compile: CompileReport,
}

/// How the component got compiled (for `check` and the log).
#[derive(Debug, Clone, Serialize)]
pub struct CompileReport {
    pub millis: f64,
    /// Compiled code came from the on-disk compile cache.
    pub from_cache: bool,
    /// Another connector had already compiled the same bytes: nothing was compiled.
    pub shared: bool,
    pub size_bytes: usize,
}

/// What identifies a file's content without reading it.
#[derive(Clone, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The shared files and linked components of one engine (entries live as long as a connector
/// uses them).
#[derive(Default)]
pub struct SharedComponents {
    files: Mutex<HashMap<PathBuf, (Stamp, Weak<ComponentFile>)>>,
    linked: Mutex<HashMap<String, Weak<Linked>>>,
}

impl SharedComponents {
    /// The bytes and digest of `path`: read once per file version.
    pub fn read(&self, path: &Path) -> Result<Arc<ComponentFile>, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
        let stamp = Stamp::of(&meta);
        if let Ok(files) = self.files.lock()
            && let Some((s, weak)) = files.get(path)
            && *s == stamp
            && let Some(file) = weak.upgrade()
        {
            return Ok(file);
        }
        let bytes = std::fs::read(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
        // The stamp taken before the read may be stale if the file changed meanwhile: memoise
        // only when it still matches afterwards.
        let after = std::fs::metadata(path).map(|m| Stamp::of(&m)).ok();
        let file = Arc::new(ComponentFile {
            sha256: crate::integrity::sha256_hex(&bytes),
            bytes: bytes.into(),
        });
        if after.as_ref() == Some(&stamp)
            && let Ok(mut files) = self.files.lock()
        {
            files.retain(|_, (_, w)| w.strong_count() > 0);
            files.insert(path.to_path_buf(), (stamp, Arc::downgrade(&file)));
        }
        Ok(file)
    }

    /// The SHA-256 of `path` (memoised like [`SharedComponents::read`]).
    pub fn digest(&self, path: &Path) -> Result<String, String> {
        self.read(path).map(|f| f.sha256.clone())
    }

    /// The linked component of `file`'s bytes, compiled on first use, and how this connector
    /// got it (compiled, from the disk cache, or shared with a connector that had).
    pub fn link(
        &self,
        engine: &Engine,
        linkers: &Linkers,
        cache: Option<&Cache>,
        path: &Path,
        file: &Arc<ComponentFile>,
    ) -> Result<(Arc<Linked>, CompileReport), String> {
        if let Ok(linked) = self.linked.lock()
            && let Some(l) = linked.get(&file.sha256).and_then(Weak::upgrade)
        {
            let report = CompileReport {
                millis: 0.0,
                shared: true,
                ..l.compile.clone()
            };
            return Ok((l, report));
        }
        let linked = Arc::new(compile(engine, linkers, cache, path, file)?);
        if let Ok(mut map) = self.linked.lock() {
            map.retain(|_, w| w.strong_count() > 0);
            map.insert(file.sha256.clone(), Arc::downgrade(&linked));
        }
        let report = linked.compile.clone();
        Ok((linked, report))
    }

    /// How many distinct components are compiled and in use.
    pub fn compiled(&self) -> usize {
        self.linked
            .lock()
            .map(|m| m.values().filter(|w| w.strong_count() > 0).count())
            .unwrap_or(0)
    }
}

/// Compiles `file` (through the on-disk cache) with clear errors for files that are not wasm or
/// are core modules, then checks and links it against the contract version it declares.
fn compile(
    engine: &Engine,
    linkers: &Linkers,
    cache: Option<&Cache>,
    path: &Path,
    file: &Arc<ComponentFile>,
) -> Result<Linked, String> {
    let shown = path.display();
    let bytes = &file.bytes;
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(format!(
            "{shown}: not a WebAssembly file (no \\0asm header); expected a component built for wasm32-wasip2"
        ));
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(format!(
            "{shown}: is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)"
        ));
    }
    let hits = || cache.map(Cache::cache_hits);
    let before = hits();
    let started = Instant::now();
    let component = Component::new(engine, bytes)
        .map_err(|e| format!("{shown}: not a valid component: {e:#}"))?;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    let from_cache = match (before, hits()) {
        (Some(h0), Some(h1)) => h1 > h0,
        _ => false,
    };
    let contract = check_contract(engine, &component).map_err(|m| format!("{shown}: {m}"))?;
    let version = ContractVersion::of(&contract).ok_or_else(|| {
        format!("{shown}: contract {CONTRACT_PACKAGE}@{contract} is not supported")
    })?;
    let pre = ContractPre::new(linkers, &component, version)
        .map_err(|m| format!("{shown}: built against {CONTRACT_PACKAGE}@{contract}, but {m}"))?;
    Ok(Linked {
        file: file.clone(),
        component,
        pre,
        contract,
        version,
        compile: CompileReport {
            millis,
            from_cache,
            shared: false,
            size_bytes: bytes.len(),
        },
    })
}

/// Finds the contract export and checks that its version is one this host has bindings for
/// ([`SUPPORTED_CONTRACTS`]); a component from a future minor or a foreign major is refused naming
/// both.
pub fn check_contract(engine: &Engine, component: &Component) -> Result<String, String> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let Some(name) = exports.iter().find(|n| {
        n.as_str() == CONTRACT_INTERFACE || n.starts_with(&format!("{CONTRACT_INTERFACE}@"))
    }) else {
        let list = if exports.is_empty() {
            "nothing".to_string()
        } else {
            exports.join(", ")
        };
        return Err(format!(
            "is a component of another world: it exports {list}, not {CONTRACT_INTERFACE} (this host supports {SUPPORTED_CONTRACTS})"
        ));
    };
    let version = name.split_once('@').map(|(_, v)| v).unwrap_or("");
    if ContractVersion::of(version).is_none() {
        return Err(format!(
            "was built against contract {CONTRACT_PACKAGE}@{version}, which this host does not support (it supports {SUPPORTED_CONTRACTS}); rebuild it against one of those"
        ));
    }
    Ok(version.to_string())
}
