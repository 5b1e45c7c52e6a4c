//! The wasmtime Engine: pooling allocator, epoch interruption (a ticker thread) and the on-disk
//! compile cache; plus the linkers of every supported contract version (`contract::Linkers`).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

use super::contract::Linkers;
use super::linked::SharedComponents;
use crate::limits::MemoryReservation;

/// How often the epoch advances; deadlines are checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Engine-wide settings.
pub struct EngineOptions<'a> {
    /// Where compiled code is cached; None disables the cache.
    pub cache_dir: Option<&'a Path>,
    /// The largest memory any instance may have (the pool reserves slots of this size).
    pub max_memory_bytes: usize,
    /// How many instances may be alive at once.
    pub max_instances: u32,
    /// `[server] memory_reservation`: the address space each memory slot reserves.
    pub reservation: MemoryReservation,
}

pub struct Runtime {
    pub engine: Engine,
    /// One linker per supported contract version.
    pub linkers: Linkers,
    /// Compiled components shared by content across connectors.
    pub components: SharedComponents,
    cache: Option<Cache>,
}

/// The address space a memory slot reserves: the limit rounded up to whole wasm pages, or the
/// whole 32-bit range when asked for (never less than the limit).
fn reservation(max_memory_bytes: usize, asked: MemoryReservation) -> u64 {
    const PAGE: u64 = 64 * 1024;
    let limit = (max_memory_bytes as u64).div_ceil(PAGE).max(1) * PAGE;
    match asked {
        MemoryReservation::Limit => limit,
        MemoryReservation::FourGiB => limit.max(4 << 30),
    }
}

/// The compile cache holds native code the daemon loads and runs: like the data directory,
/// it is made owner-only whoever created it (a `compile_cache` outside the data directory
/// would otherwise keep the creator's umask).
fn owner_only_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create compile cache {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)
            .with_context(|| format!("cannot read compile cache {}", dir.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(
                || {
                    format!(
                        "compile cache {} is open to other users and cannot be made owner-only",
                        dir.display()
                    )
                },
            )?;
        }
    }
    Ok(())
}

impl Runtime {
    pub fn new(opts: EngineOptions<'_>) -> anyhow::Result<Runtime> {
        let mut cfg = Config::new();
        cfg.wasm_component_model(true);
        cfg.epoch_interruption(true);
        // Profiling a connector (docs/connector-guide.md): `perf` names the guest's functions.
        if std::env::var_os("AIRLOCK_GUEST_PERFMAP").is_some() {
            cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(opts.max_instances);
        pool.total_core_instances(opts.max_instances * 4);
        let slots = opts.max_instances * 2;
        pool.total_memories(slots);
        pool.total_tables(opts.max_instances * 2);
        pool.total_stacks(opts.max_instances);
        pool.max_memories_per_component(4);
        pool.max_tables_per_component(8);
        pool.max_memory_size(opts.max_memory_bytes);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // By default each pool slot reserves address space for the memory limit (plus the
        // default guard), not wasmtime's 4 GiB: 512 slots of 4 GiB were 2 TiB of virtual memory,
        // which trips `ulimit -v`, container limits and monitoring. The price is explicit bounds
        // checks in guest code; `memory_reservation = "4GiB"` buys them back (`make bench`).
        let slot = reservation(opts.max_memory_bytes, opts.reservation);
        cfg.memory_reservation(slot);
        tracing::info!(
            "guest memory: {slots} pool slots reserve {} MiB of address space each ({} GiB in all; {})",
            slot >> 20,
            (u64::from(slots) * slot) >> 30,
            match opts.reservation {
                MemoryReservation::Limit => {
                    "guest code checks its bounds; [server] memory_reservation = \"4GiB\" elides the checks"
                }
                MemoryReservation::FourGiB => {
                    "[server] memory_reservation = \"4GiB\": no bounds checks in guest code"
                }
            }
        );
        let cache = match opts.cache_dir {
            Some(dir) => {
                owner_only_dir(dir)?;
                let mut cc = CacheConfig::new();
                cc.with_directory(dir);
                let cache = Cache::new(cc)
                    .map_err(|e| anyhow::anyhow!("cannot set up the compile cache: {e:#}"))?;
                cfg.cache(Some(cache.clone()));
                Some(cache)
            }
            None => None,
        };
        let engine = Engine::new(&cfg)
            .map_err(|e| anyhow::anyhow!("cannot create the wasmtime engine: {e:#}"))?;

        let weak = engine.weak();
        std::thread::Builder::new()
            .name("airlock-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;

        let linkers = Linkers::new(&engine)?;
        Ok(Runtime {
            engine,
            linkers,
            components: SharedComponents::default(),
            cache,
        })
    }

    /// The on-disk compile cache, if enabled.
    pub fn cache(&self) -> Option<&Cache> {
        self.cache.as_ref()
    }

    /// (hits, misses) of the compile cache since start.
    pub fn cache_stats(&self) -> Option<(usize, usize)> {
        self.cache
            .as_ref()
            .map(|c| (c.cache_hits(), c.cache_misses()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_reserves_the_limit_in_whole_pages_unless_4gib_is_asked_for() {
        use MemoryReservation::{FourGiB, Limit};
        assert_eq!(reservation(64 << 20, Limit), 64 << 20);
        assert_eq!(reservation((64 << 20) + 1, Limit), (64 << 20) + 65536);
        assert_eq!(reservation(0, Limit), 65536);
        assert_eq!(reservation(64 << 20, FourGiB), 4 << 30);
        // A limit of the whole range reserves the whole range either way.
        assert_eq!(reservation(4 << 30, Limit), 4 << 30);
        assert_eq!(reservation(4 << 30, FourGiB), 4 << 30);
    }

    #[cfg(unix)]
    #[test]
    fn a_compile_cache_others_could_write_is_made_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        owner_only_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Made here: owner-only from the start.
        let fresh = tmp.path().join("a/b");
        owner_only_dir(&fresh).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
